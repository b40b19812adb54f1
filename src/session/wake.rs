//! The wake runner (SPEC §8.2): keeps this home's participant reachable without a live
//! agent session. A thread holds the participant's `/wait` continuously (also during
//! turns) and queues the ids of messages that concern them; the runner starts one agent
//! turn at a time (`sh -c CMD` in its own process group) for everything queued, passing
//! ids, never room text. Its cursor is a 0600 file beside the credentials, written before
//! a turn starts and after it ends, so a restart (even after `kill -9`) neither misses nor
//! repeats a trigger: an interrupted turn's batch is still queued and runs again.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::wake_cap::TurnCap;
use super::{Backoff, Session, SessionError, is_transient};
use crate::client::ClientError;
use crate::protocol::message::Message;
use crate::protocol::reach::{Reach, WakeEvent};
use crate::store::fsutil::{read_json, write_json};

/// The variable that names a turn's ids (SPEC §8.2); set in every turn, and only there.
pub const WAKE_IDS_VAR: &str = "AGENTGATHER_WAKE_IDS";
/// The harness session a turn continues (SPEC §11.1): a UUID kept in the wake cursor.
pub const SESSION_VAR: &str = "AGENTGATHER_SESSION";
/// Which turn of that session this is: 1 for the first it ever ran, counting up.
pub const TURN_VAR: &str = "AGENTGATHER_TURN";

/// How many of the participant's own message ids are remembered (replies to them wake).
const OWN_IDS: usize = 2_000;
/// The most trigger ids one turn is given (the rest wait for the next turn): the ids go
/// into the environment, which has a size limit, and a long backlog must not fail every
/// start (audit round two, NL5).
pub const MAX_BATCH: usize = 200;

/// `agentgather wake` options.
#[derive(Debug, Clone)]
pub struct WakeConfig {
    pub exec: String,
    pub turn_timeout: Duration,
    pub max_turns_per_hour: u32,
    pub grace: Duration,
    /// Start a new harness session instead of continuing the stored one.
    pub fresh: bool,
}

/// The runner's durable state: `<home>/credentials/<room>/<alias>.wake.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WakeCursor {
    /// Every message through this id has been looked at.
    pub scanned: u64,
    /// The cursor before the next batch (`AGENTGATHER_SINCE_ID`).
    pub since: u64,
    /// Messages that concern the participant and no successful turn has covered yet.
    #[serde(default)]
    pub pending: Vec<Trigger>,
    /// The participant's own recent message ids.
    #[serde(default)]
    pub own: VecDeque<u64>,
    /// The harness session woken turns continue (absent in cursors of older versions:
    /// the next start makes one).
    #[serde(default)]
    pub session: Option<String>,
    /// How many turns that session has started.
    #[serde(default)]
    pub turns: u64,
    /// The room's creation time: a room made anew under the same id starts a new cursor.
    #[serde(default)]
    pub room_created_at: Option<String>,
    /// The process group of the turn running now, so a runner restarted after `kill -9`
    /// can end what the cut-off turn left running.
    #[serde(default)]
    pub running_group: Option<i32>,
}

impl WakeCursor {
    /// Drops the stored session so the next turn starts a new one, as turn 1.
    fn start_session(&mut self) {
        self.session = Some(uuid::Uuid::new_v4().to_string());
        self.turns = 0;
    }

    /// Counts a turn of the session (made first if there is none) and names it.
    fn next_turn(&mut self) -> (String, u64) {
        if self.session.is_none() {
            self.start_session();
        }
        self.turns += 1;
        (self.session.clone().unwrap_or_default(), self.turns)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub id: u64,
    pub from: String,
}

/// What the runner tells its face (the CLI prints it).
#[derive(Debug, Clone)]
pub enum RunnerEvent {
    Started {
        triggers: Vec<Trigger>,
        since: u64,
        session: String,
        turn: u64,
    },
    Finished(TurnReport),
    /// The hourly turn cap is reached; the next turn waits this long.
    Capped {
        wait: Duration,
    },
}

/// One finished turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnReport {
    pub ids: Vec<u64>,
    /// The harness session the turn continued, and its turn number in it.
    pub session: String,
    pub turn: u64,
    pub from: Vec<String>,
    pub since_id: u64,
    /// The exit code, or `None` when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// When a failed turn is tried again (with everything queued meanwhile).
    pub retry_in_ms: Option<u64>,
}

/// How a turn's process ended.
struct TurnOutcome {
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    duration_ms: u64,
}

/// Why the runner stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeEnd {
    Closed,
    Removed,
    Interrupted,
}

struct Shared {
    cursor: WakeCursor,
    end: Option<WakeEnd>,
    fatal: Option<ClientError>,
}

type State = Arc<(Mutex<Shared>, Condvar)>;

fn lock(state: &State) -> MutexGuard<'_, Shared> {
    state.0.lock().unwrap_or_else(|p| p.into_inner())
}

fn cursor_path(s: &Session) -> PathBuf {
    s.home()
        .root
        .join("credentials")
        .join(&s.creds.room)
        .join(format!("{}.wake.json", s.creds.alias))
}

/// Whether `m` concerns `alias` (SPEC §8.2, §9.1): it mentions them (handoffs to them,
/// an `@all` from the host or a human, and an answer to their question do), replies to
/// one of their messages, or comments on or updates a topic they opened. Their own
/// messages never do.
pub fn concerns(m: &Message, alias: &str, own: &VecDeque<u64>) -> bool {
    m.from != alias
        && (m.mentions.iter().any(|a| a == alias)
            || m.reply_to.is_some_and(|r| own.contains(&r))
            || m.topic_id.is_some_and(|t| own.contains(&t)))
}

/// Remembers one of the participant's own message ids (the newest [`OWN_IDS`]), so that
/// replies to it and comments on it count as concerning them.
pub fn remember_own(own: &mut VecDeque<u64>, id: u64) {
    own.push_back(id);
    if own.len() > OWN_IDS {
        own.pop_front();
    }
}

/// Runs until the room closes, the participant is removed, or `stop` is set (SIGINT,
/// SIGTERM); a running turn then gets `grace` to finish.
pub fn run(
    session: Session,
    cfg: &WakeConfig,
    stop: Arc<AtomicBool>,
    mut on_event: impl FnMut(&RunnerEvent),
) -> Result<WakeEnd, SessionError> {
    let client = session.client(super::CALL_TIMEOUT);
    client.set_reach(Reach::Wake, None)?;
    let path = cursor_path(&session);
    let status = client.status()?;
    let fresh_cursor = || {
        let start = status
            .participants
            .iter()
            .find(|p| p.alias == status.me)
            .map_or(0, |p| p.read_through_id);
        WakeCursor {
            scanned: start,
            since: start,
            room_created_at: status.created_at.clone(),
            ..Default::default()
        }
    };
    let mut cursor = match read_json::<WakeCursor>(&path)? {
        Some(c) if c.room_created_at.is_some() && c.room_created_at != status.created_at => {
            eprintln!(
                "agentgather: room {} was made anew since this runner last ran; starting from its current state",
                session.creds.room
            );
            end_left_over_turn(&c);
            fresh_cursor()
        }
        Some(mut c) => {
            c.room_created_at = status.created_at.clone();
            end_left_over_turn(&c);
            c.running_group = None;
            c
        }
        None => fresh_cursor(),
    };
    if cfg.fresh || cursor.session.is_none() {
        cursor.start_session();
    }
    write_json(&path, &cursor)?;
    let mut cap = TurnCap::new(cfg.max_turns_per_hour);
    cap.learn(&status.participants);
    let state: State = Arc::new((
        Mutex::new(Shared {
            cursor,
            end: None,
            fatal: None,
        }),
        Condvar::new(),
    ));
    {
        let (session, state, path) = (session.clone(), state.clone(), path.clone());
        std::thread::spawn(move || hold_wait(&session, &state, &path));
    }
    let env = TurnEnv::of(&session);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    let mut not_before = Instant::now();
    let mut capped = false;
    loop {
        let (batch, since, scanned, session, turn) = {
            let mut g = lock(&state);
            loop {
                if stop.load(Ordering::SeqCst) {
                    return Ok(WakeEnd::Interrupted);
                }
                if let Some(e) = g.fatal.take() {
                    return Err(e.into());
                }
                if let Some(end) = g.end {
                    return Ok(end);
                }
                let unknown = cap.unknown(&g.cursor.pending);
                if !unknown.is_empty() {
                    // A sender the roster did not name yet: ask it, outside the lock.
                    drop(g);
                    if let Ok(st) = client.status() {
                        cap.learn(&st.participants);
                    }
                    cap.assume_agents(&unknown);
                    g = lock(&state);
                    continue;
                }
                let now = Instant::now();
                let pending = !g.cursor.pending.is_empty();
                let blocked = cap.blocked(&g.cursor.pending, now);
                if pending && now >= not_before && blocked.is_none() {
                    capped = false;
                    break;
                }
                if let Some(wait) = blocked.filter(|_| pending && !capped) {
                    capped = true;
                    on_event(&RunnerEvent::Capped { wait });
                }
                let tick = not_before
                    .saturating_duration_since(now)
                    .clamp(Duration::from_millis(10), Duration::from_millis(250));
                g = state
                    .1
                    .wait_timeout(g, tick)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            // The turn is counted before it runs, so a restart after `kill -9` mid-turn
            // resumes the session the cut-off turn had started.
            let (session, turn) = g.cursor.next_turn();
            write_json(&path, &g.cursor)?;
            let batch: Vec<Trigger> = g.cursor.pending.iter().take(MAX_BATCH).cloned().collect();
            (batch, g.cursor.since, g.cursor.scanned, session, turn)
        };
        cap.record(&batch, Instant::now());
        let _ = client.wake_report(WakeEvent::Started);
        on_event(&RunnerEvent::Started {
            triggers: batch.clone(),
            since,
            session: session.clone(),
            turn,
        });
        let ids: Vec<u64> = batch.iter().map(|t| t.id).collect();
        let record_group = |pgid: Option<i32>| -> Result<(), SessionError> {
            let mut g = lock(&state);
            g.cursor.running_group = pgid;
            write_json(&path, &g.cursor)?;
            Ok(())
        };
        let out = run_turn(cfg, &env.with(&ids, since, &session, turn), &stop, |pgid| {
            record_group(Some(pgid))
        });
        record_group(None)?;
        let out = out?;
        let mut report = TurnReport {
            ids: ids.clone(),
            session,
            turn,
            from: distinct_senders(&batch),
            since_id: since,
            exit_code: out.exit_code,
            signal: out.signal,
            timed_out: out.timed_out,
            duration_ms: out.duration_ms,
            retry_in_ms: None,
        };
        let ok = report.exit_code == Some(0);
        let _ = client.wake_report(if ok {
            WakeEvent::Succeeded
        } else {
            WakeEvent::Failed
        });
        if ok {
            backoff.reset();
            let mut g = lock(&state);
            g.cursor.pending.retain(|t| !ids.contains(&t.id));
            // What is still queued (past one batch) is read from just before it.
            g.cursor.since = g
                .cursor
                .pending
                .first()
                .map_or(scanned, |t| t.id.saturating_sub(1).max(since));
            write_json(&path, &g.cursor)?;
        } else {
            let delay = backoff.next_delay();
            not_before = Instant::now() + delay;
            report.retry_in_ms = Some(delay.as_millis() as u64);
        }
        on_event(&RunnerEvent::Finished(report));
    }
}

fn distinct_senders(batch: &[Trigger]) -> Vec<String> {
    let mut from: Vec<String> = Vec::new();
    for t in batch {
        if !from.contains(&t.from) {
            from.push(t.from.clone());
        }
    }
    from
}

/// The waiting thread: follows `/wait` from the cursor, queues what concerns the
/// participant, and records the room's end or a fatal error for the runner.
fn hold_wait(session: &Session, state: &State, path: &Path) {
    let alias = session.creds.alias.clone();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    loop {
        let since = lock(state).cursor.scanned;
        let answer = match session.wait(since, None) {
            Ok(a) => a,
            Err(e) if is_transient(&e) => {
                std::thread::sleep(backoff.next_delay());
                continue;
            }
            Err(e) => {
                lock(state).fatal = Some(e);
                state.1.notify_all();
                return;
            }
        };
        backoff.reset();
        let mut g = lock(state);
        for m in &answer.messages {
            if m.id <= g.cursor.scanned {
                continue;
            }
            if m.from == alias {
                remember_own(&mut g.cursor.own, m.id);
            } else if concerns(m, &alias, &g.cursor.own) {
                g.cursor.pending.push(Trigger {
                    id: m.id,
                    from: m.from.clone(),
                });
            }
        }
        g.cursor.scanned = g.cursor.scanned.max(answer.next_since_id);
        if let Err(e) = write_json(path, &g.cursor) {
            eprintln!("agentgather: cannot save the wake cursor: {e}");
        }
        if answer.removed() {
            g.end = Some(WakeEnd::Removed);
        } else if !answer.keep_waiting {
            g.end = Some(WakeEnd::Closed);
        }
        let done = g.end.is_some();
        drop(g);
        state.1.notify_all();
        if done {
            return;
        }
    }
}

/// The environment of a turn: the runner's own plus the `AGENTGATHER_*` variables.
#[derive(Debug, Clone)]
struct TurnEnv {
    vars: Vec<(String, String)>,
}

impl TurnEnv {
    fn of(s: &Session) -> TurnEnv {
        let url = s.client(super::CALL_TIMEOUT).base().to_string();
        TurnEnv {
            vars: vec![
                (
                    "AGENTGATHER_HOME".into(),
                    s.home().root.display().to_string(),
                ),
                ("AGENTGATHER_ROOM".into(), s.creds.room.clone()),
                ("AGENTGATHER_URL".into(), url),
                ("AGENTGATHER_ALIAS".into(), s.creds.alias.clone()),
            ],
        }
    }

    fn with(&self, ids: &[u64], since: u64, session: &str, turn: u64) -> TurnEnv {
        let mut vars = self.vars.clone();
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        vars.push((WAKE_IDS_VAR.into(), ids.join(",")));
        vars.push(("AGENTGATHER_SINCE_ID".into(), since.to_string()));
        vars.push((SESSION_VAR.into(), session.to_string()));
        vars.push((TURN_VAR.into(), turn.to_string()));
        TurnEnv { vars }
    }
}

/// Whether any process of group `pgid` is alive.
fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the group exists.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// SIGTERM to what is left of a group, then SIGKILL once `grace` has passed.
fn end_group(pgid: i32, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, libc::SIGKILL);
}

/// Ends what a turn cut off by `kill -9` of its runner left running: its process group,
/// when a process of that group still carries the turn's session in its environment (a
/// recycled group id of someone else's is left alone). Linux only (`/proc`).
fn end_left_over_turn(c: &WakeCursor) {
    let (Some(pgid), Some(session)) = (c.running_group, c.session.as_deref()) else {
        return;
    };
    let marker = format!("{SESSION_VAR}={session}");
    let ours = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let dir = e.path();
            let in_group = std::fs::read_to_string(dir.join("stat"))
                .ok()
                .is_some_and(|stat| {
                    // After the command name's closing parenthesis: state, ppid, pgrp.
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<i32>().ok())
                        == Some(pgid)
                });
            in_group
                && std::fs::read(dir.join("environ"))
                    .ok()
                    .is_some_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
        });
    if ours {
        eprintln!(
            "agentgather: ending what the interrupted turn left running (process group {pgid})"
        );
        signal_group(pgid, libc::SIGKILL);
    }
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group; no memory involved.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Runs one turn: `sh -c CMD` in a new process group, its output on our stderr (so
/// `--json` lines stay alone on stdout). Past `turn_timeout` the group gets SIGTERM,
/// then SIGKILL after `grace`; after `stop` the turn has `grace` to finish.
fn run_turn(
    cfg: &WakeConfig,
    env: &TurnEnv,
    stop: &AtomicBool,
    on_spawn: impl FnOnce(i32) -> Result<(), SessionError>,
) -> Result<TurnOutcome, SessionError> {
    let io = |e: std::io::Error| SessionError::Invalid(format!("cannot run the wake command: {e}"));
    let err_out = || -> Stdio {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_or(Stdio::null(), Stdio::from)
    };
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cfg.exec)
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(err_out())
        .stderr(err_out())
        .process_group(0)
        .spawn()
        .map_err(io)?;
    let pgid = child.id() as i32;
    on_spawn(pgid)?;
    let mut timed_out = false;
    let mut kill_at: Option<Instant> = None;
    let mut stop_at: Option<Instant> = None;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(io)? {
            break st;
        }
        let now = Instant::now();
        if !timed_out && now.duration_since(started) >= cfg.turn_timeout {
            timed_out = true;
            signal_group(pgid, libc::SIGTERM);
            kill_at = Some(now + cfg.grace);
        }
        if stop.load(Ordering::SeqCst) && stop_at.is_none() {
            stop_at = Some(now + cfg.grace);
        }
        if kill_at.is_some_and(|t| now >= t) || stop_at.is_some_and(|t| now >= t) {
            signal_group(pgid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if timed_out || stop_at.is_some() {
        // Whatever of the group outlived its leader goes too.
        signal_group(pgid, libc::SIGKILL);
    } else {
        // A turn ends with its leader: what it left running in the background gets
        // SIGTERM, then SIGKILL after `grace` (a `setsid` child has left the group and
        // is beyond reach).
        end_group(pgid, cfg.grace);
    }
    Ok(TurnOutcome {
        exit_code: if timed_out { None } else { status.code() },
        signal: status.signal(),
        timed_out,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64, from: &str, mentions: &[&str], reply_to: Option<u64>) -> Message {
        serde_json::from_value(
            serde_json::json!({"id": id, "room": "r", "ts": "", "from": from,
            "type": "message", "text": "", "mentions": mentions, "reply_to": reply_to}),
        )
        .unwrap()
    }

    #[test]
    fn what_concerns_a_participant() {
        let own: VecDeque<u64> = [3].into();
        assert!(concerns(&msg(5, "op", &["me"], None), "me", &own));
        assert!(concerns(&msg(6, "op", &[], Some(3)), "me", &own));
        assert!(!concerns(&msg(7, "op", &[], Some(4)), "me", &own));
        assert!(!concerns(&msg(8, "me", &["me"], None), "me", &own));
        assert!(!concerns(&msg(9, "op", &["you"], None), "me", &own));
        // A comment on a topic they opened (#3) concerns them; one on another's does not.
        let comment = |id: u64, topic: u64| {
            let mut m = msg(id, "op", &[], None);
            m.topic_id = Some(topic);
            m
        };
        assert!(concerns(&comment(10, 3), "me", &own));
        assert!(!concerns(&comment(11, 4), "me", &own));
    }
}
