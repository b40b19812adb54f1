//! Aliases typed by hand: an unknown one is answered with the nearest alias of the room's
//! roster ("did you mean …"), and a new invite that is one slip away from an existing
//! alias is confirmed first, since a second participant cannot be un-invited.

use std::io::{BufRead, IsTerminal, Write};

use super::output::{CliError, Ctx};
use crate::session::{CALL_TIMEOUT, Session};

/// How many edits still count as a slip for an alias of `len` characters.
fn slip(len: usize) -> usize {
    if len <= 4 { 1 } else { 2 }
}

/// Whether `a` and `b` are one slip apart: a few edits, and not just a different number
/// (`agent1`/`agent2` is a series, not a typo).
fn close(a: &str, b: &str) -> bool {
    let digitless = |s: &str| {
        s.chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
    };
    if a == b || digitless(a) == digitless(b) {
        return false;
    }
    strsim::damerau_levenshtein(a, b) <= slip(a.chars().count().min(b.chars().count()))
}

/// Whether a new alias looks like a slip of an existing one: a single edit of a name long
/// enough that one edit is not a different word (`ping`/`pong` are two agents).
fn near_duplicate(new: &str, existing: &str) -> bool {
    close(new, existing)
        && new.chars().count().min(existing.chars().count()) >= 5
        && strsim::damerau_levenshtein(new, existing) == 1
}

/// The roster alias nearest to `typed`, if it is one slip away.
pub fn nearest<'a>(typed: &str, aliases: &'a [String]) -> Option<&'a str> {
    let typed = typed.to_lowercase();
    aliases
        .iter()
        .filter(|a| *a == &typed || close(&typed, a))
        .min_by_key(|a| strsim::damerau_levenshtein(&typed, a))
        .map(String::as_str)
}

/// The roster's aliases as this participant can see them: from the room's files when
/// this home hosts it with no server, else from the server; empty when neither answers.
pub fn roster(ctx: &Ctx, s: &Session) -> Vec<String> {
    if let Ok(Some(room)) = super::offline::open(ctx, &s.creds, "agentgather CLI") {
        return room.aliases();
    }
    s.client(CALL_TIMEOUT)
        .status()
        .map(|st| st.participants.into_iter().map(|p| p.alias).collect())
        .unwrap_or_default()
}

/// One line naming the nearest alias, or the roster when none is near.
pub fn hint(typed: &str, aliases: &[String]) -> String {
    match nearest(typed, aliases) {
        Some(a) => format!("did you mean `{a}`?"),
        None if aliases.is_empty() => String::new(),
        None => format!("the room has: {}", aliases.join(", ")),
    }
}

/// Adds a "did you mean" to an error about an alias the room does not have.
pub fn explain_unknown(ctx: &Ctx, s: &Session, typed: &str, mut e: CliError) -> CliError {
    if e.code == "unknown_participant" || e.code == "not_found" {
        let hint = hint(typed, &roster(ctx, s));
        if !hint.is_empty() {
            e.message = format!("{}; {hint}", e.message);
        }
    }
    e
}

/// Refuses (or, on a terminal, asks about) inviting `new` when the roster already has an
/// alias one slip away from it. `yes` skips the question.
pub fn confirm_new_alias(new: &str, aliases: &[String], yes: bool) -> Result<(), CliError> {
    let Some(existing) = aliases.iter().find(|a| near_duplicate(new, a)) else {
        return Ok(());
    };
    if yes {
        return Ok(());
    }
    let question =
        format!("the room already has `{existing}`; invite `{new}` as another participant?");
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
        return Err(CliError::msg(format!(
            "not invited; `agentgather room invite-card {existing}` prints {existing}'s card again"
        )));
    }
    Err(CliError::msg(format!(
        "{question} Pass --yes to invite it (or `agentgather room invite-card {existing}` for {existing}'s card)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_slip_finds_the_alias_and_a_series_is_not_a_slip() {
        let r = roster(&["host", "reviewer", "agent1"]);
        assert_eq!(nearest("reviwer", &r), Some("reviewer"));
        assert_eq!(nearest("Reviewer", &r), Some("reviewer"));
        assert_eq!(nearest("hots", &r), Some("host"));
        assert_eq!(nearest("operator", &r), None);
        assert!(!close("agent2", "agent1"), "a numbered series is intended");
        assert!(close("reviewr", "reviewer"));
        assert!(confirm_new_alias("agent2", &r, false).is_ok());
        assert!(
            !near_duplicate("pong", "ping"),
            "short names one edit apart are distinct"
        );
        assert!(near_duplicate("reviewr", "reviewer"));
        assert!(confirm_new_alias("reviewr", &r, true).is_ok());
    }
}
