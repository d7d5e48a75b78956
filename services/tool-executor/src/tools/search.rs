//! `search`: a regex search over workspace files with ripgrep's library
//! crates — `ignore` walks the tree honouring `.gitignore` (also outside a
//! git repository), `grep-searcher` finds matching lines and detects binary
//! files, whose matches are dropped. Results are bounded and printed as
//! `path:line:text`, paths relative to the workspace root.
//!
//! The walk is blocking and runs on the blocking pool; it checks the call's
//! cancellation between files.

use std::io;
use std::path::Path;

use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};
use ignore::WalkBuilder;
use ignore::overrides::{Override, OverrideBuilder};
use openheim_proto::common::v1::{ToolDefinition, ToolKind};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{ToolContext, ToolHandler, ToolOutput, builtin_definition, parse_args};
use crate::error::ToolError;
use crate::sandbox::{Access, WorkspaceRoot};

const NAME: &str = "search";

/// Matches shown when the call does not say.
pub const DEFAULT_MAX_RESULTS: usize = 100;
/// Most matches one call may ask for.
pub const MAX_RESULTS: usize = 1000;
/// Longer matching lines are cut to this many characters.
const MAX_LINE_CHARS: usize = 300;
/// Files larger than this are not searched.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Deserialize)]
struct Args {
    pattern: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    glob: Option<String>,
    #[serde(default)]
    max_results: Option<usize>,
}

/// The built-in content search tool.
pub(crate) struct Search;

#[async_trait::async_trait]
impl ToolHandler for Search {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            NAME,
            "Regex search of file contents (honours .gitignore, skips binary files). glob filters file names, e.g. *.rs. Prints path:line:text.",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string"},
                    "path": {"type": "string"},
                    "glob": {"type": "string"},
                    "max_results": {"type": "integer"}
                },
                "required": ["pattern"]
            }),
            ToolKind::Search,
            true,
        )
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args(NAME, args)?;
        let workspace = ctx.workspace.clone();
        let cancel = ctx.cancel.clone();
        let found = tokio::task::spawn_blocking(move || run(&workspace, &args, &cancel))
            .await
            .map_err(|e| ToolError::Failed(format!("the search failed: {e}")))??;
        let raw_output = serde_json::json!({
            "matches": found.lines.len(),
            "truncated": found.truncated,
            "files_searched": found.files_searched,
        });
        Ok(ToolOutput {
            text: found.render(),
            raw_output,
            diffs: Vec::new(),
            images: Vec::new(),
        })
    }
}

/// What a search found.
#[derive(Debug, Default)]
struct Found {
    pattern: String,
    /// `path:line:text` entries.
    lines: Vec<String>,
    truncated: bool,
    files_searched: usize,
}

impl Found {
    fn render(&self) -> String {
        if self.lines.is_empty() {
            return format!(
                "No matches for {:?} in {} files.",
                self.pattern, self.files_searched
            );
        }
        let mut text = self.lines.join("\n");
        text.push('\n');
        if self.truncated {
            text.push_str(&format!(
                "[… stopped at {} matches; narrow the pattern, path or glob …]\n",
                self.lines.len()
            ));
        }
        text
    }
}

/// Searches (blocking).
fn run(ws: &WorkspaceRoot, args: &Args, cancel: &CancellationToken) -> Result<Found, ToolError> {
    let root = ws.resolve(&args.path, Access::Read)?;
    let matcher = RegexMatcherBuilder::new()
        .line_terminator(Some(b'\n'))
        .build(&args.pattern)
        .map_err(|e| ToolError::invalid_arguments(NAME, format!("argument `pattern`: {e}")))?;
    let filter = args
        .glob
        .as_deref()
        .map(|g| file_filter(&root, g))
        .transpose()?;
    let limit = args
        .max_results
        .unwrap_or(DEFAULT_MAX_RESULTS)
        .clamp(1, MAX_RESULTS);
    let mut searcher = SearcherBuilder::new()
        .binary_detection(BinaryDetection::quit(0))
        .line_number(true)
        .build();
    let mut found = Found {
        pattern: args.pattern.clone(),
        ..Found::default()
    };
    // One match more than shown tells whether anything was left out.
    let quota = limit + 1;
    for entry in walker(&root).flatten() {
        if cancel.is_cancelled() {
            return Err(ToolError::Failed("the search was cancelled".to_owned()));
        }
        // Symlinks are not followed: their targets may lie outside.
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        if filter.as_ref().is_some_and(|f| !selected(f, path)) {
            continue;
        }
        found.files_searched += 1;
        let mut sink = FileMatches::new(quota - found.lines.len());
        // An unreadable file is skipped, as grep would skip it.
        if searcher.search_path(&matcher, path, &mut sink).is_err() || sink.binary {
            continue;
        }
        let shown = ws.relative(path);
        found.lines.extend(
            sink.lines
                .into_iter()
                .map(|(number, text)| format!("{shown}:{number}:{text}")),
        );
        if found.lines.len() == quota {
            found.lines.truncate(limit);
            found.truncated = true;
            break;
        }
    }
    Ok(found)
}

/// The walk: `.gitignore`, `.ignore` and `.git/info/exclude` honoured even
/// outside a git repository, hidden files included but VCS directories
/// skipped, no symlinks followed, sorted for stable output. The user's
/// global git excludes are not read: results must not depend on whose
/// home directory the executor runs in.
fn walker(root: &Path) -> ignore::Walk {
    WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .git_global(false)
        .follow_links(false)
        .max_filesize(Some(MAX_FILE_BYTES))
        .filter_entry(|e| {
            !matches!(
                e.file_name().to_str(),
                Some(".git" | ".hg" | ".svn" | ".jj")
            )
        })
        .sort_by_file_name(|a, b| a.cmp(b))
        .build()
}

/// The `glob` argument as a file filter relative to the search root.
fn file_filter(root: &Path, glob: &str) -> Result<Override, ToolError> {
    let mut builder = OverrideBuilder::new(root);
    builder
        .add(glob)
        .and_then(|b| b.build())
        .map_err(|e| ToolError::invalid_arguments(NAME, format!("argument `glob`: {e}")))
}

/// Whether `path` passes the glob. Applied by hand rather than as walk
/// overrides, which would let a glob re-include `.gitignore`d files.
fn selected(filter: &Override, path: &Path) -> bool {
    !filter.matched(path, false).is_ignore()
}

/// The matches of one file, with the binary verdict.
struct FileMatches {
    lines: Vec<(u64, String)>,
    limit: usize,
    binary: bool,
}

impl FileMatches {
    fn new(limit: usize) -> Self {
        Self {
            lines: Vec::new(),
            limit,
            binary: false,
        }
    }
}

impl Sink for &mut FileMatches {
    type Error = io::Error;

    fn matched(&mut self, _searcher: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let text = String::from_utf8_lossy(mat.bytes());
        let text = text.trim_end_matches(['\n', '\r']);
        let mut shown: String = text.chars().take(MAX_LINE_CHARS).collect();
        if shown.len() < text.len() {
            shown.push_str(" […]");
        }
        self.lines.push((mat.line_number().unwrap_or(0), shown));
        Ok(self.lines.len() < self.limit)
    }

    fn binary_data(&mut self, _searcher: &Searcher, _offset: u64) -> Result<bool, io::Error> {
        self.binary = true;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, WorkspaceRoot) {
        let dir = tempfile::tempdir().unwrap();
        let ws = WorkspaceRoot::new(dir.path()).unwrap();
        (dir, ws)
    }

    fn search(ws: &WorkspaceRoot, args: serde_json::Value) -> Result<Found, ToolError> {
        let args: Args = parse_args(NAME, args)?;
        run(ws, &args, &CancellationToken::new())
    }

    #[test]
    fn matches_are_path_line_text_in_file_order() {
        let (dir, ws) = workspace();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.rs"), "fn main() {}\n// TODO one\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "TODO two\nnothing\n").unwrap();
        let found = search(&ws, serde_json::json!({"pattern": "TODO \\w+"})).unwrap();
        assert_eq!(found.render(), "b.txt:1:TODO two\nsrc/a.rs:2:// TODO one\n");
        let rust = search(&ws, serde_json::json!({"pattern": "TODO", "glob": "*.rs"})).unwrap();
        assert_eq!(rust.lines, ["src/a.rs:2:// TODO one"]);
        let under = search(&ws, serde_json::json!({"pattern": "TODO", "path": "src"})).unwrap();
        assert_eq!(under.lines.len(), 1);
    }

    #[test]
    fn bad_patterns_and_globs_are_argument_errors() {
        let (_dir, ws) = workspace();
        for args in [
            serde_json::json!({"pattern": "("}),
            serde_json::json!({"pattern": "a", "glob": "{"}),
        ] {
            let e = search(&ws, args).unwrap_err();
            assert!(matches!(e, ToolError::InvalidArguments { .. }), "{e}");
        }
    }

    #[test]
    fn long_lines_are_cut() {
        let (dir, ws) = workspace();
        std::fs::write(
            dir.path().join("min.js"),
            format!("x{}\n", "y".repeat(5000)),
        )
        .unwrap();
        let found = search(&ws, serde_json::json!({"pattern": "x"})).unwrap();
        assert!(found.lines[0].ends_with(" […]"));
        assert!(found.lines[0].len() < MAX_LINE_CHARS + 20);
    }

    #[test]
    fn the_matcher_is_line_oriented() {
        let matcher = RegexMatcherBuilder::new()
            .line_terminator(Some(b'\n'))
            .build("a\\sb")
            .unwrap();
        let mut sink = FileMatches::new(10);
        let mut searcher = SearcherBuilder::new().line_number(true).build();
        searcher
            .search_slice(&matcher, b"a\nb\na b\n", &mut sink)
            .unwrap();
        assert_eq!(sink.lines, [(3, "a b".to_owned())]);
    }
}
