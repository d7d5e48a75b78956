//! Elicitation requests of MCP servers (`elicitation/create`, docs/mcp.md
//! "Elicitation"): a server asks the user for input in the middle of one of
//! its tool calls. The broker passes the question to the caller of that
//! call when the caller can answer (`CallToolInteractive`), and declines it
//! otherwise, leaving a notice on the call's result.
//!
//! MCP does not say which call a request belongs to, so the broker knows it
//! only when exactly one call of the server is running; with none or
//! several running, the request is declined.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use openheim_proto::common::v1::{Elicitation, ElicitationAnswer};
use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction};
use tokio::sync::{mpsc, oneshot};

/// A question for the caller of a running call, and where its answer goes.
#[derive(Debug)]
pub struct Ask {
    pub elicitation: Elicitation,
    pub answer: oneshot::Sender<ElicitationAnswer>,
}

/// The calls of one server that are running, each with whoever can answer
/// for it.
#[derive(Default)]
pub struct Elicitations {
    calls: Mutex<Vec<Slot>>,
    next: AtomicU64,
}

struct Slot {
    id: u64,
    asker: Option<mpsc::Sender<Ask>>,
    notices: Arc<Mutex<Vec<String>>>,
}

/// A running call, registered until dropped.
pub struct CallGuard {
    owner: Arc<Elicitations>,
    id: u64,
    notices: Arc<Mutex<Vec<String>>>,
}

impl CallGuard {
    /// What the user should be told about the call so far.
    pub fn notices(&self) -> Vec<String> {
        self.notices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut calls = self.owner.lock();
        calls.retain(|slot| slot.id != self.id);
    }
}

impl Elicitations {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a running call; `asker` receives the server's questions
    /// when the caller can answer them.
    pub fn enter(self: &Arc<Self>, asker: Option<mpsc::Sender<Ask>>) -> CallGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let notices = Arc::<Mutex<Vec<String>>>::default();
        self.lock().push(Slot {
            id,
            asker,
            notices: Arc::clone(&notices),
        });
        CallGuard {
            owner: Arc::clone(self),
            id,
            notices,
        }
    }

    /// Answers `server`'s request: the caller's answer, or a decline.
    pub async fn ask(&self, server: &str, request: ElicitRequestParams) -> ElicitResult {
        let (message, schema) = match request {
            ElicitRequestParams::FormElicitationParams {
                message,
                requested_schema,
                ..
            } => (message, requested_schema),
            ElicitRequestParams::UrlElicitationParams { message, .. } => {
                self.decline(server, &message, "opening a URL for it is not supported");
                return ElicitResult::new(ElicitationAction::Decline);
            }
            _ => {
                self.decline(server, "", "this kind of request is not supported");
                return ElicitResult::new(ElicitationAction::Decline);
            }
        };
        let asker = {
            let calls = self.lock();
            match calls.as_slice() {
                [only] => only.asker.clone(),
                _ => None,
            }
        };
        let reason = match self.lock().len() {
            0 => "none of its tool calls is running",
            1 => "no one can answer here",
            _ => "several of its tool calls are running, so it is unclear whose",
        };
        let Some(asker) = asker else {
            self.decline(server, &message, reason);
            return ElicitResult::new(ElicitationAction::Decline);
        };
        let (answer, answered) = oneshot::channel();
        let elicitation = Elicitation {
            server: server.to_owned(),
            message: message.clone(),
            requested_schema_json: serde_json::to_string(&schema).unwrap_or_default(),
        };
        if asker
            .send(Ask {
                elicitation,
                answer,
            })
            .await
            .is_err()
        {
            self.decline(server, &message, "the caller went away");
            return ElicitResult::new(ElicitationAction::Decline);
        }
        match answered.await {
            Ok(answer) => result(&answer),
            Err(_) => ElicitResult::new(ElicitationAction::Cancel),
        }
    }

    /// Declines a request, leaving a notice on the running calls.
    fn decline(&self, server: &str, message: &str, reason: &str) {
        let notice =
            format!("MCP server {server:?} asked for input ({message:?}); declined: {reason}");
        tracing::info!("{notice}");
        for slot in self.lock().iter() {
            slot.notices
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(notice.clone());
        }
    }
}

/// The MCP result of the caller's answer; content that is not a JSON
/// object is not sent.
fn result(answer: &ElicitationAnswer) -> ElicitResult {
    match answer.action.as_str() {
        "accept" => {
            let content = serde_json::from_str::<serde_json::Value>(&answer.content_json)
                .ok()
                .filter(serde_json::Value::is_object);
            match content {
                Some(content) => ElicitResult::new(ElicitationAction::Accept).with_content(content),
                None => ElicitResult::new(ElicitationAction::Accept),
            }
        }
        "cancel" => ElicitResult::new(ElicitationAction::Cancel),
        _ => ElicitResult::new(ElicitationAction::Decline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(message: &str) -> ElicitRequestParams {
        serde_json::from_value(serde_json::json!({
            "mode": "form",
            "message": message,
            "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn the_one_running_call_answers_and_others_decline_with_a_notice() {
        let elicitations = Arc::new(Elicitations::default());
        let (tx, mut rx) = mpsc::channel(1);
        let call = elicitations.enter(Some(tx));
        let answering = tokio::spawn(async move {
            let ask = rx.recv().await.unwrap();
            assert_eq!(ask.elicitation.server, "everything");
            assert!(ask.elicitation.requested_schema_json.contains("name"));
            let _ = ask.answer.send(ElicitationAnswer {
                action: "accept".into(),
                content_json: r#"{"name":"Ada"}"#.into(),
            });
        });
        let answer = elicitations.ask("everything", form("Your name?")).await;
        answering.await.unwrap();
        assert_eq!(answer.action, ElicitationAction::Accept);
        assert_eq!(answer.content.unwrap()["name"], "Ada");
        assert!(call.notices().is_empty());
        drop(call);

        let silent = elicitations.enter(None);
        let answer = elicitations.ask("everything", form("Your name?")).await;
        assert_eq!(answer.action, ElicitationAction::Decline);
        let notices = silent.notices();
        assert_eq!(notices.len(), 1);
        assert!(
            notices[0].contains("declined: no one can answer here"),
            "{notices:?}"
        );
    }
}
