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
        let outgoing_prompts = prompts.clone();
        let sink = futures::sink::unfold(outbox, move |outbox, message: String| {
            outgoing_prompts.observe_outgoing(&message);
            async move {
                outbox
                    .send_text(framing.frame(message))
                    .await
                    .map_err(|Closed| io::Error::new(io::ErrorKind::BrokenPipe, "socket closed"))?;
                Ok::<_, io::Error>(outbox)
            }
        });
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

    fn observe_outgoing(&self, message: &str) {
        if let Ok(Probe {
            method: None,
            id: Some(id),
        }) = serde_json::from_str(message)
        {
            self.update(|open| open.remove(&id.to_string()));
        }
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
        count.observe_outgoing(r#"{"jsonrpc":"2.0","id":7,"method":"session/request_permission"}"#);
        assert_eq!(*rx.borrow(), 2);
        count.observe_outgoing(r#"{"jsonrpc":"2.0","id":7,"result":{"stopReason":"end_turn"}}"#);
        count.observe_outgoing(r#"{"jsonrpc":"2.0","id":"x","error":{"code":-1}}"#);
        assert_eq!(*rx.borrow(), 0);
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
