//! Approvals (SPEC §12) as data: a pending tool call put to a person is a topic of kind
//! `approval` whose answer is `allow` or `deny`. Kept apart from `topic` because it also
//! carries the shapes Claude Code speaks (its `PreToolUse` hook and its
//! `--permission-prompt-tool` answer), so the one place that decides "allow" is here.
//!
//! The tool input is any JSON the agent's harness sent; nothing here reads its fields.
//! It is stored as given and only ever shown as text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use super::topic::{TopicAnswer, TopicKind, TopicMeta, TopicStatus};

pub const ALLOW: &str = "allow";
pub const DENY: &str = "deny";
pub const TOOL_MAX: usize = 200;
pub const INPUT_MAX_BYTES: usize = 16 * 1024;
pub const REASON_MAX: usize = 2000;
pub const TIMEOUT_DEFAULT_S: u64 = 600;
pub const TIMEOUT_MIN_S: u64 = 10;
pub const TIMEOUT_MAX_S: u64 = 3600;

/// What an approval topic carries besides its title: the call put to the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub tool: String,
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub expires_at: String,
}

/// `POST /approvals`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewApprovalBody {
    pub tool: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_body", message)
}

impl NewApprovalBody {
    /// Checks the body's own limits and returns the timeout in seconds. Who the approver
    /// is can only be checked against the roster (the room's job).
    pub fn validate(&self) -> Result<u64, ApiError> {
        let tool = self.tool.trim();
        let n = tool.chars().count();
        if n == 0 || n > TOOL_MAX || tool.chars().any(char::is_control) {
            return Err(invalid(format!(
                "tool must be 1-{TOOL_MAX} characters on one line"
            )));
        }
        let bytes = self.input.to_string().len();
        if bytes > INPUT_MAX_BYTES {
            return Err(ApiError::too_large(
                "input_too_large",
                format!("input is {bytes} bytes of JSON; the limit is {INPUT_MAX_BYTES}"),
            ));
        }
        if self
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > REASON_MAX)
        {
            return Err(invalid(format!(
                "reason must be at most {REASON_MAX} characters"
            )));
        }
        super::topic::check_client_msg_id(self.client_msg_id.as_deref())?;
        let timeout = self.timeout_s.unwrap_or(TIMEOUT_DEFAULT_S);
        if !(TIMEOUT_MIN_S..=TIMEOUT_MAX_S).contains(&timeout) {
            return Err(invalid(format!(
                "timeout_s must be {TIMEOUT_MIN_S}-{TIMEOUT_MAX_S} seconds"
            )));
        }
        Ok(timeout)
    }

    /// The topic an approval is: title, fixed options, addressee and the call itself.
    /// The idempotency key for one tool call of a harness (its tool-use id), so asking
    /// again about the same call (a retried hook, a repeated prompt) finds the same
    /// approval and its answer instead of opening a second one.
    pub fn key_for_call(tool_use_id: Option<&str>) -> Option<String> {
        tool_use_id
            .map(|id| format!("tool-use-{id}"))
            .filter(|k| super::topic::check_client_msg_id(Some(k)).is_ok())
    }

    pub fn meta(&self, approver: &str, expires_at: String) -> TopicMeta {
        let tool = self.tool.trim().to_string();
        let mut title: String = format!("Allow {tool}?");
        if title.chars().count() > super::topic::TITLE_MAX {
            title = title.chars().take(super::topic::TITLE_MAX - 1).collect();
            title.push('…');
        }
        TopicMeta {
            title,
            status: TopicStatus::Open,
            kind: TopicKind::Approval,
            tags: Vec::new(),
            options: Some(vec![ALLOW.to_string(), DENY.to_string()]),
            to: Some(approver.to_string()),
            approval: Some(Approval {
                tool,
                input: self.input.clone(),
                reason: self.reason.clone().filter(|r| !r.trim().is_empty()),
                expires_at,
            }),
        }
    }
}

/// The message text of an approval: what the room log, exports and `messages` show.
/// The input sits in a code fence longer than any backtick run inside it, so no input
/// can close the fence and pass its own text off as the room's.
pub fn approval_text(asker: &str, meta: &TopicMeta) -> String {
    let Some(a) = &meta.approval else {
        return meta.title.clone();
    };
    let input = serde_json::to_string_pretty(&a.input).unwrap_or_else(|_| a.input.to_string());
    let fence = "`".repeat(longest_backtick_run(&input).max(2) + 1);
    let mut text = format!(
        "{asker} asks to run the tool `{}`.",
        a.tool.replace('`', "'")
    );
    if let Some(r) = &a.reason {
        text.push_str(&format!("\n\nReason given: {r}"));
    }
    text.push_str(&format!(
        "\n\nInput:\n{fence}json\n{input}\n{fence}\n\nAllow or deny by {}.",
        a.expires_at
    ));
    text
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// How an approval ended, as the agent's harness needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied, with the reason to give the model.
    Deny(String),
}

impl Decision {
    /// The decision an answer carries: only an explicit, unexpired `allow` allows.
    pub fn of_answer(a: &TopicAnswer) -> Decision {
        if a.option.as_deref() == Some(ALLOW) && !a.expired {
            return Decision::Allow;
        }
        if a.expired {
            return Decision::Deny("the approval expired with no answer".to_string());
        }
        let mut why = format!("denied by {} in the room", a.by);
        if let Some(t) = a.text.as_deref().filter(|t| !t.trim().is_empty()) {
            why.push_str(": ");
            why.push_str(t);
        }
        Decision::Deny(why)
    }

    /// The JSON a `PreToolUse` hook prints.
    pub fn hook_output(&self) -> HookOutput {
        let (decision, reason) = match self {
            Decision::Allow => (ALLOW, "allowed from the room".to_string()),
            Decision::Deny(r) => (DENY, r.clone()),
        };
        HookOutput {
            hook_specific_output: HookDecision {
                hook_event_name: "PreToolUse".to_string(),
                permission_decision: decision.to_string(),
                permission_decision_reason: reason,
            },
        }
    }

    /// The answer of a `--permission-prompt-tool` tool; an allow passes `input` unchanged.
    pub fn prompt_tool_answer(&self, input: Value) -> PromptToolAnswer {
        match self {
            Decision::Allow => PromptToolAnswer::Allow {
                updated_input: input,
            },
            Decision::Deny(message) => PromptToolAnswer::Deny {
                message: message.clone(),
            },
        }
    }
}

/// What Claude Code sends a `PreToolUse` hook on stdin (the fields used here).
#[derive(Debug, Clone, Deserialize)]
pub struct PreToolUseInput {
    pub tool_name: String,
    #[serde(default)]
    pub tool_input: Value,
    #[serde(default)]
    pub tool_use_id: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
}

/// What a `PreToolUse` hook prints on stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookOutput {
    #[serde(rename = "hookSpecificOutput")]
    pub hook_specific_output: HookDecision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookDecision {
    pub hook_event_name: String,
    pub permission_decision: String,
    pub permission_decision_reason: String,
}

/// The text a `--permission-prompt-tool` returns, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "behavior", rename_all = "lowercase")]
pub enum PromptToolAnswer {
    Allow {
        #[serde(rename = "updatedInput")]
        updated_input: Value,
    },
    Deny {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> NewApprovalBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn validates_tool_input_and_timeout() {
        assert_eq!(
            body(json!({"tool": "Bash", "input": {}})).validate(),
            Ok(600)
        );
        let code = |v| body(v).validate().unwrap_err().code;
        assert_eq!(code(json!({"tool": " "})), "invalid_body");
        assert_eq!(code(json!({"tool": "t".repeat(201)})), "invalid_body");
        assert_eq!(code(json!({"tool": "a\nb"})), "invalid_body");
        assert_eq!(code(json!({"tool": "t", "timeout_s": 9})), "invalid_body");
        assert_eq!(
            code(json!({"tool": "t", "timeout_s": 3601})),
            "invalid_body"
        );
        let big = "x".repeat(INPUT_MAX_BYTES);
        assert_eq!(
            code(json!({"tool": "t", "input": {"c": big}})),
            "input_too_large"
        );
    }

    #[test]
    fn only_an_unexpired_allow_allows() {
        let answer = |option: &str, expired| TopicAnswer {
            option: Some(option.to_string()),
            text: Some("not now".to_string()),
            by: "host".to_string(),
            expired,
        };
        assert_eq!(
            Decision::of_answer(&answer("allow", false)),
            Decision::Allow
        );
        assert!(matches!(
            Decision::of_answer(&answer("allow", true)),
            Decision::Deny(_)
        ));
        let Decision::Deny(why) = Decision::of_answer(&answer("deny", false)) else {
            panic!("a deny allowed");
        };
        assert!(why.contains("not now"), "{why}");
        let out = serde_json::to_value(Decision::Deny("no".into()).hook_output()).unwrap();
        assert_eq!(
            out,
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny", "permissionDecisionReason": "no"}})
        );
        let allow = serde_json::to_value(Decision::Allow.prompt_tool_answer(json!({"a": 1})));
        assert_eq!(
            allow.unwrap(),
            json!({"behavior": "allow", "updatedInput": {"a": 1}})
        );
    }

    #[test]
    fn no_input_closes_the_fence() {
        let b = body(json!({"tool": "Bash", "input": {"command": "echo ````\n# Approved\n````"}}));
        let text = approval_text("agent", &b.meta("host", "2026-01-01T00:00:00Z".into()));
        let fence_line = text.lines().find(|l| l.starts_with("```")).unwrap();
        assert!(fence_line.starts_with("`````"), "{text}");
    }
}
