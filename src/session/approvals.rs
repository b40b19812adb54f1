//! Putting one of this participant's tool calls to a person (SPEC §12), shared by the
//! `approve-hook` command and the MCP `room_approve` tool. Its one promise: the answer
//! is `allow` only when a person allowed this call in the room. Anything else (no room,
//! an unreachable server, a refusal, a timeout, a closed room) is a `deny` that says why.

use std::time::Duration;

use super::Session;
use super::topics::AskOutcome;
use crate::protocol::approval::{Decision, NewApprovalBody, TIMEOUT_DEFAULT_S};
use crate::protocol::message::Message;
use crate::store::Home;

/// How long past an approval's expiry the asker keeps listening for the server's
/// recorded `deny` before it stops on its own (the decision is the same either way).
const EXPIRY_GRACE: Duration = Duration::from_secs(10);

impl Session {
    /// Opens an approval (retry-safe, like a topic), then waits for its answer until a
    /// little past its expiry.
    pub fn request_approval(
        &self,
        body: NewApprovalBody,
    ) -> Result<(Message, Decision), super::SessionError> {
        let timeout = Duration::from_secs(body.timeout_s.unwrap_or(TIMEOUT_DEFAULT_S));
        let topic = self.post_keyed(body.client_msg_id.clone(), |client, key| {
            let mut body = body.clone();
            body.client_msg_id = Some(key.to_string());
            client.open_approval(&body).map(|a| a.message)
        })?;
        let decision = match self.wait_for_answer(topic.id, topic.id, timeout + EXPIRY_GRACE)? {
            AskOutcome::Answered(a) => Decision::of_answer(&a),
            AskOutcome::TimedOut => {
                Decision::Deny(format!("no answer to approval #{} in time", topic.id))
            }
            AskOutcome::RoomClosed => {
                Decision::Deny("the room closed before anyone answered".to_string())
            }
        };
        Ok((topic, decision))
    }
}

/// The decision for one tool call from the participant of `home`: never `allow` unless a
/// person allowed it.
pub fn decide(home: &Home, body: NewApprovalBody) -> Decision {
    let outcome = Session::current(home).and_then(|s| s.request_approval(body));
    match outcome {
        Ok((_, d)) => d,
        Err(e) => Decision::Deny(format!("could not get an answer from the room: {e}")),
    }
}
