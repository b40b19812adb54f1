//! One origin per room behind Caddy with on-demand TLS: Caddy asks the broker whether a
//! name is a room before it gets a certificate, so only live rooms get one.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::tunnel_support::*;

// ---------------------------------------------------------------------------------------
// One origin per room behind Caddy: on-demand TLS from Caddy's internal CA, asking the
// broker whether a name is a room.

#[test]
fn caddy_gets_a_certificate_for_each_live_room_and_no_other_name() {
    if !proxy_installed("caddy", "the Caddy TLS test") {
        return;
    }
    let room = TestRoom::start("tunnel-tls");
    let cport = free_port();
    let broker = Broker::start(
        &room.home,
        &["--public-url", &format!("https://localhost:{cport}")],
    );
    let dir = room.home.root.join("caddy-tls");
    let bport = broker.port;
    let config = format!(
        "{{\n\tadmin off\n\tskip_install_trust\n\tstorage file_system {data}\n\ton_demand_tls {{\n\t\task http://127.0.0.1:{bport}/_agentgather/tls-ask\n\t}}\n}}\n\nhttps://*.localhost:{cport} {{\n\ttls internal {{\n\t\ton_demand\n\t}}\n\treverse_proxy 127.0.0.1:{bport} {{\n\t\tflush_interval -1\n\t}}\n}}\n",
        data = dir.join("data").display()
    );
    let _caddy = until_caddy_listens(spawn_caddy(&room.home, &dir, &config), cport)
        .expect("caddy did not start");
    let t = tunnel(&room.home, &broker.url(), "secure", &[]);
    let set = t.wait_event("public_url_set", 1, Duration::from_secs(15));
    assert_eq!(
        set["url"],
        format!("https://secure.localhost:{cport}").as_str()
    );

    let curl = |name: &str| {
        let root = dir.join("data/pki/authorities/local/root.crt");
        let mut args = vec![
            "-sS".to_string(),
            "--max-time".into(),
            "20".into(),
            "--resolve".into(),
            format!("{name}.localhost:{cport}:127.0.0.1"),
            "-H".into(),
            format!("Authorization: Bearer {}", room.token),
        ];
        if root.exists() {
            args.extend(["--cacert".into(), root.display().to_string()]);
        } else {
            args.push("--insecure".into());
        }
        args.push(format!("https://{name}.localhost:{cport}/status"));
        std::process::Command::new("curl")
            .args(&args)
            .output()
            .expect("run curl")
    };
    // The first handshake makes Caddy ask the broker, then issue from its internal CA;
    // the second is checked against that CA's root.
    let first = curl("secure");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = curl("secure");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["room"], "tunnel-tls", "{v}");
    // A name that is no room gets no certificate: the handshake fails.
    let out = curl("no-such-room");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !dir.join("data/certificates").exists()
            || !std::fs::read_dir(dir.join("data/certificates"))
                .unwrap()
                .flatten()
                .any(|d| walk_contains(&d.path(), "no-such-room")),
        "caddy holds a certificate for a name that is no room"
    );
}

fn walk_contains(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name().to_string_lossy().contains(needle) || walk_contains(&e.path(), needle)
        })
    })
}
