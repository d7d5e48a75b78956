//! Building the definition of a built-in tool: one shape for the tools of
//! tool-executor and those agent-loop answers itself (memory, sub-agents).

use crate::common::v1::{ToolDefinition, ToolKind};

impl ToolDefinition {
    /// A built-in tool (`source` = `builtin`) taking arguments described by
    /// the JSON Schema `input_schema_json` (compact JSON: every LLM request
    /// pays for it).
    pub fn builtin(
        name: &str,
        description: impl Into<String>,
        input_schema_json: String,
        kind: ToolKind,
        read_only: bool,
    ) -> Self {
        Self {
            name: name.to_owned(),
            description: description.into(),
            input_schema_json,
            kind: kind as i32,
            read_only,
            source: "builtin".to_owned(),
        }
    }
}
