//! `room_approve`: the tool Claude Code's `--permission-prompt-tool` calls when a tool
//! call needs permission in print mode (and in woken turns). Its input and answer are
//! Claude Code's shapes, not ours: `{tool_name, input, tool_use_id?}` in, and a text
//! block holding `{"behavior": "allow", "updatedInput": …}` or `{"behavior": "deny",
//! "message": …}` out. The decision is the room's (see `session::approvals`): anything
//! but a person's Allow is a deny.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{RoomTools, blocking};
use crate::protocol::approval::{Decision, NewApprovalBody};
use crate::session::SessionError;

/// What Claude Code passes a permission prompt tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ApproveParams {
    /// The tool that asks to run (for example Bash).
    pub tool_name: String,
    /// The tool's input, exactly as the model produced it.
    #[serde(default)]
    pub input: Value,
    /// The id of the tool call.
    #[serde(default)]
    pub tool_use_id: Option<String>,
}

#[tool_router(router = approval_router, vis = "pub(super)")]
impl RoomTools {
    #[tool(
        name = "room_approve",
        description = "Permission prompt for Claude Code's --permission-prompt-tool: puts a pending tool call to a person in the room (the host) and waits for Allow or Deny. Answers {\"behavior\":\"allow\",\"updatedInput\":…} only when a person allowed it; no answer in time, a closed or unreachable room is a deny. Not for the model to call itself.",
        annotations(
            title = "Ask the room to approve a tool call",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn room_approve(
        &self,
        Parameters(p): Parameters<ApproveParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let home = self.home.clone();
        let input = p.input.clone();
        let body = NewApprovalBody {
            tool: p.tool_name,
            input: p.input,
            reason: None,
            approver: None,
            timeout_s: None,
            client_msg_id: NewApprovalBody::key_for_call(p.tool_use_id.as_deref()),
        };
        let decision =
            blocking(move || Ok::<_, SessionError>(crate::session::approvals::decide(&home, body)))
                .await
                .unwrap_or_else(|e| Decision::Deny(format!("the approval did not finish: {e}")));
        let answer = decision.prompt_tool_answer(input);
        let text = serde_json::to_string(&answer).map_err(|e| {
            ErrorData::internal_error(format!("cannot encode the decision: {e}"), None)
        })?;
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}
