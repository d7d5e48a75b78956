//! Pure helpers of a turn about tool calls: reassembling streamed calls,
//! reading their arguments, and how a client shows them.

use openheim_proto::agent_loop::v1::ToolCallStarted;
use openheim_proto::common::v1::{ToolCall, ToolDefinition, ToolKind};

use crate::backends::ToolRoute;
use crate::memory;

/// Reassembles streamed tool calls: `index` picks the call, the first
/// fragment of an index carries its id and name.
pub(super) fn apply_tool_delta(
    calls: &mut Vec<ToolCall>,
    delta: openheim_proto::llm_proxy::v1::ToolCallDelta,
) {
    let index = delta.index as usize;
    // Indexes come from the provider; never let one allocate unbounded memory.
    const MAX_CALLS_PER_REPLY: usize = 128;
    if index >= MAX_CALLS_PER_REPLY {
        tracing::warn!(index, "ignoring tool call with an absurd index");
        return;
    }
    if calls.len() <= index {
        calls.resize_with(index + 1, ToolCall::default);
    }
    let call = &mut calls[index];
    if !delta.id.is_empty() {
        call.id = delta.id;
    }
    if !delta.name.is_empty() {
        call.name = delta.name;
    }
    call.arguments_json.push_str(&delta.arguments_fragment);
}

pub(super) fn tool_names(tools: &[(ToolDefinition, ToolRoute)]) -> String {
    let names: Vec<&str> = tools.iter().map(|(d, _)| d.name.as_str()).collect();
    names.join(", ")
}

pub(super) fn parse_args(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap_or(serde_json::Value::Null)
}

/// What a client shows for a call: a title and the paths it touches.
pub(super) fn describe(call: &ToolCall, kind: ToolKind) -> ToolCallStarted {
    let args = parse_args(&call.arguments_json);
    let path = args.get("path").and_then(|p| p.as_str());
    let title = match (
        call.name.as_str(),
        args.get("command").and_then(|c| c.as_str()),
        path,
    ) {
        ("execute_command", Some(command), _) => command.to_owned(),
        (name, _, _) if memory::is_memory_tool(name) => {
            memory::title(name, &args).unwrap_or_else(|| name.to_owned())
        }
        (name, _, Some(path)) => format!("{name} {path}"),
        (name, _, None) => name.to_owned(),
    };
    ToolCallStarted {
        id: call.id.clone(),
        name: call.name.clone(),
        title,
        kind: kind as i32,
        raw_input_json: call.arguments_json.clone(),
        locations: path.map(|p| vec![p.to_owned()]).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openheim_proto::llm_proxy::v1::ToolCallDelta;

    #[test]
    fn tool_call_fragments_reassemble_by_index() {
        let mut calls = Vec::new();
        let delta = |index, id: &str, name: &str, args: &str| ToolCallDelta {
            index,
            id: id.into(),
            name: name.into(),
            arguments_fragment: args.into(),
        };
        apply_tool_delta(&mut calls, delta(0, "a", "read_file", "{\"pa"));
        apply_tool_delta(&mut calls, delta(1, "b", "write_file", "{}"));
        apply_tool_delta(&mut calls, delta(0, "", "", "th\":1}"));
        apply_tool_delta(&mut calls, delta(100_000, "x", "y", "{}"));
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments_json, "{\"path\":1}");
        assert_eq!(calls[1].name, "write_file");
    }

    #[test]
    fn titles_and_locations() {
        let call = ToolCall {
            id: "1".into(),
            name: "write_file".into(),
            arguments_json: r#"{"path":"src/a.rs","content":"x"}"#.into(),
        };
        let d = describe(&call, ToolKind::Edit);
        assert_eq!(d.title, "write_file src/a.rs");
        assert_eq!(d.locations, vec!["src/a.rs"]);
        let call = ToolCall {
            id: "2".into(),
            name: "execute_command".into(),
            arguments_json: "not json".into(),
        };
        assert_eq!(describe(&call, ToolKind::Execute).title, "execute_command");
    }
}
