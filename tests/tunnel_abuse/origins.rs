//! Each room is its own origin: a hostile host's page cannot reach another room's, nor
//! install a service worker, nor lock browsers out with a cookie bomb on the parent
//! domain. Checked here at the HTTP level; `chromium.rs` replays it in a real browser.

use std::time::Duration;

use crate::common::*;
use crate::tunnel_support::*;
use crate::{EVIL_PAGE, EvilHost};

#[test]
fn each_room_is_its_own_origin_and_no_host_installs_a_worker() {
    let room = TestRoom::start("abuse-origin");
    let broker = Broker::start(&room.home, &["--ip-rate", "1000"]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "victim", &[]);
    let set = t.wait_event("public_url_set", 1, Duration::from_secs(15));
    // The room's own origin, not a path on an origin it shares with every other room.
    assert_eq!(set["url"], room_origin("victim").as_str());
    let evil = EvilHost::start(port, "evil", EVIL_PAGE);
    assert_eq!(evil.registered["public_url"], room_origin("evil").as_str());

    // The hostile host's page comes through without the headers it could use against
    // its origin's later visitors.
    let r = via(port, "evil", Req::get("/"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), EVIL_PAGE);
    for h in ["service-worker-allowed", "clear-site-data", "set-cookie"] {
        assert!(r.header(h).is_none(), "{h} came through");
    }

    // A service worker script is never fetched through the broker, whatever the room.
    for slug in ["evil", "victim"] {
        let r = via(
            port,
            slug,
            Req::get("/sw.js").header("Service-Worker", "script"),
        );
        assert_error_resp(&r, 403, "service_worker_refused");
    }
    assert!(
        evil.seen().iter().all(|s| s.path != "/sw.js"),
        "{:?}",
        evil.seen()
    );

    // The room is reached by its host name only: a path naming it on another room's
    // origin goes to that other room, and the broker's own name serves no room.
    let invite = room.invite_http("alice", "agent");
    let r = via(
        port,
        "evil",
        Req::get("/victim/status").token(&invite.token),
    );
    assert_eq!(r.text(), EVIL_PAGE);
    let r = Req::get("/victim/status")
        .token(&room.token)
        .header("Host", DOMAIN)
        .send(port);
    assert_error_resp(&r, 404, "not_found");
    let r = via(port, "victim", Req::get("/status").token(&invite.token));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["room"], "abuse-origin");
}

// ---------------------------------------------------------------------------------------
// A cookie bomb on the broker's parent domain (issue 22, NM3).

/// What Chromium sends after a room's page set the most cookies it keeps for one domain
/// (180) on the broker's parent domain, each of 3.9 KB: `(name, value)` pairs.
fn cookie_bomb() -> Vec<(String, String)> {
    (0..180)
        .map(|i| (format!("bomb{i}"), "x".repeat(3_900)))
        .collect()
}

#[test]
fn a_cookie_bomb_on_the_parent_domain_locks_no_browser_out_of_the_rooms() {
    let room = TestRoom::start("abuse-cookies");
    let broker = Broker::start(&room.home, &["--ip-rate", "1000"]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "victim", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let evil = EvilHost::start(port, "evil", EVIL_PAGE);
    let bomb = cookie_bomb();
    // Over HTTP/1.1 the browser sends them as one `Cookie` field of ~700 KB.
    let joined = bomb
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(joined.len() > 700_000);

    let r = via(
        port,
        "victim",
        Req::get("/status")
            .token(&room.token)
            .header("Cookie", &joined),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["room"], "abuse-cookies");
    let r = via(port, "evil", Req::get("/").header("Cookie", &joined));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), EVIL_PAGE);

    // Over h2 (an edge proxy carrying the browser's request) each cookie is its own field.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut tx = h2(port).await;
        let auth = format!("Bearer {}", room.token);
        let crumbs: Vec<(&str, String)> = bomb
            .iter()
            .map(|(k, v)| ("cookie", format!("{k}={v}")))
            .collect();
        let with_bomb = |mut headers: Vec<(&'static str, String)>| {
            headers.extend(crumbs.iter().cloned());
            headers
        };
        let headers = with_bomb(vec![("authorization", auth)]);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, v, _) = h2_send(&mut tx, h2_get("victim", "/status", &pairs)).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["room"], "abuse-cookies");
        let headers = with_bomb(Vec::new());
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, _, _) = h2_send(&mut tx, h2_get("evil", "/", &pairs)).await;
        assert_eq!(s, 200);
    });

    // No cookie ever reached a room: the host saw both requests, neither with a cookie.
    let seen = evil.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert!(
            s.headers
                .iter()
                .all(|(k, _)| !k.eq_ignore_ascii_case("cookie")),
            "a cookie reached the room: {:?}",
            s.headers.iter().map(|(k, _)| k).collect::<Vec<_>>()
        );
    }
}
