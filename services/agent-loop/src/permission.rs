//! The permission gate in front of every tool call: session policy,
//! remembered "always" answers, and questions to the caller that a turn
//! waits on (answered through the turn's input stream).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openheim_config::{PermissionsConfig, ToolPolicy};
use openheim_proto::agent_loop::v1::{Decision, DecisionSource};
use openheim_proto::common::v1::ToolKind;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::store::{Approval, SessionStore, StoreError};

/// What the gate decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Reject,
    /// Ask the caller.
    Ask,
}

/// Remembered "always" answers of one session, keyed by [`approval_key`].
///
/// A turn reads them from the store when it starts (no other turn of the
/// session can run meanwhile: the lease) and writes new answers through to
/// the store, in order, in the background; [`Remembered::flush`] waits for
/// those writes, before the turn gives its lease back.
#[derive(Default)]
pub struct Remembered {
    answers: Mutex<HashMap<String, bool>>,
    /// Where new answers go; `None` keeps them in memory only.
    persist: Option<Persist>,
}

struct Persist {
    store: Arc<dyn SessionStore>,
    session_id: String,
    /// The last write; each write waits for the one before it.
    last_write: Mutex<Option<JoinHandle<()>>>,
}

impl Remembered {
    /// The session's answers as the store has them, written back there.
    pub async fn load(store: Arc<dyn SessionStore>, session_id: &str) -> Result<Self, StoreError> {
        let answers = store.remembered(session_id).await?;
        Ok(Self {
            answers: Mutex::new(answers),
            persist: Some(Persist {
                store,
                session_id: session_id.to_owned(),
                last_write: Mutex::default(),
            }),
        })
    }

    pub fn get(&self, key: &str) -> Option<bool> {
        self.answers.lock().ok()?.get(key).copied()
    }

    /// Applies at once to this turn; reaches the store in the background.
    pub fn remember(&self, key: String, allow: bool) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(key.clone(), allow);
        }
        let Some(persist) = &self.persist else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("an \"always\" answer is not stored: no runtime");
            return;
        };
        let Ok(mut last_write) = persist.last_write.lock() else {
            return;
        };
        let before = last_write.take();
        let store = Arc::clone(&persist.store);
        let session_id = persist.session_id.clone();
        *last_write = Some(runtime.spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            if let Err(error) = store.remember(&session_id, &key, allow).await {
                tracing::warn!(session = %session_id, %error, "could not store an \"always\" answer; it holds for this turn only");
            }
        }));
    }

    /// Waits until every answer given so far has reached the store.
    pub async fn flush(&self) {
        let last = self
            .persist
            .as_ref()
            .and_then(|p| p.last_write.lock().ok()?.take());
        if let Some(last) = last {
            let _ = last.await;
        }
    }
}

/// Shell approvals are remembered per exact command; other tools per name.
pub fn approval_key(tool_name: &str, arguments: &serde_json::Value) -> String {
    match (tool_name, arguments.get("command").and_then(|c| c.as_str())) {
        ("execute_command", Some(command)) => format!("execute_command\0{command}"),
        _ => tool_name.to_owned(),
    }
}

/// The configured policy for a kind of tool.
pub fn kind_policy(kinds: &PermissionsConfig, kind: ToolKind) -> ToolPolicy {
    match kind {
        ToolKind::Read | ToolKind::Search | ToolKind::Think => kinds.read,
        ToolKind::Edit | ToolKind::Delete | ToolKind::Move => kinds.edit,
        ToolKind::Execute => kinds.execute,
        ToolKind::Fetch => kinds.fetch,
        ToolKind::Other | ToolKind::Unspecified => kinds.other,
    }
}

/// The gate's decision before asking anyone: the session's mode first
/// (`auto` allows everything), then the policy of the tool's kind, then a
/// remembered "always" answer.
pub fn verdict(session: Approval, policy: ToolPolicy, remembered: Option<bool>) -> Verdict {
    match (session, policy) {
        (Approval::Auto, _) | (_, ToolPolicy::Auto) => Verdict::Allow,
        (_, ToolPolicy::Deny) | (Approval::Deny, ToolPolicy::Ask) => Verdict::Reject,
        (Approval::Ask, ToolPolicy::Ask) => match remembered {
            Some(true) => Verdict::Allow,
            Some(false) => Verdict::Reject,
            None => Verdict::Ask,
        },
    }
}

/// Who made the decision [`verdict`] returns (when it is not `Ask`).
pub fn decided_by(session: Approval, policy: ToolPolicy) -> DecisionSource {
    match (session, policy) {
        (Approval::Auto, _) => DecisionSource::ApprovalMode,
        (_, ToolPolicy::Auto | ToolPolicy::Deny) => DecisionSource::Policy,
        (Approval::Deny, ToolPolicy::Ask) => DecisionSource::ApprovalMode,
        (Approval::Ask, ToolPolicy::Ask) => DecisionSource::Remembered,
    }
}

/// Questions a running turn has asked and not yet had answered.
#[derive(Default)]
pub struct PendingQuestions {
    waiting: Mutex<HashMap<String, oneshot::Sender<Decision>>>,
}

impl PendingQuestions {
    /// Registers a question; the receiver resolves with the answer, or
    /// errs if the turn's input closes first (which counts as a reject).
    pub fn ask(&self, request_id: String) -> oneshot::Receiver<Decision> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(request_id, tx);
        }
        rx
    }

    /// Delivers an answer; false when nothing waits for `request_id`.
    pub fn answer(&self, request_id: &str, decision: Decision) -> bool {
        let sender = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(request_id));
        sender.is_some_and(|tx| tx.send(decision).is_ok())
    }

    /// Drops every waiting question (their receivers see a reject).
    pub fn clear(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        use ToolPolicy::{Ask, Auto, Deny};
        assert_eq!(verdict(Approval::Auto, Deny, Some(false)), Verdict::Allow);
        assert_eq!(verdict(Approval::Ask, Auto, None), Verdict::Allow);
        assert_eq!(verdict(Approval::Deny, Auto, None), Verdict::Allow);
        assert_eq!(verdict(Approval::Ask, Ask, None), Verdict::Ask);
        assert_eq!(verdict(Approval::Ask, Ask, Some(true)), Verdict::Allow);
        assert_eq!(verdict(Approval::Ask, Ask, Some(false)), Verdict::Reject);
        assert_eq!(verdict(Approval::Ask, Deny, Some(true)), Verdict::Reject);
        assert_eq!(verdict(Approval::Deny, Ask, Some(true)), Verdict::Reject);
    }

    #[test]
    fn kinds_map_to_their_policy() {
        let kinds = PermissionsConfig::default();
        assert_eq!(kind_policy(&kinds, ToolKind::Search), ToolPolicy::Auto);
        assert_eq!(kind_policy(&kinds, ToolKind::Edit), ToolPolicy::Ask);
        assert_eq!(kind_policy(&kinds, ToolKind::Execute), ToolPolicy::Ask);
        assert_eq!(kind_policy(&kinds, ToolKind::Unspecified), ToolPolicy::Ask);
    }

    #[test]
    fn shell_approvals_are_per_command() {
        let a = approval_key("execute_command", &serde_json::json!({"command": "ls"}));
        let b = approval_key(
            "execute_command",
            &serde_json::json!({"command": "rm -rf /"}),
        );
        assert_ne!(a, b);
        assert_eq!(
            approval_key("write_file", &serde_json::json!({"path": "a"})),
            "write_file"
        );
    }

    #[tokio::test]
    async fn remembered_answers_are_written_through_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn SessionStore> =
            Arc::new(crate::store::FileStore::new(dir.path()).unwrap());
        store.remember("s1", "read_file", true).await.unwrap();
        let remembered = Remembered::load(Arc::clone(&store), "s1").await.unwrap();
        assert_eq!(remembered.get("read_file"), Some(true));
        assert_eq!(remembered.get("write_file"), None);
        remembered.remember("write_file".into(), true);
        remembered.remember("write_file".into(), false);
        // Applies at once, and reaches the store by the flush.
        assert_eq!(remembered.get("write_file"), Some(false));
        remembered.flush().await;
        let stored = store.remembered("s1").await.unwrap();
        assert_eq!(stored.get("write_file"), Some(&false));
        assert!(store.remembered("s2").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn answers_reach_the_waiting_turn() {
        let pending = PendingQuestions::default();
        let rx = pending.ask("p1".into());
        assert!(!pending.answer("other", Decision::AllowOnce));
        assert!(pending.answer("p1", Decision::RejectAlways));
        assert_eq!(rx.await.unwrap(), Decision::RejectAlways);
        let rx = pending.ask("p2".into());
        pending.clear();
        assert!(rx.await.is_err());
    }
}
