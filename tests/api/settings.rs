//! The room's and a participant's settings: `/brief`, `/attendance`, `/profile`.

use serde_json::json;

use crate::common::*;

// ---------------------------------------------------------------------------------------
// /brief, /attendance, /profile

#[test]
fn brief_get_and_set() {
    let r = TestRoom::start("brief");
    let bob = r.invite("bob", "agent");
    let (s, v) = r.get("/brief", Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["brief"]["body"], DEFAULT_BRIEF);
    assert_eq!(v["brief"]["brief_version"], 1);
    assert_eq!(v["brief"]["brief_updated_by"], "operator");
    assert!(v["brief"]["brief_updated_at"].is_string(), "{v}");

    // Host only.
    assert_error(
        r.post("/brief", Some(&bob.token), &json!({"body": "mine now"})),
        403,
        "host_required",
    );
    // Version bump and a system message.
    let before = r.last_id();
    let (s, v) = r.post("/brief", Some(&r.token), &json!({"body": "Goal v2"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["brief"]["body"], "Goal v2");
    assert_eq!(v["brief"]["brief_version"], 2);
    let (_, v) = r.get("/brief", Some(&bob.token));
    assert_eq!(v["brief"]["body"], "Goal v2");
    assert_eq!(v["brief"]["brief_version"], 2);
    let last = r.last_message();
    assert!(last["id"].as_u64().unwrap() > before);
    assert_eq!(last["type"], "system", "{last}");
    assert!(
        last["text"].as_str().unwrap().contains("version 2"),
        "{last}"
    );
    assert_eq!(r.status(&bob.token)["brief_version"], 2);

    // 16,000 chars is fine, 16,001 is 413 brief_too_large (and nothing changes).
    let (s, v) = r.post(
        "/brief",
        Some(&r.token),
        &json!({"body": "b".repeat(16_000)}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["brief"]["brief_version"], 3);
    assert_error(
        r.post(
            "/brief",
            Some(&r.token),
            &json!({"body": "b".repeat(16_001)}),
        ),
        413,
        "brief_too_large",
    );
    let (_, v) = r.get("/brief", Some(&r.token));
    assert_eq!(v["brief"]["brief_version"], 3);
    // The brief is on disk as brief.md.
    let on_disk = std::fs::read_to_string(r.home.room_dir(&r.room).join("brief.md")).unwrap();
    assert_eq!(on_disk, "b".repeat(16_000));

    // Malformed bodies.
    assert_error(
        r.post("/brief", Some(&r.token), &json!({"body": 5})),
        400,
        "invalid_body",
    );
    assert_error(
        r.post("/brief", Some(&r.token), &json!({})),
        400,
        "invalid_body",
    );
    assert_error_resp(
        &r.request(Req::post("/brief").token(&r.token).body("{nope")),
        400,
        "invalid_json",
    );
    assert_error(r.get("/brief", None), 401, "unauthorized");
}

#[test]
fn attendance_policy() {
    let r = TestRoom::start("attendance");
    let bob = r.invite("bob", "agent");
    let (s, v) = r.get("/attendance", Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["policy"], "manual-ok");
    assert_eq!(r.status(&bob.token)["attendance_policy"], "manual-ok");
    for policy in [
        "agents-foreground",
        "all-foreground",
        "host-directed",
        "manual-ok",
    ] {
        let before = r.last_id();
        let (s, v) = r.post("/attendance", Some(&r.token), &json!({"policy": policy}));
        assert_eq!(s, 200, "{policy}: {v}");
        assert_eq!(v["policy"], policy);
        assert_eq!(r.status(&bob.token)["attendance_policy"], policy);
        let last = r.last_message();
        assert!(
            last["id"].as_u64().unwrap() > before,
            "a system message for {policy}"
        );
        assert_eq!(last["type"], "system");
        assert!(last["text"].as_str().unwrap().contains(policy), "{last}");
    }
    // agents-foreground makes bob's attendance required in the roster.
    r.post(
        "/attendance",
        Some(&r.token),
        &json!({"policy": "agents-foreground"}),
    );
    let p = r.roster_entry("bob");
    assert_eq!(p["attendance_required"], true, "{p}");
    assert_eq!(p["attendance_state"], "not_attending", "{p}");

    assert_error(
        r.post("/attendance", Some(&r.token), &json!({"policy": "always"})),
        400,
        "invalid_policy",
    );
    assert_error(
        r.post("/attendance", Some(&r.token), &json!({"policy": 3})),
        400,
        "invalid_body",
    );
    assert_error(
        r.post(
            "/attendance",
            Some(&bob.token),
            &json!({"policy": "manual-ok"}),
        ),
        403,
        "host_required",
    );
    assert_eq!(
        r.status(&bob.token)["attendance_policy"],
        "agents-foreground"
    );
}

#[test]
fn profile_display_names() {
    let r = TestRoom::start("profile");
    let bob = r.invite("bob", "human");
    let eve = r.invite("eve", "human");
    let (s, v) = r.get("/profile", Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["alias"], "bob");
    assert!(v["display_name"].is_null(), "{v}");

    let (s, v) = r.post(
        "/profile",
        Some(&bob.token),
        &json!({"display_name": "Bob B."}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["display_name"], "Bob B.");
    let (_, v) = r.get("/profile", Some(&bob.token));
    assert_eq!(v["display_name"], "Bob B.");
    assert_eq!(r.roster_entry("bob")["display_name"], "Bob B.");
    // Setting it again to the same value is fine.
    assert_eq!(
        r.post(
            "/profile",
            Some(&bob.token),
            &json!({"display_name": "Bob B."})
        )
        .0,
        200
    );

    // Unique per room (case-insensitively), and not another participant's alias.
    assert_error(
        r.post(
            "/profile",
            Some(&eve.token),
            &json!({"display_name": "Bob B."}),
        ),
        409,
        "display_name_taken",
    );
    assert_error(
        r.post(
            "/profile",
            Some(&eve.token),
            &json!({"display_name": "bob b."}),
        ),
        409,
        "display_name_taken",
    );
    // Invalid names.
    for bad in [
        json!(""),
        json!("   "),
        json!("a\u{7}b"),
        json!("line\nbreak"),
        json!("x".repeat(61)),
    ] {
        assert_error(
            r.post("/profile", Some(&eve.token), &json!({"display_name": bad})),
            400,
            "invalid_display_name",
        );
    }
    assert_error(
        r.post("/profile", Some(&eve.token), &json!({"display_name": 7})),
        400,
        "invalid_body",
    );
    // 60 characters (multi-byte) is fine.
    let sixty = "é".repeat(60);
    let (s, v) = r.post(
        "/profile",
        Some(&eve.token),
        &json!({"display_name": sixty}),
    );
    assert_eq!(s, 200, "{v}");
    // A display name never changes `from`.
    let m = r.say(&bob.token, "hello with a display name");
    assert_eq!(m["from"], "bob", "{m}");
}
