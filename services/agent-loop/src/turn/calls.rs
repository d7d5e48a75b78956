//! Pure helpers of a turn about tool calls: reading their arguments and
//! how a client shows them.

use openheim_proto::agent_loop::v1::ToolCallStarted;
use openheim_proto::common::v1::{ToolCall, ToolDefinition, ToolKind};

use crate::backends::ToolRoute;
use crate::memory;

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
        (super::delegate::DELEGATE_TASK, _, _) => super::delegate::title(&args),
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
