//! `CallToolInteractive`: a tool call whose server's elicitation requests
//! are put to the caller on the call's own stream (a `question` each,
//! answered by a `reply` with its id) while the call runs.

use std::collections::HashMap;
use std::future::Future;

use openheim_proto::common::v1::ElicitationAnswer;
use openheim_proto::mcp_broker::v1::{
    CallToolEvent, CallToolInput, ElicitationQuestion, call_tool_event, call_tool_input,
};
use tokio::sync::{mpsc, oneshot};
use tonic::{Status, Streaming};

use crate::elicitation::Ask;

/// Runs `calling` to its end, relaying the questions it asks to `events`
/// and the caller's replies from `inputs` back. A caller that closes its
/// input cancels the questions still open (the server gets `cancel`).
pub async fn relay<F: Future>(
    calling: F,
    mut questions: mpsc::Receiver<Ask>,
    mut inputs: Streaming<CallToolInput>,
    events: &mpsc::Sender<Result<CallToolEvent, Status>>,
) -> F::Output {
    tokio::pin!(calling);
    let mut waiting: HashMap<String, oneshot::Sender<ElicitationAnswer>> = HashMap::new();
    let mut next = 0u64;
    let mut reading = true;
    loop {
        tokio::select! {
            output = &mut calling => return output,
            Some(ask) = questions.recv() => {
                next += 1;
                let id = format!("elicitation-{next}");
                let question = ElicitationQuestion {
                    id: id.clone(),
                    elicitation: Some(ask.elicitation),
                };
                let event = call_tool_event::Event::Question(question);
                if events.send(Ok(CallToolEvent { event: Some(event) })).await.is_ok() {
                    waiting.insert(id, ask.answer);
                }
            }
            input = inputs.message(), if reading => match input {
                Ok(Some(CallToolInput {
                    input: Some(call_tool_input::Input::Reply(reply)),
                })) => {
                    if let Some(answer) = waiting.remove(&reply.id) {
                        let _ = answer.send(reply.answer.unwrap_or_default());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    reading = false;
                    waiting.clear();
                }
            },
        }
    }
}
