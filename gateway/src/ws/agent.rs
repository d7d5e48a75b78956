//! An ACP connection carried by a WebSocket: `/acp` (one JSON-RPC message
//! per text frame) and the `/ws` agent channel (one message per envelope).
//!
//! The socket's reader hands each incoming message to
//! [`AgentChannel::forward`]; `openheim_acp::serve_acp` runs the connection
//! on its own task over a `Lines` transport made of a bounded channel (in)
//! and the socket's outbox (out). Dropping the [`AgentChannel`] ends the
//! incoming stream: the ACP connection then cancels its running turns and
//! waits (bounded) for them to record the cancellation.
//!
//! The channel also keeps count of the `session/prompt` requests still
//! unanswered, so a draining server can close idle sockets first.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use openheim_acp::AcpOptions;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::backends::Backends;
use crate::drain::Drain;
use crate::ws::socket::{Closed, Outbox};

/// Incoming messages buffered for the ACP connection before the socket's
/// reader waits.
const INCOMING_QUEUE: usize = 64;

/// How outgoing JSON-RPC messages are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The message is the frame (`/acp`).
    Bare,
    /// `{"channel":"agent","data":<message>}` (`/ws`).
    Envelope,
}

impl Framing {
    fn frame(self, message: String) -> String {
        match self {
            Self::Bare => message,
            // The SDK writes one JSON value per message, so it can be
            // embedded as is.
            Self::Envelope => format!("{{\"channel\":\"agent\",\"data\":{message}}}"),
        }
    }
}

/// One socket's ACP connection.
pub struct AgentChannel {
    incoming: mpsc::Sender<String>,
    prompts: PromptCount,
}

impl AgentChannel {
    /// Starts an ACP connection whose output goes to `outbox`.
    pub fn start(
        backends: &Backends,
        options: AcpOptions,
        drain: &Drain,
        outbox: Outbox,
        framing: Framing,
    ) -> Self {
        let (incoming, rx) = mpsc::channel::<String>(INCOMING_QUEUE);
        let prompts = PromptCount::default();
        let sink = outgoing(outbox, prompts.clone(), framing);
        let stream = ReceiverStream::new(rx).map(Ok::<_, io::Error>);
        // Gated like stdio: messages pipelined behind `initialize` wait for its answer.
        let transport = openheim_acp::lines(Box::pin(sink), Box::pin(stream));
        let agent_loop = backends.agent_loop();
        drain.spawn(async move {
            if let Err(error) = openheim_acp::serve_acp(agent_loop, options, transport).await {
                tracing::debug!(%error, "ACP connection ended");
            }
        });
        Self { incoming, prompts }
    }

    /// Hands one JSON-RPC message from the client to the connection; waits
    /// while the connection is behind.
    pub async fn forward(&self, message: String) -> Result<(), Closed> {
        self.prompts.observe_incoming(&message);
        self.incoming.send(message).await.map_err(|_| Closed)
    }

    /// Unanswered `session/prompt` requests, observable.
    pub fn prompts(&self) -> watch::Receiver<usize> {
        self.prompts.count.subscribe()
    }
}

/// The connection's output: every message framed into `outbox`. A prompt
/// counts as answered once its answer is queued: a draining socket closes
/// when no prompt is open, and its close frame must follow the answer, not
/// overtake it.
fn outgoing(
    outbox: Outbox,
    prompts: PromptCount,
    framing: Framing,
) -> impl futures::Sink<String, Error = io::Error> + Send + 'static {
    futures::sink::unfold(outbox, move |outbox, message: String| {
        let prompts = prompts.clone();
        async move {
            let answer = PromptCount::answer_to(&message);
            let sent = outbox.send_text(framing.frame(message)).await;
            if let Some(id) = answer {
                prompts.answered(&id);
            }
            sent.map_err(|Closed| io::Error::new(io::ErrorKind::BrokenPipe, "socket closed"))?;
            Ok::<_, io::Error>(outbox)
        }
    })
}

/// The ids of `session/prompt` requests without a response yet.
#[derive(Clone)]
struct PromptCount {
    open: Arc<Mutex<HashSet<String>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Default for PromptCount {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            count: Arc::new(watch::channel(0).0),
        }
    }
}

/// The two fields that tell a prompt request and its response apart; the
/// rest of the message is skipped, not built.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    method: Option<&'a str>,
    #[serde(default)]
    id: Option<Value>,
}

impl PromptCount {
    fn observe_incoming(&self, message: &str) {
        if let Ok(Probe {
            method: Some("session/prompt"),
            id: Some(id),
        }) = serde_json::from_str(message)
        {
            self.update(|open| open.insert(id.to_string()));
        }
    }

    /// The id `message` answers, if it is a response (it may answer a
    /// prompt).
    fn answer_to(message: &str) -> Option<String> {
        match serde_json::from_str(message) {
            Ok(Probe {
                method: None,
                id: Some(id),
            }) => Some(id.to_string()),
            _ => None,
        }
    }

    fn answered(&self, id: &str) {
        self.update(|open| open.remove(id));
    }

    fn update(&self, change: impl FnOnce(&mut HashSet<String>) -> bool) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if change(&mut open) {
            self.count.send_replace(open.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_counted_until_answered() {
        let count = PromptCount::default();
        let rx = count.count.subscribe();
        count.observe_incoming(r#"{"jsonrpc":"2.0","id":7,"method":"session/prompt","params":{}}"#);
        count.observe_incoming(r#"{"jsonrpc":"2.0","id":"x","method":"session/prompt"}"#);
        count.observe_incoming(r#"{"jsonrpc":"2.0","id":8,"method":"session/new"}"#);
        count.observe_incoming("not json");
        assert_eq!(*rx.borrow(), 2);
        // A request from the agent with the same id is not an answer.
        let request = r#"{"jsonrpc":"2.0","id":7,"method":"session/request_permission"}"#;
        assert_eq!(PromptCount::answer_to(request), None);
        assert_eq!(*rx.borrow(), 2);
        for answer in [
            r#"{"jsonrpc":"2.0","id":7,"result":{"stopReason":"end_turn"}}"#,
            r#"{"jsonrpc":"2.0","id":"x","error":{"code":-1}}"#,
        ] {
            count.answered(&PromptCount::answer_to(answer).unwrap());
        }
        assert_eq!(*rx.borrow(), 0);
    }

    #[tokio::test]
    async fn a_prompt_stays_open_until_its_answer_is_queued() {
        use futures::SinkExt;

        let (outbox, mut queue) = Outbox::detached(1);
        let prompts = PromptCount::default();
        prompts.observe_incoming(r#"{"jsonrpc":"2.0","id":7,"method":"session/prompt"}"#);
        let open = prompts.count.subscribe();
        let mut sink = std::pin::pin!(outgoing(outbox, prompts, Framing::Bare));
        let update = r#"{"jsonrpc":"2.0","method":"session/update","params":{}}"#;
        sink.send(update.to_owned()).await.unwrap();
        // The queue is full: the answer waits for room, the prompt stays open.
        let answer = r#"{"jsonrpc":"2.0","id":7,"result":{"stopReason":"end_turn"}}"#;
        let mut sending = std::pin::pin!(sink.send(answer.to_owned()));
        assert!(futures::poll!(sending.as_mut()).is_pending());
        assert_eq!(*open.borrow(), 1);
        assert_eq!(queue.try_next().as_deref(), Some(update));
        sending.await.unwrap();
        assert_eq!(*open.borrow(), 0);
        assert_eq!(queue.try_next().as_deref(), Some(answer));
    }

    #[test]
    fn envelopes_embed_the_message() {
        let framed = Framing::Envelope.frame(r#"{"id":1}"#.to_owned());
        let value: Value = serde_json::from_str(&framed).unwrap();
        assert_eq!(value["channel"], "agent");
        assert_eq!(value["data"]["id"], 1);
        assert_eq!(Framing::Bare.frame("x".to_owned()), "x");
    }
}
