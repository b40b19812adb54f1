//! The HTTP edges: unknown paths, wrong methods and auth, which hosts and origins may
//! reach the room, same-origin writes via localhost, and oversized headers.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

// ---------------------------------------------------------------------------------------
// Routing, auth, exposure

#[test]
fn unknown_paths_wrong_methods_and_auth() {
    let r = TestRoom::start("routing");
    let resp = r.request(Req::get("/nope").token(&r.token));
    assert_error_resp(&resp, 404, "not_found");
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.contains("json"))
    );
    assert_error_resp(&r.request(Req::get("/messages/1")), 404, "not_found");
    assert_error_resp(&r.request(Req::post("/nope").body("{}")), 404, "not_found");

    for (method, path) in [
        ("GET", "/join"),
        ("GET", "/close"),
        ("GET", "/leave"),
        ("DELETE", "/messages"),
        ("PUT", "/brief"),
        ("POST", "/wait"),
        ("POST", "/status"),
        ("GET", "/invite"),
        ("PATCH", "/profile"),
    ] {
        let resp = r.request(Req::new(method, path).token(&r.token));
        assert_eq!(resp.status, 405, "{method} {path}: {}", resp.text());
        let v = resp.json();
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["error"].is_string(), "{v}");
    }

    // 401 without a token, with a wrong token, with a malformed header.
    for (method, path) in [
        ("GET", "/brief"),
        ("POST", "/brief"),
        ("GET", "/messages"),
        ("POST", "/messages"),
        ("GET", "/wait"),
        ("POST", "/join"),
        ("POST", "/leave"),
        ("POST", "/close"),
        ("GET", "/status"),
        ("GET", "/profile"),
        ("POST", "/attendance"),
        ("POST", "/invite"),
        ("POST", "/remove"),
        ("GET", "/export"),
        ("GET", "/card"),
    ] {
        let mk = || {
            let q = Req::new(method, path);
            if method == "POST" { q.body("{}") } else { q }
        };
        assert_error_resp(&r.request(mk()), 401, "unauthorized");
        assert_error_resp(
            &r.request(mk().token("tgl_not-a-real-token")),
            401,
            "unauthorized",
        );
        assert_error_resp(
            &r.request(mk().header("Authorization", &format!("Basic {}", r.token))),
            401,
            "unauthorized",
        );
    }
    // The bearer scheme is case-insensitive; the token itself is exact.
    let resp =
        r.request(Req::get("/status").header("Authorization", &format!("bearer {}", r.token)));
    assert_eq!(resp.status, 200);
    let upper = r.token.to_uppercase();
    if upper != r.token {
        assert_error_resp(
            &r.request(Req::get("/status").token(&upper)),
            401,
            "unauthorized",
        );
    }
}

#[test]
fn exposure_rules_host_and_origin() {
    let r = TestRoom::start("exposure");
    let t = r.token.clone();
    // A non-loopback Host is refused, even with a valid token and even for GET /.
    for host in [
        "example.com",
        "example.com:80",
        "10.0.0.1",
        "127.0.0.1.evil.com",
    ] {
        assert_error_resp(
            &r.request(Req::get("/status").token(&t).header("Host", host)),
            403,
            "insecure_remote",
        );
        assert_error_resp(
            &r.request(Req::get("/").header("Host", host)),
            403,
            "insecure_remote",
        );
    }
    assert_error_resp(
        &r.request(
            Req::post("/messages")
                .token(&t)
                .header("Host", "example.com")
                .json(&json!({"text": "via a foreign host"})),
        ),
        403,
        "insecure_remote",
    );
    // Loopback names are fine.
    for host in [
        "localhost",
        &format!("localhost:{}", r.port),
        "127.0.0.1",
        "[::1]",
    ] {
        let resp = r.request(Req::get("/status").token(&t).header("Host", host));
        assert_eq!(resp.status, 200, "{host}: {}", resp.text());
    }
    // Cross-origin writes are refused; same-origin and no-origin writes pass.
    let before = r.all_messages().len();
    for (h, v) in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Origin", "http://127.0.0.1:1"),
        ("Referer", "http://evil.example/page"),
    ] {
        assert_error_resp(
            &r.request(
                Req::post("/messages")
                    .token(&t)
                    .header(h, v)
                    .json(&json!({"text": "csrf"})),
            ),
            403,
            "bad_origin",
        );
    }
    assert_error_resp(
        &r.request(
            Req::post("/close")
                .token(&t)
                .header("Origin", "http://evil.example")
                .body("{}"),
        ),
        403,
        "bad_origin",
    );
    assert_eq!(
        r.all_messages().len(),
        before,
        "nothing was posted cross-origin"
    );
    assert_eq!(r.status(&t)["room_status"], "open");
    let resp = r.request(
        Req::post("/messages")
            .token(&t)
            .header("Origin", &r.url)
            .json(&json!({"text": "same origin"})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = r.request(
        Req::post("/messages")
            .token(&t)
            .header("Referer", &format!("{}/#token=x", r.url))
            .json(&json!({"text": "same origin referer"})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    // Reads with a foreign Origin are not writes.
    let resp = r.request(
        Req::get("/status")
            .token(&t)
            .header("Origin", "http://evil.example"),
    );
    assert_eq!(resp.status, 200);
}

#[test]
fn same_origin_write_via_localhost_is_allowed() {
    // The browser room opened at http://localhost:PORT (Host is loopback, so GET / is
    // served) posts with Origin: http://localhost:PORT, which is its own origin.
    let r = TestRoom::start("localhost-origin");
    let origin = format!("http://localhost:{}", r.port);
    let host = format!("localhost:{}", r.port);
    assert_eq!(r.request(Req::get("/").header("Host", &host)).status, 200);
    let resp = r.request(
        Req::post("/messages")
            .token(&r.token)
            .header("Host", &host)
            .header("Origin", &origin)
            .json(&json!({"text": "from the localhost page"})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
}

#[test]
fn oversized_headers_are_refused_and_the_server_keeps_serving() {
    let r = TestRoom::start("big-headers");
    let huge = "x".repeat(1024 * 1024);
    let req = format!(
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nX-Big: {huge}\r\n\r\n",
        r.token
    );
    if let Ok(out) = send_raw_bytes(r.port, req.as_bytes(), Duration::from_secs(15)) {
        let head = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
        assert!(
            out.is_empty() || head.starts_with("HTTP/1.1 4"),
            "a 1 MB header got: {head}"
        );
    }
    let many: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!(
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n{many}\r\n",
        r.token
    );
    if let Ok(out) = send_raw_bytes(r.port, req.as_bytes(), Duration::from_secs(15)) {
        let head = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
        assert!(
            out.is_empty() || head.starts_with("HTTP/1.1 4") || head.starts_with("HTTP/1.1 200"),
            "5000 headers got: {head}"
        );
    }
    assert_eq!(r.status(&r.token)["ok"], true);
}
