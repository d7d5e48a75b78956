//! `read_file`, `write_file` and `edit_file` through the caller (ACP
//! `fs/*`). The path is checked against the session's workspace here,
//! lexically (the client, not us, touches the file), and the result text and
//! diff are produced here, by tool-executor's rules.

use std::path::Path;

use openheim_proto::agent_loop::v1::{ReadTextFile, WriteTextFile, client_request::Operation};
use openheim_proto::common::v1::FileDiff;
use openheim_tool_rules::args::{EDIT_FILE, EditArgs, READ_FILE, ReadArgs, WRITE_FILE, WriteArgs};
use openheim_tool_rules::{edit, path};

use super::{Asker, ClientToolError, Scope, parse};
use crate::outcome::Outcome;

pub(super) async fn read(asker: &Asker<'_>, scope: &Scope<'_>) -> Result<Outcome, ClientToolError> {
    let args: ReadArgs = parse(READ_FILE, &asker.call.arguments_json)?;
    let path = path::join_below(Path::new(scope.work_dir), &args.path)?;
    let to_line = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let read = ReadTextFile {
        path: path.display().to_string(),
        line: args.offset.filter(|l| *l > 0).map(to_line),
        limit: args.limit.map(to_line),
    };
    let text = asker
        .ask_text(Operation::ReadTextFile(read))
        .await
        .map_err(|reason| failed("read", &args.path, reason))?;
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

/// `can_read`: whether the caller offers reads, for the old text of the
/// diff.
pub(super) async fn write(
    asker: &Asker<'_>,
    scope: &Scope<'_>,
    can_read: bool,
) -> Result<Outcome, ClientToolError> {
    let args: WriteArgs = parse(WRITE_FILE, &asker.call.arguments_json)?;
    let path = path::join_below(Path::new(scope.work_dir), &args.path)?;
    let absolute = path.display().to_string();
    // The old text makes the diff; a client that cannot read, or a file
    // that does not exist yet, gives a diff without one. A file absent
    // from a workspace this process sees is new: the client is not asked
    // to read it (clients report a missing file as an error of theirs).
    let readable = can_read && !is_new_file(scope.work_dir, &path).await;
    let old_text = match readable {
        true => asker.ask_text(read_whole(&absolute)).await.ok(),
        false => None,
    };
    let write = WriteTextFile {
        path: absolute.clone(),
        content: args.content.clone(),
    };
    asker
        .ask_text(Operation::WriteTextFile(write))
        .await
        .map_err(|reason| failed("write", &args.path, reason))?;
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

pub(super) async fn edit(asker: &Asker<'_>, scope: &Scope<'_>) -> Result<Outcome, ClientToolError> {
    let args: EditArgs = parse(EDIT_FILE, &asker.call.arguments_json)?;
    let root = Path::new(scope.work_dir);
    let path = path::join_below(root, &args.path)?;
    let absolute = path.display().to_string();
    let old_text = asker
        .ask_text(read_whole(&absolute))
        .await
        .map_err(|reason| failed("read", &args.path, reason))?;
    let (new_text, count) = args.apply(&old_text)?;
    let write = WriteTextFile {
        path: absolute.clone(),
        content: new_text.clone(),
    };
    asker
        .ask_text(Operation::WriteTextFile(write))
        .await
        .map_err(|reason| failed("write", &args.path, reason))?;
    let shown = path
        .strip_prefix(root)
        .map_or_else(|_| args.path.clone(), |p| p.display().to_string());
    let raw_output = serde_json::json!({"path": shown, "replacements": count, "via": "client"});
    Ok(Outcome {
        text: edit::result_text(&shown, count, &old_text, &new_text),
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

/// A request for the whole text of `absolute`.
fn read_whole(absolute: &str) -> Operation {
    Operation::ReadTextFile(ReadTextFile {
        path: absolute.to_owned(),
        line: None,
        limit: None,
    })
}

fn failed(action: &'static str, path: &str, reason: super::Refused) -> ClientToolError {
    ClientToolError::File {
        action,
        path: path.to_owned(),
        reason,
    }
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
