//! Queues what a client sends right after `initialize` until the answer to
//! it is out.
//!
//! The SDK refuses (-32600) any request that arrives before the connection
//! is initialized, and it is initialized only once the `initialize`
//! response is sent. A client that pipelines `session/new` behind
//! `initialize` without waiting is legal JSON-RPC, so the transport holds
//! such messages back instead: after an `initialize` request, the next
//! incoming message is handed on only when a response with that request's
//! id has been written (docs/acp.md).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use agent_client_protocol::Lines;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

/// Longest wait for an `initialize` answer before later messages go on
/// anyway (the SDK answers at once; this only guards against a stuck gate).
const MAX_HOLD: Duration = Duration::from_secs(30);

/// A transport over `outgoing` and `incoming` lines whose incoming messages
/// wait for the answer to a preceding `initialize`. Used by every ACP
/// transport (stdio and the gateway's sockets).
pub fn lines<O, I>(
    outgoing: O,
    incoming: I,
) -> Lines<
    impl Sink<String, Error = io::Error> + Send + 'static,
    impl Stream<Item = io::Result<String>> + Send + 'static,
>
where
    O: Sink<String, Error = io::Error> + Send + Unpin + 'static,
    I: Stream<Item = io::Result<String>> + Send + Unpin + 'static,
{
    let (outgoing, incoming) = gated(outgoing, incoming);
    Lines::new(Box::pin(outgoing), Box::pin(incoming))
}

/// The two halves of [`lines`].
fn gated<O, I>(
    outgoing: O,
    incoming: I,
) -> (
    impl Sink<String, Error = io::Error> + Send + 'static,
    impl Stream<Item = io::Result<String>> + Send + 'static,
)
where
    O: Sink<String, Error = io::Error> + Send + Unpin + 'static,
    I: Stream<Item = io::Result<String>> + Send + Unpin + 'static,
{
    // The id of the `initialize` request not answered yet, as JSON text.
    let pending = Arc::new(watch::Sender::new(None::<String>));
    let answers = Arc::clone(&pending);
    let outgoing = outgoing.with(move |line: String| {
        let answered = answers
            .borrow()
            .as_deref()
            .is_some_and(|id| response_id(&line).as_deref() == Some(id));
        if answered {
            answers.send_replace(None);
        }
        futures::future::ready(Ok::<_, io::Error>(line))
    });
    let incoming =
        futures::stream::unfold((incoming, pending), |(mut incoming, pending)| async move {
            let mut watcher = pending.subscribe();
            let answered = watcher.wait_for(Option::is_none);
            if tokio::time::timeout(MAX_HOLD, answered).await.is_err() {
                tracing::warn!("no answer to initialize in time; passing later messages on");
                pending.send_replace(None);
            }
            drop(watcher);
            let line = incoming.next().await?;
            if let Ok(line) = &line
                && let Some(id) = initialize_id(line)
            {
                pending.send_replace(Some(id));
            }
            Some((line, (incoming, pending)))
        });
    (outgoing, incoming)
}

/// The two fields that tell requests and responses apart; the rest of the
/// message is skipped, not built.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a str>,
    #[serde(borrow, default)]
    method: Option<&'a str>,
    #[serde(default)]
    id: Option<Value>,
}

/// The id of an `initialize` request, as JSON text.
fn initialize_id(line: &str) -> Option<String> {
    // Cheap check first: most lines are not `initialize`.
    if !line.contains("\"initialize\"") {
        return None;
    }
    // Only a well-formed request is sure to be answered with its own id.
    match serde_json::from_str::<Probe<'_>>(line) {
        Ok(Probe {
            jsonrpc: Some("2.0"),
            method: Some("initialize"),
            id: Some(id @ (Value::String(_) | Value::Number(_))),
        }) if !id.as_f64().is_some_and(|n| n.fract() != 0.0) => Some(id.to_string()),
        _ => None,
    }
}

/// The id of a response, as JSON text.
fn response_id(line: &str) -> Option<String> {
    match serde_json::from_str::<Probe<'_>>(line) {
        Ok(Probe {
            method: None,
            id: Some(id),
            ..
        }) => Some(id.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_initialize_requests_are_waited_for() {
        let init = |id: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{}}}}"#)
        };
        assert_eq!(initialize_id(&init("7")).as_deref(), Some("7"));
        assert_eq!(initialize_id(&init("\"a\"")).as_deref(), Some("\"a\""));
        for id in ["null", "-1.5", "{\"weird\":true}"] {
            assert_eq!(initialize_id(&init(id)), None, "{id}");
        }
        assert_eq!(
            initialize_id(r#"{"jsonrpc":"2.0","method":"initialize"}"#),
            None
        );
        assert_eq!(
            response_id(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#).as_deref(),
            Some("7")
        );
        assert_eq!(response_id(&init("7")), None);
    }

    #[tokio::test]
    async fn messages_after_initialize_wait_for_its_answer() {
        use futures::channel::mpsc;
        let (in_tx, in_rx) = mpsc::unbounded::<io::Result<String>>();
        let (out_tx, mut out_rx) = mpsc::unbounded::<String>();
        let sink = out_tx.sink_map_err(|_| io::Error::other("closed"));
        let (outgoing, incoming) = gated(sink, in_rx);
        let (mut outgoing, mut incoming) = (Box::pin(outgoing), Box::pin(incoming));
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        let new = r#"{"jsonrpc":"2.0","id":2,"method":"session/new","params":{}}"#;
        in_tx.unbounded_send(Ok(init.to_owned())).unwrap();
        in_tx.unbounded_send(Ok(new.to_owned())).unwrap();
        assert_eq!(incoming.next().await.unwrap().unwrap(), init);
        // Held back while `initialize` is unanswered, whatever else goes out.
        let held = tokio::time::timeout(Duration::from_millis(50), incoming.next()).await;
        assert!(held.is_err(), "session/new was handed on too early");
        outgoing
            .send(r#"{"jsonrpc":"2.0","method":"session/update","params":{}}"#.to_owned())
            .await
            .unwrap();
        let held = tokio::time::timeout(Duration::from_millis(50), incoming.next()).await;
        assert!(held.is_err(), "released by a notification");
        outgoing
            .send(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_owned())
            .await
            .unwrap();
        assert_eq!(incoming.next().await.unwrap().unwrap(), new);
        assert!(out_rx.next().await.is_some_and(|line| !line.is_empty()));
    }
}
