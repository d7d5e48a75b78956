//! Tools performed by the turn's caller instead of tool-executor.
//!
//! When the caller of a turn offers file access (an ACP client advertising
//! `fs.readTextFile` / `fs.writeTextFile`), `read_file`, `write_file` and
//! `edit_file` (which needs both) are sent to it as `ClientRequest` events
//! and answered with `ClientResponse` inputs. Delegating all three keeps them
//! consistent: an edit must apply to the text a read showed, unsaved buffer
//! included. The editor then reads its unsaved buffers and records the edit in
//! its undo history. The agent loop still owns the tool's semantics: the path
//! is checked against the session's workspace here (lexically: the client,
//! not us, touches the file), and the result text and diff are produced
//! here, so the model sees the same shape of result either way. A caller
//! offering a terminal runs `execute_command` the same way
//! ([`crate::client_shell`]).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use openheim_proto::agent_loop::v1::{
    ClientCapabilities, ClientRequest, CommandResult, ReadTextFile, WriteTextFile,
    client_request::Operation, client_response, turn_event::Event,
};
use openheim_proto::common::v1::{FileDiff, ToolCall};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::turn::{Outcome, Turn};

const READ: &str = "read_file";
const WRITE: &str = "write_file";
const EDIT: &str = "edit_file";
const SHELL: &str = crate::client_shell::SHELL;
/// Lines of context around each change in an edit's diff.
const DIFF_CONTEXT: usize = 3;

/// The caller's answer to one client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientReply {
    Text(String),
    Command(CommandResult),
    Error(String),
}

impl ClientReply {
    /// Converts the wire answer; an answer without a result is an error.
    pub fn from_wire(result: Option<client_response::Result>) -> Self {
        match result {
            Some(client_response::Result::Text(text)) => Self::Text(text),
            Some(client_response::Result::Command(result)) => Self::Command(result),
            Some(client_response::Result::Error(error)) => Self::Error(error),
            None => Self::Error("the client sent an empty answer".to_owned()),
        }
    }
}

/// Client requests a running turn has sent and not yet had answered; the
/// same pattern as the permission gate's `PendingQuestions`.
#[derive(Default)]
pub struct PendingClientReplies {
    waiting: Mutex<HashMap<String, oneshot::Sender<ClientReply>>>,
    next_id: AtomicU64,
}

impl PendingClientReplies {
    /// A fresh request id and the receiver of its answer. The receiver errs
    /// when the turn's input closes first.
    fn expect(&self, tool_call_id: &str) -> (String, oneshot::Receiver<ClientReply>) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("client-{tool_call_id}-{n}");
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(request_id.clone(), tx);
        }
        (request_id, rx)
    }

    /// Delivers an answer; false when nothing waits for `request_id`.
    pub fn answer(&self, request_id: &str, reply: ClientReply) -> bool {
        let sender = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(request_id));
        sender.is_some_and(|tx| tx.send(reply).is_ok())
    }

    /// Drops every waiting request (their tool calls fail).
    pub fn clear(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.clear();
        }
    }
}

/// Whether the caller performs `tool` itself.
pub fn delegated(capabilities: Option<&ClientCapabilities>, tool: &str) -> bool {
    let Some(caps) = capabilities else {
        return false;
    };
    match tool {
        READ => caps.fs_read,
        WRITE => caps.fs_write,
        EDIT => caps.fs_read && caps.fs_write,
        SHELL => caps.terminal,
        _ => false,
    }
}

/// Whether `call` reads an image file: the caller's `fs/read_text_file`
/// gives text only, so such a read stays with tool-executor, which returns
/// the image.
pub fn reads_image(call: &ToolCall) -> bool {
    call.name == READ
        && serde_json::from_str::<ReadArgs>(&call.arguments_json)
            .is_ok_and(|args| openheim_proto::image::has_image_extension(&args.path))
}

#[derive(Debug, Deserialize)]
struct ReadArgs {
    path: String,
    #[serde(default)]
    offset: Option<u32>,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Debug, Deserialize)]
struct EditArgs {
    path: String,
    old_string: String,
    new_string: String,
    #[serde(default)]
    replace_all: bool,
}

impl Turn {
    /// Runs a delegated tool (file tools, the shell) through the caller.
    pub(crate) async fn run_on_client(&self, call: &ToolCall) -> Outcome {
        let result = match call.name.as_str() {
            READ => self.client_read(call).await,
            WRITE => self.client_write(call).await,
            EDIT => self.client_edit(call).await,
            SHELL => self.client_command(call).await,
            other => Err(format!("{other} cannot run through the client")),
        };
        result.unwrap_or_else(Outcome::error)
    }

    async fn client_read(&self, call: &ToolCall) -> Result<Outcome, String> {
        let args: ReadArgs = parse(READ, &call.arguments_json)?;
        let path = resolve(&self.meta.work_dir, &args.path)?;
        let read = ReadTextFile {
            path: path.display().to_string(),
            line: args.offset.filter(|l| *l > 0),
            limit: args.limit,
        };
        let text = self
            .ask_client(call, Operation::ReadTextFile(read))
            .await
            .map_err(|e| format!("cannot read {:?}: {e}", args.path))?;
        let raw_output = serde_json::json!({
            "path": args.path,
            "bytes": text.len(),
            "first_line": args.offset.unwrap_or(1).max(1),
            "via": "client",
        });
        Ok(Outcome {
            text,
            is_error: false,
            raw_output_json: raw_output.to_string(),
            diffs: Vec::new(),
            images: Vec::new(),
        })
    }

    async fn client_write(&self, call: &ToolCall) -> Result<Outcome, String> {
        let args: WriteArgs = parse(WRITE, &call.arguments_json)?;
        let path = resolve(&self.meta.work_dir, &args.path)?;
        let absolute = path.display().to_string();
        // The old text makes the diff; a client that cannot read, or a file
        // that does not exist yet, gives a diff without one. A file absent
        // from a workspace this process sees is new: the client is not asked
        // to read it (clients report a missing file as an error of theirs).
        let readable = self.client_caps().is_some_and(|c| c.fs_read)
            && !is_new_file(&self.meta.work_dir, &path).await;
        let old_text = match readable {
            true => {
                let read = ReadTextFile {
                    path: absolute.clone(),
                    line: None,
                    limit: None,
                };
                self.ask_client(call, Operation::ReadTextFile(read))
                    .await
                    .ok()
            }
            false => None,
        };
        let write = WriteTextFile {
            path: absolute.clone(),
            content: args.content.clone(),
        };
        self.ask_client(call, Operation::WriteTextFile(write))
            .await
            .map_err(|e| format!("cannot write {:?}: {e}", args.path))?;
        let bytes = args.content.len();
        let raw_output = serde_json::json!({
            "path": args.path,
            "bytes": bytes,
            "created": old_text.is_none(),
            "via": "client",
        });
        Ok(Outcome {
            text: format!("Wrote {bytes} bytes to {}", args.path),
            is_error: false,
            raw_output_json: raw_output.to_string(),
            diffs: vec![FileDiff {
                path: absolute,
                old_text,
                new_text: args.content,
            }],
            images: Vec::new(),
        })
    }

    async fn client_edit(&self, call: &ToolCall) -> Result<Outcome, String> {
        let args: EditArgs = parse(EDIT, &call.arguments_json)?;
        let path = resolve(&self.meta.work_dir, &args.path)?;
        let absolute = path.display().to_string();
        let read = ReadTextFile {
            path: absolute.clone(),
            line: None,
            limit: None,
        };
        let old_text = self
            .ask_client(call, Operation::ReadTextFile(read))
            .await
            .map_err(|e| format!("cannot read {:?}: {e}", args.path))?;
        let (new_text, count) = replace(&args, &old_text)?;
        let write = WriteTextFile {
            path: absolute.clone(),
            content: new_text.clone(),
        };
        self.ask_client(call, Operation::WriteTextFile(write))
            .await
            .map_err(|e| format!("cannot write {:?}: {e}", args.path))?;
        let shown = path
            .strip_prefix(&self.meta.work_dir)
            .map_or_else(|_| args.path.clone(), |p| p.display().to_string());
        let diff = similar::TextDiff::from_lines(&old_text, &new_text)
            .unified_diff()
            .context_radius(DIFF_CONTEXT)
            .header(&format!("a/{shown}"), &format!("b/{shown}"))
            .to_string();
        let plural = if count == 1 { "" } else { "s" };
        let raw_output = serde_json::json!({"path": shown, "replacements": count, "via": "client"});
        Ok(Outcome {
            text: format!("Edited {shown}: {count} replacement{plural}\n{diff}"),
            is_error: false,
            raw_output_json: raw_output.to_string(),
            diffs: vec![FileDiff {
                path: absolute,
                old_text: Some(old_text),
                new_text,
            }],
            images: Vec::new(),
        })
    }

    /// Sends one client request and waits for its answer. Cancellation is
    /// handled by the caller of the tool run, which drops this future.
    pub(crate) async fn ask(&self, call: &ToolCall, operation: Operation) -> ClientReply {
        let (request_id, answer) = self.client_replies.expect(&call.id);
        let request = ClientRequest {
            request_id,
            tool_call_id: call.id.clone(),
            operation: Some(operation),
        };
        self.emit(Event::ClientRequest(request)).await;
        answer.await.unwrap_or_else(|_| {
            ClientReply::Error("the client went away without answering".to_owned())
        })
    }

    /// A file operation through the client: the text it answered with.
    async fn ask_client(&self, call: &ToolCall, operation: Operation) -> Result<String, String> {
        match self.ask(call, operation).await {
            ClientReply::Text(text) => Ok(text),
            ClientReply::Error(error) => Err(error),
            ClientReply::Command(_) => {
                Err("the client answered a file operation with a command result".to_owned())
            }
        }
    }
}

/// `edit_file`'s rule, as tool-executor applies it: `old_string` must occur
/// exactly once unless `replace_all`, so an edit never lands elsewhere.
fn replace(args: &EditArgs, text: &str) -> Result<(String, usize), String> {
    let refuse = |reason: String| Err(format!("invalid arguments for {EDIT}: {reason}"));
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

fn parse<T: serde::de::DeserializeOwned>(tool: &str, json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|e| format!("invalid arguments for {tool}: {e}"))
}

/// The absolute path of `user_path` (relative to `work_dir`, or absolute)
/// if it stays inside the workspace, judged lexically like tool-executor's
/// sandbox does before it looks at the disk.
pub fn resolve(work_dir: &str, user_path: &str) -> Result<PathBuf, String> {
    let outside = |reason: &str| format!("{user_path:?} is outside the workspace: {reason}");
    if user_path.contains('\0') {
        return Err(outside("paths containing NUL bytes are refused"));
    }
    let root = Path::new(work_dir);
    let path = Path::new(user_path);
    let relative = match path.is_absolute() {
        true => normalise(path, &outside)?
            .strip_prefix(normalise(root, &outside)?)
            .map(Path::to_path_buf)
            .map_err(|_| outside(&format!("absolute paths must lie inside {work_dir}")))?,
        false => path.to_path_buf(),
    };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in relative.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(outside("`..` climbs above the workspace root"));
                }
            }
            Component::Normal(name) => parts.push(name),
            Component::RootDir | Component::Prefix(_) => {
                return Err(outside("unexpected root component"));
            }
        }
    }
    Ok(parts
        .into_iter()
        .fold(root.to_path_buf(), |p, part| p.join(part)))
}

/// `path` with `.` and `..` removed; `..` may not climb above `/`.
fn normalise(path: &Path, outside: &dyn Fn(&str) -> String) -> Result<PathBuf, String> {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(outside("`..` climbs above the file system root"));
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// Whether `path` certainly does not exist yet: the workspace is visible
/// here and holds no such entry. Where it is not visible from this process
/// (a deployment whose agent-loop does not mount it), nothing is certain and
/// the client is asked.
async fn is_new_file(work_dir: &str, path: &Path) -> bool {
    let visible = tokio::fs::metadata(work_dir)
        .await
        .is_ok_and(|m| m.is_dir());
    visible && matches!(tokio::fs::try_exists(path).await, Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_workspace_only() {
        let ws = "/home/u/ws";
        assert_eq!(
            resolve(ws, "a/b.txt").unwrap(),
            Path::new("/home/u/ws/a/b.txt")
        );
        assert_eq!(resolve(ws, "./a/../c").unwrap(), Path::new("/home/u/ws/c"));
        assert_eq!(
            resolve(ws, "/home/u/ws/x").unwrap(),
            Path::new("/home/u/ws/x")
        );
        assert_eq!(
            resolve(ws, "/home/u/ws/../ws/y").unwrap(),
            Path::new("/home/u/ws/y")
        );
        for bad in ["../x", "a/../../x", "/etc/passwd", "/home/u/wsx/a", "a\0b"] {
            let err = resolve(ws, bad).unwrap_err();
            assert!(err.contains("is outside the workspace"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_offered_file_tools_are_delegated() {
        let caps = ClientCapabilities {
            fs_read: true,
            fs_write: false,
            terminal: true,
        };
        assert!(delegated(Some(&caps), "read_file"));
        assert!(!delegated(Some(&caps), "write_file"));
        assert!(delegated(Some(&caps), "execute_command"));
        assert!(!delegated(Some(&caps), "search"));
        assert!(
            !delegated(Some(&caps), "edit_file"),
            "edits need read and write"
        );
        assert!(!delegated(None, "read_file"));
    }

    #[test]
    fn edits_replace_one_exact_occurrence_unless_told_otherwise() {
        let edit = |old: &str, new: &str, all: bool| EditArgs {
            path: "f.txt".into(),
            old_string: old.into(),
            new_string: new.into(),
            replace_all: all,
        };
        assert_eq!(
            replace(&edit("b", "x", false), "abc").unwrap(),
            ("axc".into(), 1)
        );
        assert!(
            replace(&edit("a", "x", false), "aa")
                .unwrap_err()
                .contains("occurs 2 times")
        );
        assert_eq!(
            replace(&edit("a", "x", true), "aa").unwrap(),
            ("xx".into(), 2)
        );
        assert!(
            replace(&edit("z", "x", false), "aa")
                .unwrap_err()
                .contains("not found")
        );
        assert!(replace(&edit("", "x", false), "aa").is_err());
    }

    #[tokio::test]
    async fn replies_reach_the_waiting_call() {
        let pending = PendingClientReplies::default();
        let (id, rx) = pending.expect("c1");
        let (other, _rx2) = pending.expect("c1");
        assert_ne!(id, other);
        assert!(!pending.answer("nope", ClientReply::Text(String::new())));
        assert!(pending.answer(&id, ClientReply::Error("denied".into())));
        assert_eq!(rx.await.unwrap(), ClientReply::Error("denied".into()));
        let (_, rx) = pending.expect("c2");
        pending.clear();
        assert!(rx.await.is_err());
    }
}
