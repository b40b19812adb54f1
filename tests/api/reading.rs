//! Reading the log: `GET /messages` (since id, limit) and `/export` of the whole room.

use serde_json::json;

use crate::common::*;
use crate::{ids, texts};

// ---------------------------------------------------------------------------------------
// GET /messages

#[test]
fn messages_since_id_and_limit() {
    let r = TestRoom::start("messages-get");
    for i in 1..=5 {
        r.say(&r.token, &format!("m{i}"));
    }
    let all = r.all_messages();
    let all_ids = ids(&all);
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "{all_ids:?}");
    assert_eq!(all_ids[0], 1, "ids start at 1");
    let (s, v) = r.get("/messages", Some(&r.token));
    assert_eq!(s, 200);
    assert_eq!(
        ids(v["messages"].as_array().unwrap()),
        all_ids,
        "no since_id = 0"
    );

    // Exclusive since_id.
    let mid = all_ids[2];
    let (s, v) = r.get(&format!("/messages?since_id={mid}"), Some(&r.token));
    assert_eq!(s, 200, "{v}");
    let got = ids(v["messages"].as_array().unwrap());
    assert_eq!(got, all_ids[3..].to_vec());
    assert_eq!(v["next_since_id"], *all_ids.last().unwrap());
    // Past the end: empty, next_since_id unchanged.
    let last = *all_ids.last().unwrap();
    let (s, v) = r.get(&format!("/messages?since_id={}", last + 10), Some(&r.token));
    assert_eq!(s, 200);
    assert_eq!(v["messages"], json!([]));
    assert_eq!(v["next_since_id"], last + 10);

    // limit.
    let (s, v) = r.get("/messages?since_id=0&limit=2", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        ids(v["messages"].as_array().unwrap()),
        all_ids[..2].to_vec()
    );
    assert_eq!(v["next_since_id"], all_ids[1]);
    assert_eq!(v["has_more"], true);

    // tail: the newest N, oldest first; the cursor moves to the end.
    let (s, v) = r.get("/messages?since_id=0&tail=2", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        ids(v["messages"].as_array().unwrap()),
        all_ids[all_ids.len() - 2..].to_vec()
    );
    assert_eq!(v["next_since_id"], last);
    assert_eq!(v["has_more"], false);
    assert_error(
        r.get("/messages?tail=x", Some(&r.token)),
        400,
        "invalid_query",
    );

    // Message shape.
    let m = all.iter().find(|m| m["text"] == "m1").unwrap();
    for f in ["id", "room", "ts", "from", "type", "text", "mentions"] {
        assert!(m.get(f).is_some(), "message lacks {f}: {m}");
    }
    assert_eq!(m["room"], "messages-get");
    assert_eq!(m["type"], "message");
    assert_eq!(m["from"], "operator");

    for bad in ["-1", "abc", "1.5", "1e3", "%20"] {
        assert_error(
            r.get(&format!("/messages?since_id={bad}"), Some(&r.token)),
            400,
            "invalid_since_id",
        );
    }
    let (s, _) = r.get("/messages?since_id=0&limit=abc", Some(&r.token));
    assert_eq!(s, 400);
    assert_error(r.get("/messages", None), 401, "unauthorized");
    assert_error(r.get("/messages", Some("tgl_bogus")), 401, "unauthorized");
}

// ---------------------------------------------------------------------------------------
// /export

#[test]
fn export_markdown_and_json() {
    let r = TestRoom::start("export");
    let bob = r.invite("bob", "agent");
    r.say(&bob.token, "exported line with **markdown**");
    let log_before = std::fs::read(r.log_path()).unwrap();

    let resp = r.request(Req::get("/export?format=md").token(&r.token));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/markdown")),
        "{:?}",
        resp.headers
    );
    let md = resp.text();
    assert!(md.contains("exported line with **markdown**"), "{md}");
    assert!(md.contains(DEFAULT_BRIEF), "{md}");
    assert!(!md.contains(&bob.token) && !md.contains(&r.token));

    let (s, v) = r.get("/export?format=json", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    assert!(v["version"].is_u64(), "{v}");
    assert_eq!(v["room"], "export");
    let msgs = v["messages"].as_array().expect("messages");
    assert!(texts(msgs).contains(&"exported line with **markdown**".to_string()));
    assert!(!v.to_string().contains("tgl_"));
    assert!(!v.to_string().contains("token_hash"));
    // Default format is JSON.
    let (s, v2) = r.get("/export", Some(&r.token));
    assert_eq!(s, 200);
    assert_eq!(v2["messages"], v["messages"]);

    assert_error(
        r.get("/export?format=xml", Some(&r.token)),
        400,
        "invalid_format",
    );
    assert_error(
        r.get("/export?format=json", Some(&bob.token)),
        403,
        "host_required",
    );
    assert_error(r.get("/export", None), 401, "unauthorized");
    assert_eq!(
        std::fs::read(r.log_path()).unwrap(),
        log_before,
        "export never changes the log"
    );
}
