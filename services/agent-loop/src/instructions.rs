//! Project instructions: `AGENTS.md` at the workspace root, then the files
//! `project_instructions` names, read through tool-executor (which holds
//! the workspace and confines reads to it) at the start of every turn, so
//! an edit applies from the next turn on. They share one byte budget; a
//! file that is missing is skipped, one that cannot be read is skipped
//! with a warning, never failing the turn.

use std::path::PathBuf;

use openheim_proto::tool_executor::v1::Workspace;

use crate::backends::Backends;
use crate::prompt::{AGENTS_FILE, InstructionFile, PROJECT_INSTRUCTIONS_MAX_BYTES, text_prefix};

/// Reads the instruction files of `workspace`, in order, within the budget.
pub(crate) async fn read(
    backends: &Backends,
    workspace: &Workspace,
    extra: &[PathBuf],
) -> Vec<InstructionFile> {
    let mut names = vec![AGENTS_FILE.to_owned()];
    for path in extra {
        let name = path.to_string_lossy().replace('\\', "/");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut files = Vec::new();
    let mut left = PROJECT_INSTRUCTIONS_MAX_BYTES;
    for name in names {
        // One byte more than allowed tells a cut from a file that fits.
        let max_bytes = u64::try_from(left).unwrap_or(u64::MAX).max(1);
        let read = match backends.read_file(workspace, &name, max_bytes).await {
            Ok(Some(read)) => read,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(file = %name, %error, "project instructions left out");
                continue;
            }
        };
        if read.is_binary {
            tracing::warn!(file = %name, "project instructions left out: not a text file");
            continue;
        }
        let text = text_prefix(&read.content, left);
        left = left.saturating_sub(text.len());
        files.push(InstructionFile {
            name,
            text,
            size: read.size,
        });
    }
    files
}
