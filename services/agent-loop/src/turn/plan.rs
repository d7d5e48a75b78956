//! Answering `update_plan` inside a turn (the tool: `plan.rs`): the plan is
//! checked, sent to the caller as a `plan` event, and the model told so.

use openheim_proto::agent_loop::v1::turn_event::Event;
use openheim_proto::common::v1::ToolCall;
use openheim_proto::plan;

use super::Turn;
use crate::outcome::Outcome;

impl Turn {
    /// Checks the plan, sends it to the caller and tells the model so.
    pub(crate) async fn update_plan(&self, call: &ToolCall) -> Outcome {
        match plan::parse(&call.arguments_json) {
            Ok(parsed) => {
                let text = format!("Plan updated ({}).", plan::summary(&parsed));
                self.emit(Event::Plan(parsed)).await;
                Outcome {
                    text,
                    ..Outcome::default()
                }
            }
            Err(error) => Outcome::error(format!(
                "Invalid arguments for update_plan: {error}. Expected {{\"entries\": [{{\"content\": string, \"status\": \"pending\"|\"in_progress\"|\"completed\", \"priority\"?: \"high\"|\"medium\"|\"low\"}}]}}."
            )),
        }
    }
}
