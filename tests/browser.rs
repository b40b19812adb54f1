//! Runs the browser-room tests (`tests/browser/test_browser.py`) against this build's
//! binary in headless Chromium. Without Chromium/chromedriver the script prints a SKIP
//! notice and passes, unless `AGENTGATHER_REQUIRE_BROWSER=1` (set by CI, which installs
//! Chromium): then a missing browser fails. Screenshots land in target/browser-artifacts/.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn browser_room_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/test_browser.py");
    let python = ["python3", "python"].into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        common::skip(
            "browser_room_in_headless_chromium",
            "python3",
            Some("AGENTGATHER_REQUIRE_BROWSER"),
            "apt-get install -y python3",
        );
        return;
    };
    let status = Command::new(python)
        .arg(&script)
        .current_dir(root)
        .env("AG_CMD", env!("CARGO_BIN_EXE_agentgather"))
        .status()
        .expect("run tests/browser/test_browser.py");
    assert!(
        status.success(),
        "browser tests failed ({status}); see the output above and target/browser-artifacts/"
    );
}
