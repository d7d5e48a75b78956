//! `list_dir`: a bounded, sorted listing of a workspace directory for the
//! model, one workspace-relative path per line, directories marked with a
//! trailing `/`.

use openheim_proto::common::v1::{ToolDefinition, ToolKind};
use openheim_proto::tool_executor::v1::FileEntry;
use serde::Deserialize;

use super::{ToolContext, ToolHandler, ToolOutput, builtin_definition, parse_args};
use crate::error::ToolError;
use crate::fileops::{Walk, WalkLimits, walk};

const NAME: &str = "list_dir";

/// Depth when the call does not say (the directory and its children).
pub const DEFAULT_DEPTH: usize = 2;
/// Deepest listing one call may ask for.
pub const MAX_DEPTH: usize = 5;
/// Most entries one listing shows.
pub const MAX_ENTRIES: usize = 500;

#[derive(Debug, Deserialize)]
struct Args {
    #[serde(default)]
    path: String,
    #[serde(default)]
    depth: Option<usize>,
}

/// The built-in directory listing tool.
pub(crate) struct ListDir;

#[async_trait::async_trait]
impl ToolHandler for ListDir {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            NAME,
            "List a directory (default: workspace root) to depth levels (default 2, max 5). Directories end with /.",
            serde_json::json!({
                "type": "object",
                "properties": {"path": {"type": "string"}, "depth": {"type": "integer"}}
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
        let args: Args = parse_args(NAME, args)?;
        let limits = WalkLimits {
            max_depth: args.depth.unwrap_or(DEFAULT_DEPTH).clamp(1, MAX_DEPTH),
            max_entries: MAX_ENTRIES,
            skip_vcs: true,
        };
        let workspace = ctx.workspace.clone();
        let path = args.path.clone();
        let (listing, limits) =
            tokio::task::spawn_blocking(move || (walk(&workspace, &path, &limits), limits))
                .await
                .map_err(|e| ToolError::Failed(format!("listing {:?} failed: {e}", args.path)))?;
        let listing = listing?;
        let raw_output = serde_json::json!({
            "entries": listing.entries.len(),
            "truncated": listing.hit_entry_limit,
            "depth_limited": listing.hit_depth_limit,
        });
        Ok(ToolOutput {
            text: render(listing, &limits),
            raw_output,
            diffs: Vec::new(),
            images: Vec::new(),
        })
    }
}

/// One line per entry, sorted component by component, then notes on
/// what the limits left out.
fn render(listing: Walk, limits: &WalkLimits) -> String {
    let mut entries = listing.entries;
    entries.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    let mut text: String = entries.iter().map(line).collect();
    if entries.is_empty() {
        text.push_str("(empty directory)\n");
    }
    if listing.hit_entry_limit {
        text.push_str(&format!(
            "[… stopped at {MAX_ENTRIES} entries; list a subdirectory or lower depth …]\n"
        ));
    }
    if listing.hit_depth_limit {
        text.push_str(&format!(
            "[… directories at depth {} not expanded; list them or raise depth (max {MAX_DEPTH}) …]\n",
            limits.max_depth
        ));
    }
    text
}

fn line(entry: &FileEntry) -> String {
    let slash = if entry.is_dir { "/" } else { "" };
    format!("{}{slash}\n", entry.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, is_dir: bool) -> FileEntry {
        FileEntry {
            path: path.to_owned(),
            name: path.rsplit('/').next().unwrap_or_default().to_owned(),
            is_dir,
            size: 0,
            modified_ms: 0,
        }
    }

    #[test]
    fn entries_sort_by_component_and_dirs_get_a_slash() {
        let listing = Walk {
            entries: vec![
                entry("b-c", false),
                entry("b", true),
                entry("a.txt", false),
                entry("b/inner", true),
            ],
            hit_entry_limit: false,
            hit_depth_limit: true,
        };
        let limits = WalkLimits {
            max_depth: 2,
            max_entries: MAX_ENTRIES,
            skip_vcs: true,
        };
        assert_eq!(
            render(listing, &limits),
            "a.txt\nb/\nb/inner/\nb-c\n[… directories at depth 2 not expanded; list them or raise depth (max 5) …]\n"
        );
    }
}
