//! `edit_file`: replaces an exact string in a text file and answers with a
//! unified diff. The string must occur exactly once unless `replace_all` is
//! set, so an edit never lands somewhere the model did not mean.

use openheim_proto::common::v1::{FileDiff, ToolDefinition, ToolKind};
use openheim_tool_rules::args::{EDIT_FILE as NAME, EditArgs};
use openheim_tool_rules::edit;

use super::{ToolContext, ToolHandler, ToolOutput, builtin_definition, parse_args};
use crate::error::ToolError;
use crate::sandbox::Access;

/// The built-in exact-replace edit tool.
pub(crate) struct EditFile;

#[async_trait::async_trait]
impl ToolHandler for EditFile {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            NAME,
            "Replace old_string with new_string in a file. old_string must match exactly and be unique unless replace_all. Returns a diff.",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "old_string": {"type": "string"},
                    "new_string": {"type": "string"},
                    "replace_all": {"type": "boolean"}
                },
                "required": ["path", "old_string", "new_string"]
            }),
            ToolKind::Edit,
            false,
        )
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: EditArgs = parse_args(NAME, args)?;
        let real = ctx.workspace.resolve(&args.path, Access::Write)?;
        let bytes = tokio::fs::read(&real)
            .await
            .map_err(|e| ToolError::io("read", &args.path, e))?;
        let old_text = String::from_utf8(bytes).map_err(|_| {
            ToolError::Failed(format!(
                "{:?} is not UTF-8 text; edit_file changes text files only",
                args.path
            ))
        })?;
        let (new_text, count) = args
            .apply(&old_text)
            .map_err(|refused| ToolError::invalid_arguments(NAME, refused.to_string()))?;
        tokio::fs::write(&real, &new_text)
            .await
            .map_err(|e| ToolError::io("write", &args.path, e))?;
        let shown = ctx.workspace.relative(&real);
        let text = edit::result_text(&shown, count, &old_text, &new_text);
        let raw_output = serde_json::json!({"path": shown, "replacements": count});
        Ok(ToolOutput {
            text,
            raw_output,
            diffs: vec![FileDiff {
                // Absolute, as ACP clients expect for diff locations.
                path: real.display().to_string(),
                old_text: Some(old_text),
                new_text,
            }],
            images: Vec::new(),
        })
    }
}
