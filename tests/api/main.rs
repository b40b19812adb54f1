//! Every endpoint and error code of SPEC §4, end to end: the real release binary serves a
//! room on loopback in a temp home and these tests talk HTTP to it.
//!
//! One test binary; each module holds the tests of one group of endpoints. The small
//! helpers several of them use (message texts and ids, the `/wait` path) are here.

#[path = "../common/mod.rs"]
mod common;

mod guards;
mod joining;
mod membership;
mod posting;
mod reading;
mod routing;
mod settings;
mod waits;

use serde_json::Value;

fn texts(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

fn ids(msgs: &[Value]) -> Vec<u64> {
    msgs.iter().map(|m| m["id"].as_u64().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------
// /wait

fn wait_path(alias: &str, since: u64, timeout_ms: u64) -> String {
    format!("/wait?participant={alias}&since_id={since}&timeout_ms={timeout_ms}")
}
