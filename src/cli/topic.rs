//! `topic …`, `ask` and `search` (SPEC §9): text for people, one JSON object with `--json`.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{CliError, Ctx, Exit, format_message, plural, printable};
use crate::client::topics::SearchParams;
use crate::protocol::MessageType;
use crate::protocol::topic::{
    AnswerBody, AskAnswer, CommentBody, NewTopicBody, StatusBody, TopicFilter, TopicKind,
    TopicStatus, TopicView,
};
use crate::session::CALL_TIMEOUT;
use crate::session::topics::AskOutcome;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Open a topic (a discussion, or a question with --option/--to).
    #[command(
        after_help = "Examples:\n  agentgather topic new 'Release naming' --text 'ideas?' --tag release\n  agentgather topic new 'Ship Friday?' --text 'CI is green' --option yes --option no --to operator"
    )]
    New(NewArgs),
    /// Topics, latest activity first.
    #[command(after_help = "Example:\n  agentgather topic list --status open --json")]
    List(ListArgs),
    /// One topic with its comments and updates.
    #[command(after_help = "Example:\n  agentgather topic show 12")]
    Show(IdArg),
    /// Comment on a topic.
    #[command(after_help = "Example:\n  agentgather topic comment 12 'I agree'")]
    Comment(CommentArgs),
    /// Set a topic's status (its author or the host): open|answered|resolved|closed.
    #[command(after_help = "Example:\n  agentgather topic status 12 resolved --note 'shipped'")]
    Status(StatusArgs),
    /// Answer a question asked of you.
    #[command(
        after_help = "Example:\n  agentgather topic answer 12 --option yes --text 'go ahead'"
    )]
    Answer(AnswerArgs),
}

/// A post's text, taken the same way by `topic new` and `topic comment`: the words
/// after the other arguments, or `--text` as one argument.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct TextArgs {
    /// The text, as the remaining words (quote it to keep spacing; `-` reads standard input).
    #[arg(num_args = 1.., value_name = "TEXT")]
    pub words: Vec<String>,
    /// The text as one argument (instead of the words).
    #[arg(long)]
    pub text: Option<String>,
    /// Read the text from this file (`-`: standard input).
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
}

impl TextArgs {
    fn into_text(self) -> Result<String, CliError> {
        match self.text {
            Some(t) if self.words.is_empty() && self.file.is_none() => Ok(t),
            Some(_) => Err(CliError::msg(
                "give the text once: as words, with --text, or with --file",
            )),
            None => super::text::post_text(&self.words, self.file.as_deref()),
        }
    }
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The topic's title (one line).
    pub title: String,
    #[command(flatten)]
    pub body: TextArgs,
    /// discussion (default) or question (a question also takes --option and --to).
    #[arg(long)]
    pub kind: Option<TopicKind>,
    /// A label to filter by (`topic list --tag`); repeat for several.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// An answer to pick, for a question; repeat for several.
    #[arg(long = "option")]
    pub options: Vec<String>,
    /// Who should answer (mentioned).
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only topics in this status: open, answered, resolved or closed.
    #[arg(long)]
    pub status: Option<TopicStatus>,
    /// Only discussions or only questions.
    #[arg(long)]
    pub kind: Option<TopicKind>,
    /// Only topics with this tag.
    #[arg(long)]
    pub tag: Option<String>,
}

#[derive(Args, Debug)]
pub struct IdArg {
    /// The topic's id (the id of the message that opened it).
    pub id: u64,
}

#[derive(Args, Debug)]
pub struct CommentArgs {
    /// The topic's id.
    pub id: u64,
    #[command(flatten)]
    pub body: TextArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The topic's id.
    pub id: u64,
    /// The new status: open, answered, resolved or closed.
    pub status: TopicStatus,
    /// Why, in a few words (shown with the update).
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Args, Debug)]
pub struct AnswerArgs {
    /// The question's topic id.
    pub id: u64,
    /// The option you pick (one of the question's options).
    #[arg(long)]
    pub option: Option<String>,
    /// Your answer in words (with or without --option).
    #[arg(long)]
    pub text: Option<String>,
}

#[derive(Args, Debug)]
pub struct AskArgs {
    /// Who is asked.
    pub alias: String,
    /// The question.
    pub title: String,
    /// An answer they may pick (repeat for several).
    #[arg(long = "option")]
    pub options: Vec<String>,
    /// More context (default: the title).
    #[arg(long, conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the context from this file (`-`: standard input).
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// Wait for the answer and print it.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (exit 7 after it).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, requires = "wait")]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Words that must all occur (case-insensitive).
    #[arg(required = true, num_args = 1..)]
    pub query: Vec<String>,
    /// Only messages from this alias.
    #[arg(long)]
    pub from: Option<String>,
    /// Only messages of this type (message, question, status, handoff, …).
    #[arg(long = "type")]
    pub kind: Option<MessageType>,
    /// At most this many results, newest first (1-200, default 50).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Only messages older than this id (to page back through more results).
    #[arg(long)]
    pub before_id: Option<u64>,
}

fn topic_line(t: &TopicView) -> String {
    let mut line = format!(
        "#{:<4} [{}] {} — {} ({})",
        t.id,
        t.status,
        printable(&t.title),
        printable(&t.from),
        plural(t.comments, "comment")
    );
    if t.kind == TopicKind::Question {
        line.push_str(&format!(
            " ?{}",
            printable(t.to.as_deref().unwrap_or("anyone"))
        ));
    }
    if let Some(a) = &t.answer {
        let what = a.option.as_deref().or(a.text.as_deref()).unwrap_or("");
        line.push_str(&format!(" → {} ({})", printable(what), printable(&a.by)));
    }
    line
}

fn print_posted(ctx: &Ctx, m: &crate::protocol::Message, what: &str) {
    ctx.print(&json!({"ok": true, "message": m}), || {
        format!("{what} #{}.", m.id)
    });
}

pub fn run(ctx: &Ctx, cmd: TopicCommand) -> Result<(), CliError> {
    let s = ctx.session()?;
    let c = s.client(CALL_TIMEOUT);
    let offline = super::offline::open(ctx, &s.creds, "agentgather topic")?;
    if offline.is_some() && !matches!(cmd, TopicCommand::List(_) | TopicCommand::Show(_)) {
        return Err(super::offline::needs_server(&s.creds.room, "a topic post"));
    }
    match cmd {
        TopicCommand::New(a) => {
            let body = NewTopicBody {
                title: a.title,
                text: a.body.into_text()?,
                kind: a.kind,
                tags: a.tags,
                options: (!a.options.is_empty()).then_some(a.options),
                to: a.to.map(|t| t.trim_start_matches('@').to_string()),
                client_msg_id: None,
            };
            print_posted(ctx, &s.open_topic(body)?, "Opened topic");
        }
        TopicCommand::List(a) => {
            let filter = TopicFilter {
                status: a.status,
                kind: a.kind,
                tag: a.tag,
            };
            let list = match &offline {
                Some(room) => room.topics(&filter),
                None => c.topics(&filter)?,
            };
            ctx.print(&serde_json::to_value(&list).unwrap_or_default(), || {
                if list.topics.is_empty() {
                    return "(no topics)".into();
                }
                list.topics
                    .iter()
                    .map(topic_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TopicCommand::Show(a) => {
            let page = match &offline {
                Some(room) => room.topic(a.id)?,
                None => c.topic(a.id)?,
            };
            ctx.print(&serde_json::to_value(&page).unwrap_or_default(), || {
                let mut out = topic_line(&page.topic);
                if !page.topic.options.is_empty() {
                    let options: Vec<String> =
                        page.topic.options.iter().map(|o| printable(o)).collect();
                    out.push_str(&format!(
                        "\nOptions: {}  (answer: agentgather topic answer {} --option <option>)",
                        options.join(" | "),
                        page.topic.id
                    ));
                }
                for m in &page.messages {
                    out.push('\n');
                    out.push_str(&format_message(m));
                }
                out
            });
        }
        TopicCommand::Comment(a) => {
            let body = CommentBody {
                text: a.body.into_text()?,
                topic_id: a.id,
                client_msg_id: None,
            };
            let m = c.comment(&body)?.message;
            ctx.print(&json!({"ok": true, "message": m}), || {
                format!("Commented on topic #{} (comment #{}).", a.id, m.id)
            });
        }
        TopicCommand::Status(a) => {
            let body = StatusBody {
                status: a.status,
                note: a.note,
            };
            print_posted(ctx, &c.set_topic_status(a.id, &body)?.message, "Updated");
        }
        TopicCommand::Answer(a) => {
            let body = AnswerBody {
                option: a.option,
                text: a.text,
            };
            print_posted(ctx, &c.answer_topic(a.id, &body)?.message, "Answered");
        }
    }
    Ok(())
}

pub fn ask(ctx: &Ctx, a: AskArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    if super::host::direct_read(ctx, &s.creds) {
        return Err(super::offline::needs_server(&s.creds.room, "a question"));
    }
    let to = a.alias.trim_start_matches('@').to_string();
    let text = match (&a.file, a.text) {
        (Some(f), _) => super::text::post_text(&[], Some(f))?,
        (None, t) => t.unwrap_or_else(|| a.title.clone()),
    };
    let body = NewTopicBody {
        text,
        title: a.title,
        kind: Some(TopicKind::Question),
        options: (!a.options.is_empty()).then_some(a.options),
        to: Some(to),
        ..NewTopicBody::default()
    };
    let topic = s.open_topic(body)?;
    if !a.wait {
        print_posted(ctx, &topic, "Asked; topic");
        return Ok(());
    }
    if !ctx.json {
        eprintln!("Asked (topic #{}); waiting for the answer…", topic.id);
    }
    match s.wait_for_answer(topic.id, topic.id, a.timeout)? {
        AskOutcome::Answered(answer) => {
            let out = AskAnswer {
                ok: true,
                topic_id: topic.id,
                answer,
            };
            ctx.print(&serde_json::to_value(&out).unwrap_or_default(), || {
                let a = &out.answer;
                let mut t = format!("Answered by {}", printable(&a.by));
                if let Some(o) = &a.option {
                    t.push_str(&format!(": {}", printable(o)));
                }
                if let Some(x) = &a.text {
                    t.push_str(&format!("\n{}", printable(x)));
                }
                t
            });
            Ok(())
        }
        AskOutcome::TimedOut => Err(CliError::new(
            Exit::Timeout,
            "timeout",
            format!(
                "no answer to topic #{} within {}",
                topic.id,
                humantime::format_duration(a.timeout)
            ),
        )),
        AskOutcome::RoomClosed => Err(CliError::new(
            Exit::Closed,
            "room_closed",
            format!("the room closed before topic #{} was answered", topic.id),
        )),
    }
}

pub fn search(ctx: &Ctx, a: SearchArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let params = SearchParams {
        q: a.query.join(" "),
        from: a.from,
        kind: a.kind,
        limit: a.limit,
        before_id: a.before_id,
    };
    let found = match super::offline::open(ctx, &s.creds, "agentgather search")? {
        Some(mut room) => room.search(&params)?,
        None => s.client(CALL_TIMEOUT).search(&params)?,
    };
    if let Some(from) = params.from.as_deref().filter(|_| found.results.is_empty()) {
        let aliases = super::typo::roster(ctx, &s);
        if !aliases.iter().any(|a| a == from) {
            return Err(CliError::new(
                Exit::Error,
                "unknown_participant",
                format!(
                    "--from {from:?} is not a participant of this room; {}",
                    super::typo::hint(from, &aliases)
                ),
            ));
        }
    }
    ctx.print(&serde_json::to_value(&found).unwrap_or_default(), || {
        if found.results.is_empty() {
            return "(no matches)".into();
        }
        let mut out: Vec<String> = found
            .results
            .iter()
            .map(|h| {
                format!(
                    "#{:<4} {}: {}",
                    h.message.id,
                    printable(&h.message.from),
                    printable(&h.snippet)
                )
            })
            .collect();
        if found.has_more {
            let oldest = found.results.last().map_or(0, |h| h.message.id);
            out.push(format!("(more: agentgather search … --before-id {oldest})"));
        }
        out.join("\n")
    });
    Ok(())
}
