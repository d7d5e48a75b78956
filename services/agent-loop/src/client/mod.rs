//! Tools performed by the turn's caller instead of tool-executor.
//!
//! When the caller of a turn offers file access (an ACP client advertising
//! `fs.readTextFile` / `fs.writeTextFile`), `read_file`, `write_file` and
//! `edit_file` (which needs both) are sent to it as `ClientRequest` events
//! and answered with `ClientResponse` inputs ([`files`]); a caller offering a
//! terminal runs `execute_command` the same way ([`shell`]). Delegating all
//! three file tools keeps them consistent: an edit must apply to the text a
//! read showed, unsaved buffer included, and the editor records the edit in
//! its undo history.
//!
//! The tools' rules stay the ones tool-executor applies, from the shared
//! `openheim-tool-rules` (arguments, the workspace check, the edit rule, the
//! shell timeout and result texts), so the model sees the same results
//! either way. [`ClientDelegation`] is owned by the turn; the turn hands it a
//! [`Scope`] (workspace, shell settings, where events go) per call.

mod files;
mod shell;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openheim_proto::agent_loop::v1::{
    ClientCapabilities, ClientRequest, CommandResult, client_request::Operation, client_response,
    turn_event::Event,
};
use openheim_proto::common::v1::{Elicitation, ElicitationAnswer, ToolCall};
use openheim_tool_rules::args::{EDIT_FILE, EXECUTE_COMMAND, READ_FILE, ReadArgs, WRITE_FILE};
use openheim_tool_rules::edit::EditRefused;
use openheim_tool_rules::path::Outside;
use tokio::sync::oneshot;

use crate::events::EventSink;
use crate::outcome::Outcome;

/// The caller's answer to one client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientReply {
    Text(String),
    Command(CommandResult),
    Elicitation(ElicitationAnswer),
    Error(String),
}

impl ClientReply {
    /// Converts the wire answer; an answer without a result is an error.
    pub fn from_wire(result: Option<client_response::Result>) -> Self {
        match result {
            Some(client_response::Result::Text(text)) => Self::Text(text),
            Some(client_response::Result::Command(result)) => Self::Command(result),
            Some(client_response::Result::Error(error)) => Self::Error(error),
            Some(client_response::Result::Elicitation(answer)) => Self::Elicitation(answer),
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

/// What a turn's caller performs itself, and the answers it owes.
pub(crate) struct ClientDelegation {
    /// What the caller offered (and the configuration took up); `None` =
    /// nothing.
    caps: Option<ClientCapabilities>,
    replies: Arc<PendingClientReplies>,
}

/// What one delegated call needs from its turn.
pub(crate) struct Scope<'a> {
    /// The session's workspace.
    pub work_dir: &'a str,
    pub allow_shell: bool,
    /// Default timeout of a shell command.
    pub shell_timeout: Duration,
    /// The output cap the caller is asked to keep.
    pub max_result_bytes: usize,
    pub sink: EventSink<'a>,
}

/// Why a delegated call failed; the text is the tool's error result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientToolError {
    #[error("invalid arguments for {tool}: {reason}")]
    InvalidArguments {
        tool: &'static str,
        reason: serde_json::Error,
    },

    #[error(transparent)]
    Outside(#[from] Outside),

    #[error("invalid arguments for {EDIT_FILE}: {0}")]
    Edit(#[from] EditRefused),

    /// The client could not do a file operation.
    #[error("cannot {action} {path:?}: {reason}")]
    File {
        action: &'static str,
        path: String,
        reason: Refused,
    },

    #[error("{}", openheim_tool_rules::shell::SHELL_DISABLED)]
    ShellDisabled,

    #[error("the client did not report how the command ended within {secs} s")]
    NoCommandAnswer { secs: u64 },

    #[error("the command could not be run: {0}")]
    Command(Refused),

    #[error("{0} cannot run through the client")]
    NotDelegable(String),
}

/// Why the client did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// Its own error message.
    #[error("{0}")]
    Client(String),
    /// It answered with the result of another kind of request.
    #[error("the client answered {asked} with {answered}")]
    WrongAnswer {
        asked: &'static str,
        answered: &'static str,
    },
}

impl ClientDelegation {
    pub(crate) fn new(
        caps: Option<ClientCapabilities>,
        replies: Arc<PendingClientReplies>,
    ) -> Self {
        Self { caps, replies }
    }

    /// Whether the caller performs `call` itself. An image read stays with
    /// tool-executor, which returns the image: the caller's
    /// `fs/read_text_file` gives text only.
    pub(crate) fn takes(&self, call: &ToolCall) -> bool {
        delegated(self.caps.as_ref(), &call.name) && !reads_image(call)
    }

    /// Whether the caller answers MCP servers' elicitation requests.
    pub(crate) fn elicits(&self) -> bool {
        self.caps.is_some_and(|c| c.elicitation)
    }

    /// Puts an MCP server's elicitation request, made during `call`, to the
    /// caller; a failed or mismatched answer declines it.
    pub(crate) async fn elicit(
        &self,
        call: &ToolCall,
        sink: EventSink<'_>,
        elicitation: Elicitation,
    ) -> ElicitationAnswer {
        let asker = Asker {
            replies: &self.replies,
            sink,
            call,
        };
        match asker.ask(Operation::Elicit(elicitation)).await {
            ClientReply::Elicitation(answer) => answer,
            other => {
                tracing::debug!(?other, "an elicitation was not answered; declined");
                ElicitationAnswer {
                    action: "decline".to_owned(),
                    content_json: String::new(),
                }
            }
        }
    }

    /// Runs a delegated tool (file tools, the shell) through the caller.
    pub(crate) async fn run(&self, call: &ToolCall, scope: &Scope<'_>) -> Outcome {
        let asker = Asker {
            replies: &self.replies,
            sink: scope.sink,
            call,
        };
        let result = match call.name.as_str() {
            READ_FILE => files::read(&asker, scope).await,
            WRITE_FILE => {
                let can_read = self.caps.as_ref().is_some_and(|c| c.fs_read);
                files::write(&asker, scope, can_read).await
            }
            EDIT_FILE => files::edit(&asker, scope).await,
            EXECUTE_COMMAND => shell::run(&asker, scope).await,
            other => Err(ClientToolError::NotDelegable(other.to_owned())),
        };
        result.unwrap_or_else(|e| Outcome::error(e.to_string()))
    }
}

/// Sends the requests of one call to the caller.
struct Asker<'a> {
    replies: &'a PendingClientReplies,
    sink: EventSink<'a>,
    call: &'a ToolCall,
}

impl Asker<'_> {
    /// Sends one client request and waits for its answer. Cancellation is
    /// handled by the caller of the tool run, which drops this future.
    async fn ask(&self, operation: Operation) -> ClientReply {
        let (request_id, answer) = self.replies.expect(&self.call.id);
        let request = ClientRequest {
            request_id,
            tool_call_id: self.call.id.clone(),
            operation: Some(operation),
        };
        self.sink.emit(Event::ClientRequest(request)).await;
        answer.await.unwrap_or_else(|_| {
            ClientReply::Error("the client went away without answering".to_owned())
        })
    }

    /// A file operation through the client: the text it answered with.
    async fn ask_text(&self, operation: Operation) -> Result<String, Refused> {
        match self.ask(operation).await {
            ClientReply::Text(text) => Ok(text),
            ClientReply::Error(error) => Err(Refused::Client(error)),
            ClientReply::Command(_) => Err(Refused::WrongAnswer {
                asked: "a file operation",
                answered: "a command result",
            }),
            ClientReply::Elicitation(_) => Err(Refused::WrongAnswer {
                asked: "a file operation",
                answered: "an elicitation answer",
            }),
        }
    }
}

/// Whether the caller performs `tool` itself.
fn delegated(capabilities: Option<&ClientCapabilities>, tool: &str) -> bool {
    let Some(caps) = capabilities else {
        return false;
    };
    match tool {
        READ_FILE => caps.fs_read,
        WRITE_FILE => caps.fs_write,
        EDIT_FILE => caps.fs_read && caps.fs_write,
        EXECUTE_COMMAND => caps.terminal,
        _ => false,
    }
}

/// Whether `call` reads an image file.
fn reads_image(call: &ToolCall) -> bool {
    call.name == READ_FILE
        && serde_json::from_str::<ReadArgs>(&call.arguments_json)
            .is_ok_and(|args| openheim_proto::image::has_image_extension(&args.path))
}

/// The arguments of `tool`.
fn parse<T: serde::de::DeserializeOwned>(
    tool: &'static str,
    json: &str,
) -> Result<T, ClientToolError> {
    serde_json::from_str(json).map_err(|reason| ClientToolError::InvalidArguments { tool, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_offered_file_tools_are_delegated() {
        let caps = ClientCapabilities {
            fs_read: true,
            fs_write: false,
            terminal: true,
            elicitation: false,
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
        let delegation = ClientDelegation::new(Some(caps), Arc::default());
        let read = |path: &str| ToolCall {
            name: "read_file".into(),
            arguments_json: serde_json::json!({ "path": path }).to_string(),
            ..ToolCall::default()
        };
        assert!(delegation.takes(&read("a.txt")));
        assert!(
            !delegation.takes(&read("a.png")),
            "images stay with tool-executor"
        );
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
