//! `read_file` and `write_file`: the model's file tools, every path resolved
//! through the workspace sandbox.

use std::io;

use openheim_proto::common::v1::{FileDiff, ToolDefinition, ToolKind};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{ToolContext, ToolHandler, ToolOutput, builtin_definition, parse_args};
use crate::error::ToolError;
use crate::sandbox::Access;
use crate::truncate::without_partial_char_at_end;

const READ: &str = "read_file";
const WRITE: &str = "write_file";

/// Room kept below the output budget for the truncation note, so the
/// registry's cap does not cut the middle out of a file we already cut.
const NOTE_ROOM: usize = 128;

#[derive(Debug, Deserialize)]
struct ReadArgs {
    path: String,
}

#[derive(Debug, Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

/// Reads a text file, lossily decoded, up to the output budget.
pub(crate) struct ReadFile;

#[async_trait::async_trait]
impl ToolHandler for ReadFile {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            READ,
            "Read a text file. Paths are relative to the workspace root.",
            serde_json::json!({
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"]
            }),
            ToolKind::Read,
            true,
        )
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: ReadArgs = parse_args(READ, args)?;
        let real = ctx.workspace.resolve(&args.path, Access::Read)?;
        let io_err = |e: io::Error| ToolError::io("read", &args.path, e);
        let file = tokio::fs::File::open(&real).await.map_err(io_err)?;
        let size = file.metadata().await.map_err(io_err)?;
        if size.is_dir() {
            return Err(ToolError::invalid_arguments(
                READ,
                format!(
                    "argument `path`: expected a file, but {:?} is a directory",
                    args.path
                ),
            ));
        }
        let size = size.len();
        let limit = ctx.max_result_bytes.saturating_sub(NOTE_ROOM);
        let mut bytes = Vec::new();
        // One byte more than the budget tells whether anything was left out,
        // also for files whose size metadata says 0 (procfs and the like).
        file.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(io_err)?;
        let truncated = bytes.len() > limit;
        bytes.truncate(limit);
        let shown = if truncated {
            without_partial_char_at_end(&bytes)
        } else {
            &bytes[..]
        };
        let mut text = String::from_utf8_lossy(shown).into_owned();
        if truncated {
            text.push_str(&format!(
                "\n[… file truncated: showed the first {} of {size} bytes …]",
                shown.len()
            ));
        }
        let raw_output = serde_json::json!({
            "path": ctx.workspace.relative(&real),
            "size": size,
            "truncated": truncated,
        });
        Ok(ToolOutput {
            text,
            raw_output,
            diffs: Vec::new(),
        })
    }
}

/// Creates or overwrites a file (and its missing parent directories).
pub(crate) struct WriteFile;

#[async_trait::async_trait]
impl ToolHandler for WriteFile {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            WRITE,
            "Create or overwrite a file with content. Creates missing directories.",
            serde_json::json!({
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"]
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
        let args: WriteArgs = parse_args(WRITE, args)?;
        let real = ctx.workspace.resolve(&args.path, Access::Write)?;
        let old_text = match tokio::fs::read(&real).await {
            Ok(old) => Some(String::from_utf8_lossy(&old).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(ToolError::io("read", &args.path, e)),
        };
        if let Some(parent) = real.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ToolError::io("create the directories of", &args.path, e))?;
        }
        tokio::fs::write(&real, &args.content)
            .await
            .map_err(|e| ToolError::io("write", &args.path, e))?;
        let raw_output = serde_json::json!({
            "path": ctx.workspace.relative(&real),
            "bytes": args.content.len(),
            "created": old_text.is_none(),
        });
        let text = format!("Wrote {} bytes to {}", args.content.len(), args.path);
        let diff = FileDiff {
            // Absolute, as ACP clients expect for diff locations.
            path: real.display().to_string(),
            old_text,
            new_text: args.content,
        };
        Ok(ToolOutput {
            text,
            raw_output,
            diffs: vec![diff],
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::sandbox::WorkspaceRoot;

    fn context(dir: &tempfile::TempDir, max_result_bytes: usize) -> ToolContext {
        ToolContext {
            workspace: WorkspaceRoot::new(dir.path()).unwrap(),
            cancel: CancellationToken::new(),
            shell_timeout: Duration::from_secs(5),
            max_result_bytes,
        }
    }

    #[tokio::test]
    async fn write_reports_a_diff_and_read_returns_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir, 1024);
        let args = serde_json::json!({"path": "sub/a.txt", "content": "one"});
        let first = WriteFile.execute(&ctx, args).await.unwrap();
        assert_eq!(first.text, "Wrote 3 bytes to sub/a.txt");
        assert_eq!(first.diffs[0].old_text, None);
        let args = serde_json::json!({"path": "sub/a.txt", "content": "two"});
        let second = WriteFile.execute(&ctx, args).await.unwrap();
        assert_eq!(second.diffs[0].old_text.as_deref(), Some("one"));
        assert_eq!(second.diffs[0].new_text, "two");
        let read = ReadFile
            .execute(&ctx, serde_json::json!({"path": "sub/a.txt"}))
            .await
            .unwrap();
        assert_eq!(read.text, "two");
    }

    #[tokio::test]
    async fn long_files_are_cut_with_a_note_on_a_character_boundary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.txt"), "€".repeat(1000)).unwrap();
        let ctx = context(&dir, 300);
        let read = ReadFile
            .execute(&ctx, serde_json::json!({"path": "big.txt"}))
            .await
            .unwrap();
        assert!(!read.text.contains('\u{FFFD}'));
        assert!(
            read.text
                .ends_with("[… file truncated: showed the first 171 of 3000 bytes …]"),
            "{}",
            read.text
        );
        assert!(read.text.len() <= 300);
        assert_eq!(read.raw_output["truncated"], true);
    }

    #[tokio::test]
    async fn directories_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let ctx = context(&dir, 1024);
        let err = ReadFile
            .execute(&ctx, serde_json::json!({"path": "d"}))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid arguments for read_file: argument `path`: expected a file, but \"d\" is a directory"
        );
    }
}
