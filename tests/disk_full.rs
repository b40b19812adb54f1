//! A write failure (here: the file size limit, as a full disk would) gives 507 with the
//! error contract, leaves no half line in the log, and posting works again once space
//! returns.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agentgather");

fn set_fsize(pid: i32, bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit with a valid pid and a valid rlimit pointer; old limit not requested.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit failed");
}

fn post(url: &str, token: &str, text: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(format!("{url}/messages"))
        .header("Authorization", &format!("Bearer {token}"))
        .send(json!({"text": text}).to_string())
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap(),
    )
}

#[test]
fn full_disk_is_a_clean_507_and_recovers() {
    let home = std::env::temp_dir().join(format!("ag-diskfull-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(BIN)
        .args([
            "room", "start", "full", "--alias", "op", "--url", &url, "--json",
        ])
        .env("AGENTGATHER_HOME", &home)
        .output()
        .unwrap();
    let token = serde_json::from_slice::<Value>(&out.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let log = home.join("rooms/full/messages.jsonl");
    let start_len = std::fs::metadata(&log).unwrap().len();
    let limit = start_len + 2_000;
    let mut server = unsafe {
        Command::new(BIN)
            .args(["room", "serve", "--port", &port.to_string()])
            .env("AGENTGATHER_HOME", &home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: libc::RLIM_INFINITY,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
            .spawn()
            .unwrap()
    };
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut acked = Vec::new();
    let mut full = None;
    for i in 0..200 {
        let (st, body) = post(&url, &token, &format!("message {i} {}", "y".repeat(150)));
        match st {
            201 => acked.push(body["message"]["id"].as_u64().unwrap()),
            507 => {
                full = Some(body);
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let full = full.expect("the size limit never produced a 507");
    assert_eq!(full["ok"], json!(false));
    assert_eq!(full["error"], "room_log_full");
    assert!(full["message"].is_string());
    let bytes = std::fs::read(&log).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'), "a half line stayed in the log");
    let ids: Vec<u64> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<Value>(l).expect("every line parses")["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for id in &acked {
        assert!(ids.contains(id), "acknowledged {id} missing");
    }
    // Space returns: the next post lands right after the last acknowledged one.
    set_fsize(server.id() as i32, u64::MAX);
    let (st, body) = post(&url, &token, "space is back");
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        body["message"]["id"].as_u64().unwrap(),
        ids.last().unwrap() + 1
    );
    server.kill().unwrap();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&home);
}
