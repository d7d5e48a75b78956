//! The `update_plan` tool (docs/plans.md), answered by the agent loop itself
//! (`ToolRoute::Plan`): the model keeps a task plan the user sees. The call
//! is the plan's record: it is stored with the history like any tool call,
//! so the plan survives restarts and is found again on load and resume
//! (`openheim_proto::plan::latest`). Each accepted call is sent to the
//! caller as a `plan` event (`turn/plan.rs`).

use openheim_proto::common::v1::{ToolDefinition, ToolKind};
use openheim_proto::plan::UPDATE_PLAN;

use crate::backends::ToolRoute;

/// The tool as the model sees it; its schema is kept short (the built-in
/// schemas and the system prompt share a 4 KB budget).
pub fn definition() -> ToolDefinition {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"entries": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "content": {"type": "string"},
                "status": {"enum": ["pending", "in_progress", "completed"]},
                "priority": {"enum": ["high", "medium", "low"]}
            },
            "required": ["content", "status"]
        }}},
        "required": ["entries"]
    });
    ToolDefinition::builtin(
        UPDATE_PLAN,
        "Show the user your plan for a multi-step task; send the full list on each change.",
        schema.to_string(),
        ToolKind::Think,
        true,
    )
}

/// Adds `update_plan` to a turn's tools; a peer's tool of the same name is
/// left out, so a call always reaches this one.
pub fn offer(tools: &mut Vec<(ToolDefinition, ToolRoute)>) {
    tools.retain(|(definition, _)| definition.name != UPDATE_PLAN);
    tools.push((definition(), ToolRoute::Plan));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_replaces_a_peer_of_the_same_name_and_stays_small() {
        let mut tools = vec![(
            ToolDefinition {
                name: UPDATE_PLAN.into(),
                ..ToolDefinition::default()
            },
            ToolRoute::Mcp,
        )];
        offer(&mut tools);
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].1, ToolRoute::Plan);
        let definition = &tools[0].0;
        let size = definition.description.len() + definition.input_schema_json.len();
        assert!(
            size < 500,
            "update_plan takes {size} B of the prompt budget"
        );
    }
}
