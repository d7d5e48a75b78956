//! The permission gate in front of every tool call: session policy,
//! remembered "always" answers, and questions to the caller that a turn
//! waits on (answered through the turn's input stream).

use std::collections::HashMap;
use std::sync::Mutex;

use openheim_config::{PermissionsConfig, ToolPolicy};
use openheim_proto::agent_loop::v1::Decision;
use openheim_proto::common::v1::ToolKind;
use tokio::sync::oneshot;

use crate::store::Approval;

/// What the gate decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Reject,
    /// Ask the caller.
    Ask,
}

/// Remembered "always" answers of one session, keyed by [`approval_key`].
#[derive(Default)]
pub struct Remembered {
    answers: Mutex<HashMap<String, bool>>,
}

impl Remembered {
    pub fn get(&self, key: &str) -> Option<bool> {
        self.answers.lock().ok()?.get(key).copied()
    }

    pub fn remember(&self, key: String, allow: bool) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(key, allow);
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
