//! The guards of [`Room`], tested on real files in a temporary home without a server.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::protocol::AttendanceState;

struct TempHome(Home);

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0.root);
    }
}

fn temp_home() -> TempHome {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ag-room-unit-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    TempHome(Home::at(dir))
}

fn room_with(home: &TempHome, limits: Limits) -> (Room, usize) {
    let new = NewRoom {
        room: "unit".into(),
        host_alias: "host".into(),
        brief: "Goal: test.".into(),
        policy: AttendancePolicy::ManualOk,
        ttl: None,
        url: "http://127.0.0.1:1".into(),
        host_display_name: None,
    };
    let opts = RoomOptions {
        limits,
        fsync: FsyncMode::Off,
        purpose: "unit test".into(),
        addr: None,
    };
    let (room, _token) = Room::create(&home.0, &new, &opts).expect("create room");
    let host = room.find("host").expect("host");
    (room, host)
}

fn say(text: &str) -> MessageInput {
    MessageInput {
        text: text.into(),
        kind: MessageType::Message,
        reply_to: None,
        client_msg_id: None,
        to: Vec::new(),
        topic: Default::default(),
    }
}

fn invite(room: &mut Room, host: usize, alias: &str, kind: Kind) -> usize {
    room.invite(host, alias, kind, Location::Local)
        .expect("invite");
    room.find(alias).expect("invited")
}

#[test]
fn posts_per_minute_are_capped() {
    let home = temp_home();
    let limits = Limits {
        posts_per_minute: 3,
        ..Limits::default()
    };
    let (mut room, host) = room_with(&home, limits);
    for i in 0..3 {
        room.post(host, say(&format!("m{i}")))
            .expect("under the cap");
    }
    let e = room.post(host, say("one too many")).unwrap_err();
    assert_eq!((e.status, e.code), (429, "rate_limited"));
}

#[test]
fn loop_guard_stops_agents_until_a_human_speaks() {
    let home = temp_home();
    let limits = Limits {
        loop_guard: 2,
        ..Limits::default()
    };
    let (mut room, host) = room_with(&home, limits);
    let bot = invite(&mut room, host, "bot", Kind::Agent);
    room.post(bot, say("1")).unwrap();
    room.post(bot, say("2")).unwrap();
    let e = room.post(bot, say("3")).unwrap_err();
    assert_eq!(e.code, "loop_guard");
    room.post(host, say("a human answers")).unwrap();
    room.post(bot, say("3 again"))
        .expect("reset by the human post");
}

#[test]
fn a_repeated_client_msg_id_returns_the_original() {
    let home = temp_home();
    let (mut room, host) = room_with(&home, Limits::default());
    let mut m = say("once");
    m.client_msg_id = Some("k1".into());
    let (first, again) = room.post(host, m.clone()).unwrap();
    assert!(!again);
    let before = room.log.last_id();
    let (second, again) = room.post(host, m).unwrap();
    assert!(again);
    assert_eq!(first.msg.id, second.msg.id);
    assert_eq!(room.log.last_id(), before, "nothing appended");
}

#[test]
fn display_names_are_unique_per_room() {
    let home = temp_home();
    let (mut room, host) = room_with(&home, Limits::default());
    let bot = invite(&mut room, host, "bot", Kind::Agent);
    room.set_display_name(host, "Ada").unwrap();
    let e = room.set_display_name(bot, "ada").unwrap_err();
    assert_eq!((e.status, e.code), (409, "display_name_taken"));
    let e = room.set_display_name(bot, "host").unwrap_err();
    assert_eq!(e.code, "display_name_taken", "another's alias is taken too");
    room.set_display_name(bot, "Bot the builder").unwrap();
    let e = room.set_display_name(bot, "bad\u{7}name").unwrap_err();
    assert_eq!(e.code, "invalid_display_name");
}

#[test]
fn the_log_cap_refuses_posts_but_not_the_close() {
    let home = temp_home();
    let limits = Limits {
        log_cap: 3,
        ..Limits::default()
    };
    let (mut room, host) = room_with(&home, limits);
    // "Room opened" is message 1.
    room.post(host, say("2")).unwrap();
    room.post(host, say("3")).unwrap();
    let e = room.post(host, say("4")).unwrap_err();
    assert_eq!((e.status, e.code), (507, "room_log_full"));
    assert_eq!(room.close_by(host).unwrap(), Closed::Now);
    assert!(room.log.last_id() > 3, "the close is still announced");
    assert_eq!(room.close_by(host).unwrap(), Closed::Already);
}

#[test]
fn only_the_host_closes_and_removed_participants_cannot_post() {
    let home = temp_home();
    let (mut room, host) = room_with(&home, Limits::default());
    let bot = invite(&mut room, host, "bot", Kind::Agent);
    assert_eq!(room.close_by(bot).unwrap_err().code, "host_required");
    room.remove(host, "bot").unwrap();
    let e = room.post(bot, say("still here?")).unwrap_err();
    assert_eq!((e.status, e.code), (410, "participant_removed"));
}

#[test]
fn the_roster_tells_stale_from_attending() {
    let home = temp_home();
    let (mut room, host) = room_with(&home, Limits::default());
    let bot = invite(&mut room, host, "bot", Kind::Agent);
    room.join(bot).unwrap();
    let seen = room.participant(bot).last_seen_ms.unwrap();
    let fresh = room.roster(seen + 1_000, |_| false);
    assert_eq!(fresh[bot].attendance_state, AttendanceState::Attending);
    let later = room.roster(seen + 91_000, |_| false);
    assert_eq!(later[bot].attendance_state, AttendanceState::Stale);
    let held = room.roster(seen + 91_000, |i| i == bot);
    assert_eq!(held[bot].attendance_state, AttendanceState::Attending);
    assert!(held[bot].waiting);
}

#[test]
fn times_never_run_backwards_after_a_clock_step() {
    let home = temp_home();
    let (mut room, host) = room_with(&home, Limits::default());
    // The newest message was stamped a day ahead of the clock (the clock then stepped
    // back a day).
    let ahead = now_ms() + 86_400_000;
    room.last_ts_ms = ahead;
    let (m, _) = room.post(host, say("after the step")).unwrap();
    assert!(parse_ms(&m.msg.ts).unwrap() >= ahead, "{}", m.msg.ts);
    // The rate limit runs on the monotonic clock: posting goes on.
    room.post(host, say("and again")).unwrap();
}

#[test]
fn idempotency_survives_a_restart_beyond_the_cache() {
    let home = temp_home();
    let limits = Limits {
        posts_per_minute: 100_000,
        ..Limits::default()
    };
    let (mut room, host) = room_with(&home, limits.clone());
    let keyed = |i: usize| {
        let mut m = say(&format!("m{i}"));
        m.client_msg_id = Some(format!("k{i}"));
        m
    };
    let (first, _) = room.post(host, keyed(0)).unwrap();
    for i in 1..5_000 {
        room.post(host, keyed(i)).unwrap();
    }
    drop(room);
    let opts = RoomOptions {
        limits,
        fsync: FsyncMode::Off,
        purpose: "unit test".into(),
        addr: None,
    };
    let mut room = Room::open(&home.0, "unit", &opts).unwrap();
    let last = room.log.last_id();
    let (again, idempotent) = room.post(host, keyed(0)).unwrap();
    assert!(
        idempotent,
        "the retry of a post older than the cache posted twice"
    );
    assert_eq!(again.msg.id, first.msg.id);
    assert_eq!(room.log.last_id(), last);
}

/// A claim ends at its TTL: the sweep writes an `expired` row and the claim leaves the
/// list. The clock is a parameter of both, so the test moves it instead of waiting.
#[test]
fn claims_expire_at_their_ttl_and_the_row_is_rebuilt_after_a_restart() {
    use crate::protocol::claim::{ClaimAction, NewClaimBody, TtlSpec};
    let home = temp_home();
    let (mut room, host) = room_with(&home, Limits::default());
    let bob = invite(&mut room, host, "bob", Kind::Agent);
    let body = NewClaimBody {
        paths: vec!["src/**".into()],
        ttl: Some(TtlSpec::Seconds(60)),
        exclusive: None,
        note: None,
    };
    let (claim, _) = room.claim(bob, &body).expect("claim");
    let now = now_ms();
    assert_eq!(room.claims(None, now).len(), 1);
    assert!(room.expire_claims(now).unwrap().is_empty(), "not yet due");
    // Past the TTL the list is empty even before the sweep, and the sweep records it once.
    let later = now + 61_000;
    assert!(room.claims(None, later).is_empty());
    let rows = room.expire_claims(later).unwrap();
    assert_eq!(rows.len(), 1);
    let m = &rows[0].msg;
    assert_eq!(m.kind, MessageType::ClaimUpdate);
    assert_eq!(m.claim_id, Some(claim.id));
    assert_eq!(
        m.claim_update.as_ref().map(|u| u.action),
        Some(ClaimAction::Expired)
    );
    assert!(
        room.expire_claims(later).unwrap().is_empty(),
        "expired once"
    );
    // After a restart the expired claim stays ended, even at a clock before its TTL.
    drop(room);
    let opts = RoomOptions {
        limits: Limits::default(),
        fsync: FsyncMode::Off,
        purpose: "unit test".into(),
        addr: None,
    };
    let room = Room::open(&home.0, "unit", &opts).expect("reopen");
    assert!(room.claims(None, now).is_empty());
}
