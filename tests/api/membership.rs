//! Who is in the room and whether it is open: `/leave`, `/close`, `/status` (fields,
//! read receipts, no secrets), `/invite` and `/remove`.

use serde_json::{Value, json};

use crate::common::*;
use crate::{texts, wait_path};

// ---------------------------------------------------------------------------------------
// /leave, /close

#[test]
fn leave_sets_away_with_a_system_message() {
    let r = TestRoom::start("leave");
    let bob = r.invite("bob", "agent");
    r.post("/join", Some(&bob.token), &json!({}));
    let (s, v) = r.post("/leave", Some(&bob.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["attention"], "away");
    let last = r.last_message();
    assert_eq!(last["type"], "system");
    assert!(
        last["text"].as_str().unwrap().contains("bob left"),
        "{last}"
    );
    let p = r.roster_entry("bob");
    assert_eq!(p["attention"], "away", "{p}");
    // Leaving is not being removed: bob can still post and join again.
    r.say(&bob.token, "back again");
    let (s, _) = r.post("/join", Some(&bob.token), &json!({}));
    assert_eq!(s, 200);
    assert_eq!(r.roster_entry("bob")["attention"], "attending");
    assert_error(r.post("/leave", None, &json!({})), 401, "unauthorized");
}

#[test]
fn close_is_host_only_and_stops_posts_but_not_reads() {
    let r = TestRoom::start("close");
    let bob = r.invite("bob", "agent");
    r.say(&bob.token, "before close");
    assert_error(
        r.post("/close", Some(&bob.token), &json!({})),
        403,
        "host_required",
    );
    let (s, v) = r.post("/close", Some(&r.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["room_status"], "closed");
    let last = r.last_message();
    assert_eq!(last["type"], "system");
    assert!(last["text"].as_str().unwrap().contains("closed"), "{last}");
    // Closing again is harmless.
    let (s, v) = r.post("/close", Some(&r.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    // Writes are refused.
    assert_error(
        r.post("/messages", Some(&bob.token), &json!({"text": "too late"})),
        403,
        "room_closed",
    );
    assert_error(
        r.post("/messages", Some(&r.token), &json!({"text": "too late"})),
        403,
        "room_closed",
    );
    assert_error(
        r.post("/brief", Some(&r.token), &json!({"body": "late"})),
        403,
        "room_closed",
    );
    // Reads still work.
    let (s, v) = r.get("/messages?since_id=0", Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["room_status"], "closed");
    assert!(texts(v["messages"].as_array().unwrap()).contains(&"before close".to_string()));
    let st = r.status(&bob.token);
    assert_eq!(st["room_status"], "closed");
    assert_eq!(r.get("/brief", Some(&bob.token)).0, 200);
    assert_eq!(r.request(Req::get("/card").token(&bob.token)).status, 200);
    assert_eq!(r.get("/export?format=json", Some(&r.token)).0, 200);
    // The closed state is on disk.
    let meta: Value =
        serde_json::from_slice(&std::fs::read(r.home.room_dir(&r.room).join("room.json")).unwrap())
            .unwrap();
    assert_eq!(meta["status"], "closed", "{meta}");
}

// ---------------------------------------------------------------------------------------
// /status

#[test]
fn status_fields_read_receipts_and_no_secrets() {
    let r = TestRoom::start_with("status", &["--ttl", "1m"]);
    let bob = r.invite("bob", "agent");
    let alice = r.invite("alice", "human");
    let resp = r.request(Req::get("/status").token(&bob.token));
    assert_eq!(resp.status, 200);
    let st = resp.json();
    for f in [
        "ok",
        "room",
        "me",
        "is_host",
        "room_status",
        "attendance_policy",
        "brief_version",
        "brief_updated_at",
        "brief_updated_by",
        "expires_at",
        "stale_after_ms",
        "participants",
    ] {
        assert!(st.get(f).is_some(), "/status lacks {f}: {st}");
    }
    assert_eq!(st["room"], "status");
    assert_eq!(st["me"], "bob");
    assert_eq!(st["is_host"], false);
    assert_eq!(st["room_status"], "open");
    assert_eq!(st["stale_after_ms"], 90_000);
    assert_eq!(r.status(&r.token)["is_host"], true);
    // TTL: expires_at is about a minute from now (RFC 3339 text).
    let expires = st["expires_at"].as_str().expect("expires_at with --ttl");
    assert!(expires.len() >= 20 && expires.contains('T'), "{expires}");
    let roster = st["participants"].as_array().unwrap();
    assert_eq!(roster.len(), 3);
    for p in roster {
        for f in [
            "alias",
            "display_name",
            "kind",
            "location",
            "install",
            "attention",
            "is_host",
            "last_seen_age_ms",
            "attendance_required",
            "attendance_state",
            "read_through_id",
        ] {
            assert!(p.get(f).is_some(), "participant lacks {f}: {p}");
        }
    }
    let host = roster.iter().find(|p| p["alias"] == "operator").unwrap();
    assert_eq!(host["is_host"], true);
    assert_eq!(host["kind"], "human");
    assert_eq!(host["install"], "host");
    let a = roster.iter().find(|p| p["alias"] == "alice").unwrap();
    assert_eq!(a["kind"], "human");
    assert_eq!(a["read_through_id"], 0);
    assert!(a["last_seen_age_ms"].is_null(), "alice was never seen: {a}");
    // No secret anywhere in the answer.
    let body = resp.text();
    for secret in [&r.token, &bob.token, &alice.token] {
        assert!(
            !body.contains(secret.as_str()),
            "a token leaked into /status"
        );
    }
    assert!(!body.contains("tgl_"));
    assert!(!body.contains("token"), "{body}");
    // Token hashes stay on disk only (and raw tokens never reach the room directory).
    let parts =
        std::fs::read_to_string(r.home.room_dir(&r.room).join("participants.json")).unwrap();
    assert!(parts.contains("token_hash"));
    for secret in [&r.token, &bob.token, &alice.token] {
        assert!(!parts.contains(secret.as_str()));
    }
    let parts: Value = serde_json::from_str(&parts).unwrap();
    for p in parts["participants"].as_array().unwrap() {
        let h = p["token_hash"].as_str().unwrap();
        assert!(!body.contains(h), "a token hash leaked into /status");
    }

    // read_through_id advances with what /messages and /wait deliver.
    r.say(&r.token, "one");
    let m2 = r.say(&r.token, "two");
    let (_, v) = r.get("/messages?since_id=0&limit=1", Some(&bob.token));
    let first = v["next_since_id"].as_u64().unwrap();
    assert_eq!(r.roster_entry("bob")["read_through_id"], first);
    let (_, _) = r.get("/messages?since_id=0", Some(&bob.token));
    assert_eq!(r.roster_entry("bob")["read_through_id"], m2["id"]);
    // Reading old messages again never moves it back.
    r.get("/messages?since_id=0&limit=1", Some(&bob.token));
    assert_eq!(r.roster_entry("bob")["read_through_id"], m2["id"]);
    let (_, v) = r.get(&wait_path("alice", 0, 1000), Some(&alice.token));
    assert_eq!(
        r.roster_entry("alice")["read_through_id"],
        v["next_since_id"]
    );
    assert!(r.roster_entry("alice")["last_seen_age_ms"].is_u64());
    assert_error(r.get("/status", None), 401, "unauthorized");
}

// ---------------------------------------------------------------------------------------
// /invite, /remove

/// The first visit of an invited person names who invited them: `/profile` says so.
#[test]
fn profile_names_the_inviter() {
    let r = TestRoom::start("inviter");
    let carol = r.invite_http("carol", "human").token;
    let (s, v) = r.get("/profile", Some(&carol));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["invited_by"], "operator", "{v}");
    // The host was invited by no one: the field is absent.
    let (s, v) = r.get("/profile", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    assert!(v.get("invited_by").is_none(), "{v}");
}

#[test]
fn invite_and_remove_over_http() {
    let r = TestRoom::start("invite-remove");
    let (s, v) = r.post(
        "/invite",
        Some(&r.token),
        &json!({"alias": "carol", "kind": "human"}),
    );
    assert_eq!(s, 201, "{v}");
    let carol = v["token"].as_str().unwrap().to_string();
    assert!(carol.starts_with("tgl_"));
    assert_eq!(v["kind"], "human");
    assert!(
        v["browser_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/#token={carol}"))
    );
    assert!(
        v["invite_uri"]
            .as_str()
            .unwrap()
            .starts_with("agentgather://join?")
    );
    assert!(
        v["card_command"]
            .as_str()
            .unwrap()
            .contains("/card?participant=carol")
    );
    assert_eq!(r.status(&carol)["me"], "carol");
    // Errors.
    assert_error(
        r.post("/invite", Some(&r.token), &json!({"alias": "carol"})),
        409,
        "alias_taken",
    );
    assert_error(
        r.post("/invite", Some(&r.token), &json!({"alias": "operator"})),
        409,
        "alias_taken",
    );
    for bad in ["Bad", "a.b", "../x", "-x", "", "system"] {
        assert_error(
            r.post("/invite", Some(&r.token), &json!({"alias": bad})),
            400,
            "invalid_alias",
        );
    }
    assert_error(
        r.post(
            "/invite",
            Some(&r.token),
            &json!({"alias": "d", "kind": "robot"}),
        ),
        400,
        "invalid_kind",
    );
    assert_error(
        r.post(
            "/invite",
            Some(&r.token),
            &json!({"alias": "d", "kind": "system"}),
        ),
        400,
        "invalid_kind",
    );
    assert_error(
        r.post("/invite", Some(&carol), &json!({"alias": "mallory"})),
        403,
        "host_required",
    );
    assert_error(
        r.post("/remove", Some(&carol), &json!({"alias": "operator"})),
        403,
        "host_required",
    );
    assert_error(
        r.post("/remove", Some(&r.token), &json!({"alias": "operator"})),
        409,
        "cannot_remove_host",
    );
    assert_error(
        r.post("/remove", Some(&r.token), &json!({"alias": "ghost"})),
        404,
        "not_found",
    );

    // The CLI invite (through the server) shows the same shape.
    let dave = r.invite("dave", "agent");
    for f in ["token", "card_command", "browser_url", "invite_uri"] {
        assert!(dave.json[f].is_string(), "room invite --json lacks {f}");
    }
    let m = r.say(&dave.token, "dave was here");

    // Remove dave: a system message; his writes are 410, reads refused too.
    let (s, v) = r.post("/remove", Some(&r.token), &json!({"alias": "dave"}));
    assert_eq!(s, 200, "{v}");
    let last = r.last_message();
    assert_eq!(last["type"], "system");
    assert!(
        last["text"].as_str().unwrap().contains("dave was removed"),
        "{last}"
    );
    for (path, body) in [
        ("/messages", json!({"text": "still here?"})),
        ("/join", json!({})),
        ("/leave", json!({})),
        ("/profile", json!({"display_name": "Dave"})),
    ] {
        assert_error(
            r.post(path, Some(&dave.token), &body),
            410,
            "participant_removed",
        );
    }
    assert_error(
        r.get("/messages", Some(&dave.token)),
        410,
        "participant_removed",
    );
    assert_error_resp(
        &r.request(Req::get("/card").token(&dave.token)),
        410,
        "participant_removed",
    );
    assert_error(
        r.post("/remove", Some(&r.token), &json!({"alias": "dave"})),
        409,
        "already_removed",
    );
    // The alias stays taken, his message stays in the log, the roster marks him removed.
    assert_error(
        r.post("/invite", Some(&r.token), &json!({"alias": "dave"})),
        409,
        "alias_taken",
    );
    assert!(r.all_messages().iter().any(|x| x["id"] == m["id"]));
    let p = r.roster_entry("dave");
    assert_eq!(p["attendance_state"], "removed", "{p}");
    // A mention of a removed participant no longer counts.
    assert_eq!(
        r.say(&r.token, "@dave are you there")["mentions"],
        json!([])
    );
}
