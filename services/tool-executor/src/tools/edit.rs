//! `edit_file`: replaces an exact string in a text file and answers with a
//! unified diff. The string must occur exactly once unless `replace_all` is
//! set, so an edit never lands somewhere the model did not mean.

use openheim_proto::common::v1::{FileDiff, ToolDefinition, ToolKind};
use serde::Deserialize;
use similar::TextDiff;

use super::{ToolContext, ToolHandler, ToolOutput, builtin_definition, parse_args};
use crate::error::ToolError;
use crate::sandbox::Access;

const NAME: &str = "edit_file";

/// Lines of context around each change in the diff.
const DIFF_CONTEXT: usize = 3;

#[derive(Debug, Deserialize)]
struct Args {
    path: String,
    old_string: String,
    new_string: String,
    #[serde(default)]
    replace_all: bool,
}

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
        let args: Args = parse_args(NAME, args)?;
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
        let (new_text, count) = replace(&args, &old_text)?;
        tokio::fs::write(&real, &new_text)
            .await
            .map_err(|e| ToolError::io("write", &args.path, e))?;
        let shown = ctx.workspace.relative(&real);
        let diff = unified_diff(&shown, &old_text, &new_text);
        let plural = if count == 1 { "" } else { "s" };
        let text = format!("Edited {shown}: {count} replacement{plural}\n{diff}");
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

/// The edited text and the number of replacements, or why the edit is
/// refused.
fn replace(args: &Args, text: &str) -> Result<(String, usize), ToolError> {
    let refuse = |reason: String| Err(ToolError::invalid_arguments(NAME, reason));
    if args.old_string.is_empty() {
        return refuse(
            "`old_string` is empty; use write_file to create or replace a whole file".to_owned(),
        );
    }
    if args.old_string == args.new_string {
        return refuse(
            "`old_string` and `new_string` are the same; nothing would change".to_owned(),
        );
    }
    let count = text.matches(args.old_string.as_str()).count();
    match (count, args.replace_all) {
        (0, _) => refuse(format!(
            "`old_string` was not found in {:?}; it must match exactly, including whitespace and indentation (read_file shows the current text)",
            args.path
        )),
        (1, _) | (_, true) => Ok((
            text.replace(args.old_string.as_str(), &args.new_string),
            count,
        )),
        (n, false) => refuse(format!(
            "`old_string` occurs {n} times in {:?}; include more surrounding lines to make it unique, or set replace_all to change every occurrence",
            args.path
        )),
    }
}

/// A unified diff of `path` from `old` to `new`.
fn unified_diff(path: &str, old: &str, new: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(DIFF_CONTEXT)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(old: &str, new: &str, replace_all: bool) -> Args {
        Args {
            path: "f.txt".to_owned(),
            old_string: old.to_owned(),
            new_string: new.to_owned(),
            replace_all,
        }
    }

    fn reason(result: Result<(String, usize), ToolError>) -> String {
        match result {
            Err(ToolError::InvalidArguments { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_unique_string_is_replaced() {
        let (text, count) = replace(&args("b", "B", false), "a\nb\nc\n").unwrap();
        assert_eq!((text.as_str(), count), ("a\nB\nc\n", 1));
    }

    #[test]
    fn ambiguity_and_absence_are_refused_with_advice() {
        let several = reason(replace(&args("x", "y", false), "x x x"));
        assert!(
            several.starts_with("`old_string` occurs 3 times in \"f.txt\""),
            "{several}"
        );
        assert!(several.contains("replace_all"), "{several}");
        let (all, count) = replace(&args("x", "y", true), "x x x").unwrap();
        assert_eq!((all.as_str(), count), ("y y y", 3));
        let missing = reason(replace(&args("  x", "y", false), "x"));
        assert!(missing.contains("was not found"), "{missing}");
        assert!(reason(replace(&args("", "y", false), "x")).contains("write_file"));
        assert!(reason(replace(&args("x", "x", false), "x")).contains("nothing would change"));
    }

    #[test]
    fn the_diff_is_unified_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n";
        assert_eq!(
            unified_diff("src/a.txt", old, new),
            "--- a/src/a.txt\n+++ b/src/a.txt\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }
}
