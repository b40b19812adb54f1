//! Crash safety of the room log, end to end: kill -9 the real server during a burst of
//! posts and restart it; torn and corrupt lines; the one-writer lock; a full disk; and a
//! graceful SIGTERM.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const PARTICIPANTS: usize = 100;
const POSTS_EACH: usize = 20;

#[derive(Default)]
struct BurstResult {
    /// (id, alias, text) of every post that got its 201.
    acked: Vec<(u64, String, String)>,
    /// Answers that were neither a 201 nor a transport failure.
    unexpected: Vec<String>,
    transport_errors: usize,
}

/// Fires PARTICIPANTS × POSTS_EACH concurrent posts and SIGKILLs the server once
/// `kill_after` of them are acknowledged.
fn burst_and_kill(
    r: &mut TestRoom,
    round: usize,
    tokens: &[(String, String)],
    kill_after: usize,
) -> BurstResult {
    let port = r.port;
    let acked_count = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let result = Arc::new(Mutex::new(BurstResult::default()));
    let barrier = Arc::new(Barrier::new(tokens.len() + 1));
    let mut handles = Vec::new();
    for (alias, token) in tokens {
        let (alias, token) = (alias.clone(), token.clone());
        let acked_count = acked_count.clone();
        let finished = finished.clone();
        let result = result.clone();
        let barrier = barrier.clone();
        handles.push(std::thread::spawn(move || {
            barrier.wait();
            for j in 0..POSTS_EACH {
                let text = format!("r{round}-{alias}-{j}");
                let req = Req::post("/messages")
                    .token(&token)
                    .json(&json!({"text": text, "client_msg_id": text}))
                    .timeout(Duration::from_secs(15));
                match req.try_send(port) {
                    Ok(resp) if resp.status == 201 => {
                        let v = resp.json();
                        let id = v["message"]["id"].as_u64().expect("an id");
                        assert_eq!(v["message"]["text"], text.as_str());
                        result.lock().unwrap().acked.push((id, alias.clone(), text));
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(resp) => result.lock().unwrap().unexpected.push(format!(
                        "{} {}",
                        resp.status,
                        resp.text()
                    )),
                    Err(_) => result.lock().unwrap().transport_errors += 1,
                }
            }
            finished.fetch_add(1, Ordering::SeqCst);
        }));
    }
    barrier.wait();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_count.load(Ordering::SeqCst) < kill_after
        && finished.load(Ordering::SeqCst) < tokens.len()
    {
        assert!(Instant::now() < deadline, "the burst stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    r.server.kill();
    for h in handles {
        h.join().expect("a poster thread panicked");
    }
    Arc::try_unwrap(result)
        .ok()
        .expect("all threads done")
        .into_inner()
        .unwrap()
}

/// Checks the log (through the API and on disk) against what was acknowledged.
fn check_log(r: &TestRoom, acked: &[(u64, String, String)]) -> u64 {
    let api = r.all_messages();
    let api_ids: Vec<u64> = api.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert!(
        api_ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase"
    );
    let expected: Vec<u64> = (1..=api_ids.len() as u64).collect();
    assert_eq!(api_ids, expected, "ids run from 1 with no gap");
    // On disk: every line parses, same messages, same order.
    let lines = read_log_lines(&r.log_path());
    let disk_ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    assert_eq!(disk_ids, api_ids, "the API serves exactly the log");
    for (line, m) in lines.iter().zip(&api) {
        assert_eq!(line, m);
    }
    let unique: HashSet<u64> = disk_ids.iter().copied().collect();
    assert_eq!(unique.len(), disk_ids.len(), "no duplicate ids");
    // Every text is in the log at most once (each was posted once), and every
    // acknowledged one exactly once, under its acknowledged id and author.
    let mut by_text: HashMap<&str, Vec<&Value>> = HashMap::new();
    for m in &api {
        by_text
            .entry(m["text"].as_str().unwrap())
            .or_default()
            .push(m);
    }
    for (text, ms) in &by_text {
        assert_eq!(ms.len(), 1, "{text:?} is in the log {} times", ms.len());
    }
    let by_id: BTreeMap<u64, &Value> = api.iter().map(|m| (m["id"].as_u64().unwrap(), m)).collect();
    let mut acked_ids = HashSet::new();
    for (id, alias, text) in acked {
        assert!(acked_ids.insert(*id), "id {id} was acknowledged twice");
        let m = by_id
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged message {id} ({text}) is lost"));
        assert_eq!(m["text"], text.as_str(), "message {id}");
        assert_eq!(m["from"], alias.as_str(), "message {id}");
        assert_eq!(by_text[text.as_str()].len(), 1);
    }
    *api_ids.last().unwrap()
}

#[test]
fn kill_9_during_a_burst_loses_and_duplicates_nothing() {
    let mut r = TestRoom::start("crash-burst");
    let tokens: Vec<(String, String)> = (0..PARTICIPANTS)
        .map(|i| {
            let alias = format!("p{i}");
            let inv = r.invite_http(&alias, "agent");
            (alias, inv.token)
        })
        .collect();
    let total = PARTICIPANTS * POSTS_EACH;
    let mut all_acked = Vec::new();
    for (round, kill_after) in [(1, 400), (2, 200)] {
        let res = burst_and_kill(&mut r, round, &tokens, kill_after);
        assert!(
            res.unexpected.is_empty(),
            "answers other than 201: {:?}",
            &res.unexpected[..res.unexpected.len().min(5)]
        );
        assert!(
            res.acked.len() >= kill_after.min(total),
            "only {} acknowledged",
            res.acked.len()
        );
        assert!(
            res.acked.len() < total,
            "the kill came after the whole burst (round {round}); nothing was tested"
        );
        eprintln!(
            "round {round}: {} acknowledged, {} transport errors",
            res.acked.len(),
            res.transport_errors
        );
        all_acked.extend(res.acked);
        r.restart();
        let last = check_log(&r, &all_acked);
        // Posting continues after the last id.
        let m = r.say(&r.token, &format!("after round {round}"));
        assert_eq!(m["id"].as_u64().unwrap(), last + 1, "ids continue");
        check_log(&r, &all_acked);
    }
    // Retrying an acknowledged post with its client_msg_id after the crash appends nothing.
    let (id, alias, text) = all_acked[0].clone();
    let token = &tokens.iter().find(|(a, _)| *a == alias).unwrap().1;
    let before = r.all_messages().len();
    let (s, v) = r.post(
        "/messages",
        Some(token),
        &json!({"text": text, "client_msg_id": text}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["idempotent"], true);
    assert_eq!(v["message"]["id"], id);
    assert_eq!(r.all_messages().len(), before);
}

#[test]
fn torn_final_line_is_tolerated_on_restart() {
    let mut r = TestRoom::start("torn-tail");
    for i in 0..3 {
        r.say(&r.token, &format!("kept {i}"));
    }
    let before = r.all_messages();
    let last = before.last().unwrap()["id"].as_u64().unwrap();
    r.server.kill();
    // A crash mid-append: the start of the next line, no newline.
    let torn = format!(
        "{{\"id\":{},\"room\":\"torn-tail\",\"ts\":\"2026-01-01T00:00:00.000Z\",\"from\":\"operator\",\"type\":\"message\",\"te",
        last + 1
    );
    let path = r.log_path();
    let mut bytes = std::fs::read(&path).unwrap();
    let clean_len = bytes.len();
    bytes.extend_from_slice(torn.as_bytes());
    std::fs::write(&path, &bytes).unwrap();
    r.restart();
    assert_eq!(r.all_messages(), before, "the torn line is not a message");
    let m = r.say(&r.token, "after the tear");
    assert_eq!(
        m["id"].as_u64().unwrap(),
        last + 1,
        "the torn id is reused: it was never acknowledged"
    );
    let lines = read_log_lines(&path);
    assert_eq!(lines.len(), before.len() + 1);
    assert_eq!(lines.last().unwrap()["text"], "after the tear");
    assert!(std::fs::read(&path).unwrap().len() > clean_len);

    // Garbage bytes (not even JSON, invalid UTF-8) as the tail: same.
    r.server.kill();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"\xff\xfe garbage {{{");
    std::fs::write(&path, &bytes).unwrap();
    r.restart();
    let m2 = r.say(&r.token, "after garbage");
    assert_eq!(m2["id"].as_u64().unwrap(), last + 2);
    read_log_lines(&path);
}

#[test]
fn corrupt_middle_line_is_skipped_not_fatal() {
    let mut r = TestRoom::start("corrupt-middle");
    r.say(&r.token, "one");
    r.server.kill();
    let path = r.log_path();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"this line is not json\n");
    std::fs::write(&path, &bytes).unwrap();
    r.restart();
    let msgs = r.all_messages();
    assert!(msgs.iter().all(|m| m["id"].is_u64()));
    let last = msgs.last().unwrap()["id"].as_u64().unwrap();
    let m = r.say(&r.token, "two");
    assert_eq!(m["id"].as_u64().unwrap(), last + 1);
    let again = r.all_messages();
    assert_eq!(again.last().unwrap()["text"], "two");
}

#[test]
fn one_writer_per_room_and_a_dead_holder_is_taken_over() {
    let mut r = TestRoom::start("lock");
    // A second server on the same room refuses, clearly, and the first keeps serving.
    let other = free_port();
    let err = Server::try_spawn(&r.home, other, &[]);
    let (status, stderr) = match err {
        Ok(_) => panic!("a second room serve started on a room in use"),
        Err(e) => e,
    };
    assert!(!status.success(), "{status}");
    assert!(
        stderr.contains("in use"),
        "the refusal should say the room is in use: {stderr}"
    );
    assert!(
        stderr.contains(&r.server.pid().to_string()),
        "and by which process: {stderr}"
    );
    assert_eq!(r.status(&r.token)["ok"], true);
    r.say(&r.token, "first server still writes");
    // SIGKILL the first: its lock dies with it and the next start takes over.
    r.server.kill();
    let url = r.url.clone();
    let _second = Server::spawn(&r.home, other, &["--url", &url]);
    let (s, v) = get(other, "/status", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(
        other,
        "/messages",
        Some(&r.token),
        &json!({"text": "second server writes"}),
    );
    assert_eq!(s, 201, "{v}");
    let lines = read_log_lines(&r.log_path());
    assert_eq!(lines.last().unwrap()["text"], "second server writes");
    assert!(
        lines
            .iter()
            .any(|l| l["text"] == "first server still writes")
    );
}

#[test]
fn sigterm_answers_held_waits_flushes_and_exits_zero() {
    let mut r = TestRoom::start("sigterm");
    let bob = r.invite("bob", "agent");
    let m = r.say(&r.token, "read me");
    // bob reads through m (a read receipt that must survive the stop).
    let (_, v) = r.get("/messages?since_id=0", Some(&bob.token));
    assert_eq!(v["next_since_id"], m["id"]);
    let last = m["id"].as_u64().unwrap();
    let port = r.port;
    let token = bob.token.clone();
    let waiter = std::thread::spawn(move || {
        Req::get(&format!(
            "/wait?participant=bob&since_id={last}&timeout_ms=20000"
        ))
        .token(&token)
        .try_send(port)
    });
    r.until_waiting("bob");
    let t0 = Instant::now();
    r.server.signal(libc::SIGTERM);
    let answer = waiter.join().unwrap();
    let resp = answer.expect("the held wait is answered, not reset");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["next_since_id"], last, "{v}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let status = r
        .server
        .wait_exit(Duration::from_secs(10))
        .expect("the server exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}: {}",
        r.server.log_text()
    );
    // The read receipt reached the disk, and the lock is free for the next start.
    let parts: Value = serde_json::from_slice(
        &std::fs::read(r.home.room_dir(&r.room).join("participants.json")).unwrap(),
    )
    .unwrap();
    let bob_rec = parts["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["alias"] == "bob")
        .unwrap();
    assert_eq!(bob_rec["read_through_id"], last, "{bob_rec}");
    r.restart();
    assert_eq!(r.roster_entry("bob")["read_through_id"], last);
    read_log_lines(&r.log_path());

    // SIGINT (ctrl-c) stops it the same way.
    r.server.signal(libc::SIGINT);
    let status = r
        .server
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGINT");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn full_disk_is_a_clear_error_and_never_a_half_line() {
    let home = TempHome::new("disk-full");
    let port = free_port();
    let v = start_room(&home, "disk-full", port, &[]);
    let token = v["token"].as_str().unwrap().to_string();
    let log = home.log_path("disk-full");
    let start_len = std::fs::metadata(&log).unwrap().len();
    // The server may write at most ~20 KB into any file: a "full disk" for the log.
    let limit = start_len + 20_000;
    let mut server = Server::try_spawn_with(&home, port, &[], move |cmd| {
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(move || {
                let rl = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
    .unwrap_or_else(|(s, e)| panic!("serve failed ({s}): {e}"));
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..40 {
        let text = format!("{i:03} {}", "x".repeat(1500));
        let (s, v) = post(port, "/messages", Some(&token), &json!({"text": text}));
        match s {
            201 => acked.push((v["message"]["id"].as_u64().unwrap(), text)),
            _ => {
                refused = Some((s, v));
                break;
            }
        }
    }
    let (s, v) = refused.expect("the log hit the file size limit");
    assert_eq!(s, 507, "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "room_log_full", "{v}");
    assert!(!acked.is_empty());
    // Still serving, and the log on disk is whole lines only.
    let (s, _) = get(port, "/status", Some(&token));
    assert_eq!(s, 200, "the server survives a full disk");
    let lines = read_log_lines(&log);
    assert!(std::fs::metadata(&log).unwrap().len() <= limit);
    // A refused post is not in the log; the acknowledged ones are.
    for (id, text) in &acked {
        assert!(
            lines
                .iter()
                .any(|l| l["id"] == *id && l["text"] == text.as_str()),
            "acknowledged {id} missing"
        );
    }
    let last = lines.last().unwrap()["id"].as_u64().unwrap();
    assert_eq!(last, acked.last().unwrap().0);
    // With space again (a restart without the limit), ids continue.
    server.kill();
    let _server = Server::spawn(&home, port, &[]);
    let (s, v) = post(
        port,
        "/messages",
        Some(&token),
        &json!({"text": "space again"}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"]["id"].as_u64().unwrap(), last + 1);
    read_log_lines(&log);
}

#[test]
fn serve_on_a_busy_port_fails_clearly_and_frees_the_room() {
    let home = TempHome::new("busy-port");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let v = start_room(&home, "busy-port", port, &[]);
    let token = v["token"].as_str().unwrap().to_string();
    // (Not Server::try_spawn: our own listener would answer its readiness probe.)
    let port_s = port.to_string();
    let mut child = command(&home, &["room", "serve", "--port", &port_s])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("room serve kept running on a port in use");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains(&port.to_string()),
        "the error names the port: {err}"
    );
    drop(busy);
    // The failed start left the room usable: a serve on a free port works.
    let other = free_port();
    let url = format!("http://127.0.0.1:{other}");
    let _server = Server::spawn(&home, other, &["--url", &url]);
    let (s, v) = post(other, "/messages", Some(&token), &json!({"text": "served"}));
    assert_eq!(s, 201, "{v}");
}

#[test]
fn tricky_texts_survive_a_restart_byte_for_byte() {
    let mut r = TestRoom::start("tricky-texts");
    let texts = [
        "line one\nline two\r\nline three",
        "  leading and trailing spaces  ",
        "nul \u{0} and bell \u{7} and escape \u{1b}[31m",
        "separators \u{2028} \u{2029} and \u{85}",
        "quotes \" and backslash \\ and {\"id\": 1}",
        "emoji 🦀🧪 and combining e\u{301}",
        "}\n{\"id\":999999,\"text\":\"injected\"}\n{",
        "\u{feff}bom first",
    ];
    let mut ids = Vec::new();
    for t in texts {
        let m = r.say(&r.token, t);
        assert_eq!(m["text"], t);
        ids.push(m["id"].as_u64().unwrap());
    }
    let check_texts = |r: &TestRoom| {
        let msgs = r.all_messages();
        for (id, t) in ids.iter().zip(texts) {
            let m = msgs.iter().find(|m| m["id"] == *id).expect("message kept");
            assert_eq!(m["text"], t, "message {id}");
        }
        assert!(!msgs.iter().any(|m| m["id"] == 999_999));
        let lines = read_log_lines(&r.log_path());
        assert_eq!(lines.len(), msgs.len(), "one line per message");
    };
    check_texts(&r);
    r.server.kill();
    r.restart();
    check_texts(&r);
    let m = r.say(&r.token, "next");
    assert_eq!(m["id"].as_u64().unwrap(), ids.last().unwrap() + 1);
}

/// Property-style: the same burst, killed at kill points drawn from a handful of fixed
/// seeds (so a failure reproduces), each followed by a restart and the full log check.
#[test]
fn kill_9_at_random_points_keeps_every_acknowledged_message() {
    let mut r = TestRoom::start("crash-random");
    let tokens: Vec<(String, String)> = (0..PARTICIPANTS)
        .map(|i| {
            let alias = format!("q{i}");
            (alias.clone(), r.invite_http(&alias, "agent").token)
        })
        .collect();
    let total = PARTICIPANTS * POSTS_EACH;
    let mut all_acked = Vec::new();
    for (n, seed) in [
        0x5eed_0001u64,
        0x5eed_0002,
        0x5eed_0003,
        0x5eed_0004,
        0x5eed_0005,
    ]
    .into_iter()
    .enumerate()
    {
        let mut x = seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let kill_after = 1 + (x as usize) % (total / 2);
        let res = burst_and_kill(&mut r, 10 + n, &tokens, kill_after);
        assert!(
            res.unexpected.is_empty(),
            "seed {seed:#x}: {:?}",
            &res.unexpected[..res.unexpected.len().min(5)]
        );
        all_acked.extend(res.acked);
        r.restart();
        let last = check_log(&r, &all_acked);
        let m = r.say(&r.token, &format!("after seed {seed:#x}"));
        assert_eq!(
            m["id"].as_u64().unwrap(),
            last + 1,
            "seed {seed:#x}: ids continue"
        );
    }
}

/// Older or damaged room files: start-up recovers what it can, and refuses with a message
/// naming the file when it cannot; it never panics.
#[test]
fn old_and_damaged_room_files_recover_or_refuse_by_name() {
    let mut r = TestRoom::start("old-files");
    r.say(&r.token, "before");
    r.server.kill();
    let dir = r.home.room_dir("old-files");
    // room.json with only the fields of an early version.
    std::fs::write(dir.join("room.json"), br#"{"room": "old-files"}"#).unwrap();
    // participants.json in the version-0 form: a bare array.
    let parts: Value =
        serde_json::from_slice(&std::fs::read(dir.join("participants.json")).unwrap()).unwrap();
    let legacy: Vec<Value> = parts["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!({"alias": p["alias"], "token_hash": p["token_hash"], "is_host": p["is_host"]}))
        .collect();
    std::fs::write(
        dir.join("participants.json"),
        serde_json::to_vec(&legacy).unwrap(),
    )
    .unwrap();
    r.restart();
    let s = r.status(&r.token);
    assert_eq!(s["room_status"], "open", "{s}");
    assert_eq!(s["brief_version"], 1);
    assert_eq!(r.say(&r.token, "after")["text"], "after");
    r.server.kill();

    // A participants file that is not JSON: refused, naming the file.
    std::fs::write(dir.join("participants.json"), b"{ not json").unwrap();
    let port = common::free_port();
    match common::Server::try_spawn(&r.home, port, &[]) {
        Ok(_) => panic!("a server started on a corrupt participants.json"),
        Err((status, err)) => {
            assert!(!status.success());
            assert!(err.contains("participants.json"), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // A room.json that is not JSON: the same.
    std::fs::write(
        dir.join("participants.json"),
        serde_json::to_vec(&legacy).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("room.json"), b"\x00\x01").unwrap();
    match common::Server::try_spawn(&r.home, port, &[]) {
        Ok(_) => panic!("a server started on a corrupt room.json"),
        Err((status, err)) => {
            assert!(!status.success());
            assert!(err.contains("room.json"), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}
