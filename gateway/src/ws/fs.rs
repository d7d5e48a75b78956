//! The `/ws` fs channel: file operations in the workspace, executed by
//! tool-executor, and live change notifications.
//!
//! A request is `{"action", "id"?, "path"?, …}`; its reply carries the same
//! `id`. Requests of one socket run in order on one task (a client that
//! sends no ids can rely on the order of replies); watches run on tasks of
//! their own and stop with `unwatch` or the socket. Every failure is an
//! `{"type":"error","id"?,"code","message"}` reply, never a closed socket.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use openheim_proto::GrpcChannel;
use openheim_proto::tool_executor::v1 as te;
use openheim_proto::tool_executor::v1::tool_executor_client::ToolExecutorClient;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::backends::Backends;
use crate::error::{ApiError, Backend};
use crate::ws::socket::{Closed, Outbox};

/// Requests queued per socket before its reader waits.
const REQUEST_QUEUE: usize = 32;
/// Watches one socket may hold.
pub const MAX_WATCHES: usize = 32;

/// One fs request, as sent by the client.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FsRequest {
    pub action: String,
    pub id: Option<Value>,
    pub path: Option<String>,
    pub recursive: Option<bool>,
    pub content: Option<String>,
    /// `"utf-8"` (default) or `"base64"`, for `write`.
    pub encoding: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `read`: bytes to return at most (the executor caps it).
    pub max_bytes: Option<u64>,
    /// `list`: entries to return at most (the executor caps it).
    pub max_entries: Option<u32>,
}

/// The fs side of one socket: a queue into its worker task.
pub struct FsChannel {
    requests: mpsc::Sender<FsRequest>,
    worker: JoinHandle<()>,
}

impl Drop for FsChannel {
    fn drop(&mut self) {
        // The worker's watches are aborted with it (they abort on drop).
        self.worker.abort();
    }
}

impl FsChannel {
    /// Starts the socket's worker; replies go to `outbox`.
    /// `workspace` is the user's, or why they have none (every request
    /// then fails with it).
    pub fn start(
        backends: &Backends,
        workspace: Result<te::Workspace, String>,
        outbox: Outbox,
    ) -> Self {
        let (requests, rx) = mpsc::channel(REQUEST_QUEUE);
        let worker = Worker {
            executor: backends.tool_executor().ok(),
            workspace,
            outbox,
            watches: HashMap::new(),
        };
        Self {
            requests,
            worker: tokio::spawn(worker.run(rx)),
        }
    }

    /// Queues a request (`data` of an fs envelope).
    pub async fn submit(&self, data: &str) -> Result<(), Closed> {
        let request = match serde_json::from_str::<FsRequest>(data) {
            Ok(request) => request,
            Err(error) => FsRequest {
                action: String::new(),
                id: id_of(data),
                // Reported by the worker, in order with other replies.
                content: Some(format!("invalid fs request: {error}")),
                ..FsRequest::default()
            },
        };
        self.requests.send(request).await.map_err(|_| Closed)
    }
}

/// The `id` of a request that did not parse, when there is one to echo.
fn id_of(data: &str) -> Option<Value> {
    serde_json::from_str::<Value>(data)
        .ok()?
        .get_mut("id")
        .map(Value::take)
}

/// A frame of the fs channel.
pub fn frame(reply: Value) -> String {
    json!({ "channel": "fs", "data": reply }).to_string()
}

/// An error reply.
pub fn error_reply(id: Option<&Value>, code: &str, message: &str) -> Value {
    let mut reply = json!({ "type": "error", "code": code, "message": message });
    if let Some(id) = id {
        reply["id"] = id.clone();
    }
    reply
}

/// Aborts a watch's task when dropped.
struct WatchTask(JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Worker {
    /// `None`: this gateway has no tool-executor; every request fails.
    executor: Option<Executor>,
    workspace: Result<te::Workspace, String>,
    outbox: Outbox,
    watches: HashMap<String, WatchTask>,
}

impl Worker {
    async fn run(mut self, mut requests: mpsc::Receiver<FsRequest>) {
        while let Some(request) = requests.recv().await {
            let reply = match self.handle(&request).await {
                Ok(mut reply) => {
                    if let Some(id) = &request.id {
                        reply["id"] = id.clone();
                    }
                    reply
                }
                Err(error) => error_reply(request.id.as_ref(), error.code(), &error.to_string()),
            };
            if self.outbox.send_text(frame(reply)).await.is_err() {
                return;
            }
        }
    }

    async fn handle(&mut self, r: &FsRequest) -> Result<Value, ApiError> {
        let executor = self
            .executor
            .clone()
            .ok_or(ApiError::NotConfigured(Backend::ToolExecutor))?;
        let ws = Some(self.workspace.clone().map_err(ApiError::Forbidden)?);
        match r.action.as_str() {
            "list" => list(executor, ws, r).await,
            "read" => read(executor, ws, r).await,
            "write" => write(executor, ws, r).await,
            "mkdir" => mkdir(executor, ws, r).await,
            "delete" => delete(executor, ws, r).await,
            "rename" => rename(executor, ws, r).await,
            "watch" => self.watch(executor, r).await,
            "unwatch" => {
                let key = watch_key(r.path.as_deref().unwrap_or_default());
                match self.watches.remove(&key) {
                    Some(_) => Ok(json!({ "type": "unwatched", "path": key })),
                    None => Err(ApiError::NotFound(format!("not watching {key:?}"))),
                }
            }
            // A request that did not parse carries its error in `content`.
            "" => Err(ApiError::BadRequest(
                r.content
                    .clone()
                    .unwrap_or_else(|| "missing \"action\"".to_owned()),
            )),
            other => Err(ApiError::BadRequest(format!(
                "unknown action {other:?} (list, read, write, mkdir, delete, rename, watch, unwatch)"
            ))),
        }
    }

    /// Starts (or restarts) a watch; it is running when the reply is sent,
    /// so every later change is reported.
    async fn watch(&mut self, mut executor: Executor, r: &FsRequest) -> Result<Value, ApiError> {
        let key = watch_key(r.path.as_deref().unwrap_or_default());
        if !self.watches.contains_key(&key) && self.watches.len() >= MAX_WATCHES {
            return Err(ApiError::Conflict(format!(
                "at most {MAX_WATCHES} watches per connection"
            )));
        }
        let request = te::WatchRequest {
            workspace: Some(self.workspace.clone().map_err(ApiError::Forbidden)?),
            path: key.clone(),
            recursive: r.recursive.unwrap_or(true),
        };
        let stream = executor.watch(request).await.map_err(failed)?.into_inner();
        let task = tokio::spawn(forward_events(stream, key.clone(), self.outbox.clone()));
        self.watches.insert(key.clone(), WatchTask(task));
        Ok(json!({ "type": "watching", "path": key }))
    }
}

type Executor = ToolExecutorClient<GrpcChannel>;
type Ws = Option<te::Workspace>;

fn failed(status: tonic::Status) -> ApiError {
    ApiError::from_status(Backend::ToolExecutor, &status)
}

async fn list(mut executor: Executor, workspace: Ws, r: &FsRequest) -> Result<Value, ApiError> {
    let path = r.path.clone().unwrap_or_default();
    let request = te::ListDirRequest {
        workspace,
        path: path.clone(),
        recursive: r.recursive.unwrap_or(false),
        max_entries: r.max_entries.unwrap_or(0),
    };
    let listing = executor.list_dir(request).await.map_err(failed)?;
    Ok(file_list(&path, &listing.into_inner()))
}

async fn read(mut executor: Executor, workspace: Ws, r: &FsRequest) -> Result<Value, ApiError> {
    let path = required(&r.path, "path")?;
    let request = te::ReadFileRequest {
        workspace,
        path: path.clone(),
        max_bytes: r.max_bytes.unwrap_or(0),
    };
    let file = executor.read_file(request).await.map_err(failed)?;
    Ok(file_content(&path, file.into_inner()))
}

async fn write(mut executor: Executor, workspace: Ws, r: &FsRequest) -> Result<Value, ApiError> {
    let request = te::WriteFileRequest {
        workspace,
        path: required(&r.path, "path")?,
        content: write_content(r)?,
    };
    let done = executor.write_file(request).await.map_err(failed)?;
    Ok(json!({ "type": "write_success", "path": done.into_inner().path }))
}

async fn mkdir(mut executor: Executor, workspace: Ws, r: &FsRequest) -> Result<Value, ApiError> {
    let request = te::MakeDirRequest {
        workspace,
        path: required(&r.path, "path")?,
    };
    let done = executor.make_dir(request).await.map_err(failed)?;
    Ok(json!({ "type": "mkdir_success", "path": done.into_inner().path }))
}

async fn delete(mut executor: Executor, workspace: Ws, r: &FsRequest) -> Result<Value, ApiError> {
    let request = te::DeleteRequest {
        workspace,
        path: required(&r.path, "path")?,
        recursive: r.recursive.unwrap_or(false),
    };
    let done = executor.delete(request).await.map_err(failed)?;
    Ok(json!({ "type": "delete_success", "path": done.into_inner().path }))
}

async fn rename(mut executor: Executor, workspace: Ws, r: &FsRequest) -> Result<Value, ApiError> {
    let from = required(&r.from, "from")?;
    let request = te::RenameRequest {
        workspace,
        from: from.clone(),
        to: required(&r.to, "to")?,
    };
    let done = executor.rename(request).await.map_err(failed)?;
    Ok(json!({ "type": "rename_success", "from": from, "to": done.into_inner().path }))
}

/// Relays one watch's events until it ends; an end the client did not ask
/// for is reported as an error without id.
async fn forward_events(mut stream: tonic::Streaming<te::FsEvent>, path: String, outbox: Outbox) {
    let ended = loop {
        match stream.next().await {
            Some(Ok(event)) => {
                let reply = json!({ "type": "fs_event", "kind": event.kind, "paths": event.paths });
                if outbox.send_text(frame(reply)).await.is_err() {
                    return;
                }
            }
            Some(Err(status)) => break status.message().to_owned(),
            None => break "the watcher stopped".to_owned(),
        }
    };
    let message = format!("watch of {path:?} ended: {ended}");
    let _ = outbox
        .send_text(frame(error_reply(None, "watch_ended", &message)))
        .await;
}

/// Watches are keyed by their path without `./` or trailing `/`.
fn watch_key(path: &str) -> String {
    let path = path.trim().trim_end_matches('/');
    let path = path.strip_prefix("./").unwrap_or(path);
    if path == "." {
        String::new()
    } else {
        path.to_owned()
    }
}

fn required(value: &Option<String>, name: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        _ => Err(ApiError::BadRequest(format!("missing \"{name}\""))),
    }
}

fn write_content(r: &FsRequest) -> Result<Vec<u8>, ApiError> {
    let content = r.content.as_deref().unwrap_or_default();
    match r.encoding.as_deref() {
        None | Some("utf-8" | "utf8") => Ok(content.as_bytes().to_vec()),
        Some("base64") => BASE64
            .decode(content)
            .map_err(|e| ApiError::BadRequest(format!("content is not valid base64: {e}"))),
        Some(other) => Err(ApiError::BadRequest(format!(
            "unknown encoding {other:?} (utf-8, base64)"
        ))),
    }
}

fn file_list(path: &str, listing: &te::ListDirResponse) -> Value {
    let entries: Vec<Value> = listing
        .entries
        .iter()
        .map(|e| {
            json!({
                "path": e.path,
                "name": e.name,
                "is_dir": e.is_dir,
                "size": e.size,
                "modified": e.modified_ms,
            })
        })
        .collect();
    json!({ "type": "file_list", "path": path, "entries": entries, "truncated": listing.truncated })
}

/// Text is sent as text; binary files (and bytes that are not UTF-8) as
/// base64, flagged, never altered.
fn file_content(path: &str, file: te::ReadFileResponse) -> Value {
    let text = if file.is_binary {
        None
    } else {
        utf8_text(&file.content, file.truncated)
    };
    let binary = text.is_none();
    let (content, encoding) = match text {
        Some(text) => (text, "utf-8"),
        None => (BASE64.encode(&file.content), "base64"),
    };
    json!({
        "type": "file_content",
        "path": path,
        "content": content,
        "encoding": encoding,
        "is_binary": binary,
        "truncated": file.truncated,
        "size": file.size,
    })
}

/// The bytes as text; a read cut inside a character loses that partial
/// character rather than being reported as binary.
fn utf8_text(bytes: &[u8], truncated: bool) -> Option<String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text.to_owned()),
        Err(e) if truncated && e.error_len().is_none() => {
            Some(String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned())
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_broken_text_are_sent_as_base64() {
        let read = |content: &[u8], is_binary, truncated| {
            file_content(
                "f",
                te::ReadFileResponse {
                    content: content.to_vec(),
                    is_binary,
                    truncated,
                    size: 99,
                },
            )
        };
        let text = read("héllo".as_bytes(), false, false);
        assert_eq!(
            (text["content"].as_str(), text["encoding"].as_str()),
            (Some("héllo"), Some("utf-8"))
        );
        let binary = read(b"a\0\xff", true, false);
        assert_eq!(binary["encoding"], "base64");
        assert_eq!(
            BASE64.decode(binary["content"].as_str().unwrap()).unwrap(),
            b"a\0\xff"
        );
        assert_eq!(binary["is_binary"], true);
        let latin1 = read(b"caf\xe9!", false, false);
        assert_eq!(latin1["is_binary"], true);
        // "é" is two bytes; a read that stops after the first is still text.
        let cut = read(&"café".as_bytes()[..4], false, true);
        assert_eq!(
            (cut["content"].as_str(), cut["is_binary"].as_bool()),
            (Some("caf"), Some(false))
        );
    }

    #[test]
    fn watch_keys_and_required_fields() {
        assert_eq!(watch_key("./src/"), "src");
        assert_eq!(watch_key("."), "");
        assert_eq!(watch_key(""), "");
        assert!(required(&Some(String::new()), "path").is_err());
        let bad = FsRequest {
            encoding: Some("rot13".into()),
            ..FsRequest::default()
        };
        assert_eq!(write_content(&bad).unwrap_err().code(), "invalid_request");
        assert_eq!(id_of(r#"{"id": 5, "action": 3}"#), Some(json!(5)));
    }

    #[test]
    fn errors_echo_the_id() {
        let reply = error_reply(Some(&json!("r1")), "not_found", "gone");
        assert_eq!(
            reply,
            json!({"type": "error", "id": "r1", "code": "not_found", "message": "gone"})
        );
        assert!(error_reply(None, "x", "y").get("id").is_none());
    }
}
