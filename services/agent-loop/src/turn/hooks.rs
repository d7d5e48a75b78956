//! A turn's hooks (`crate::hooks` runs them and reads their answers): where
//! in the turn each event's hooks run and what their answers change. An
//! `impl Turn` of its own so the loop in `mod.rs` stays readable; it only
//! calls into its parent, never the other way round except through these
//! methods.

use openheim_proto::agent_loop::v1::{NoticeKind, NoticeLevel, TurnEnded};
use openheim_proto::common::v1::ToolCall;
use serde_json::json;

use super::Turn;
use super::calls::parse_args;
use crate::error::AgentError;
use crate::hooks::{HookDecision, HookEvent, ToolVerdict};
use crate::outcome::Outcome;
use crate::store::{StoredBlock, StoredMessage};

impl Turn {
    /// `pre_tool_use` hooks of one call; their failures are reported.
    pub(super) async fn pre_tool_hooks(&self, call: &ToolCall) -> ToolVerdict {
        let Some(hooks) = self.hooks.as_ref().filter(|h| h.has(HookEvent::PreToolUse)) else {
            return ToolVerdict::default();
        };
        let arguments = parse_args(&call.arguments_json);
        let verdict = hooks.pre_tool_use(&call.name, &call.id, arguments).await;
        for (hook, failure) in &verdict.failures {
            self.hook_failed(hook, HookEvent::PreToolUse, failure).await;
        }
        if let Some((hook, _)) = &verdict.arguments {
            let message = format!("hook {hook:?} replaced the arguments of {}", call.name);
            self.notice(NoticeLevel::Info, NoticeKind::Hook, message)
                .await;
        }
        verdict
    }

    /// `post_tool_use` hooks of one call that ran: their context is added
    /// to the result the model sees.
    pub(super) async fn post_tool_hooks(&self, call: &ToolCall, mut outcome: Outcome) -> Outcome {
        let Some(hooks) = self
            .hooks
            .as_ref()
            .filter(|h| h.has(HookEvent::PostToolUse))
        else {
            return outcome;
        };
        let input = json!({
            "tool_name": call.name,
            "tool_call_id": call.id,
            "arguments": parse_args(&call.arguments_json),
            "result": outcome.text,
            "is_error": outcome.is_error,
        });
        let answers = hooks
            .run_all(HookEvent::PostToolUse, Some(&call.name), input)
            .await;
        for (hook, answer) in answers {
            if let Some(failure) = &answer.failure {
                self.hook_failed(&hook, HookEvent::PostToolUse, failure)
                    .await;
            }
            if let Some(context) = answer.context {
                outcome.text = format!("{}\n\n[hook {hook}] {context}", outcome.text);
            }
        }
        outcome
    }

    /// `session_start` (at a session's first turn) and `user_prompt_submit`
    /// hooks: their context is added to the prompt; a denial ends the turn
    /// before anything is stored.
    pub(super) async fn prompt_hooks(
        &self,
        prompt: StoredMessage,
    ) -> Result<StoredMessage, AgentError> {
        let Some(hooks) = &self.hooks else {
            return Ok(prompt);
        };
        let StoredMessage::User { mut content } = prompt else {
            return Ok(prompt);
        };
        let text: String = content
            .iter()
            .filter_map(|b| match b {
                StoredBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut events = Vec::new();
        if self.history.is_empty() {
            events.push((HookEvent::SessionStart, json!({})));
        }
        events.push((HookEvent::UserPromptSubmit, json!({ "prompt": text })));
        for (event, input) in events {
            if !hooks.has(event) {
                continue;
            }
            for (hook, answer) in hooks.run_all(event, None, input).await {
                if let Some(failure) = &answer.failure {
                    self.hook_failed(&hook, event, failure).await;
                }
                if answer.decision == Some(HookDecision::Deny) {
                    let reason = answer.reason;
                    return Err(AgentError::HookDenied { hook, reason });
                }
                if let Some(context) = answer.context {
                    let text = format!("[context from hook {hook}]\n{context}");
                    content.push(StoredBlock::Text { text });
                }
            }
        }
        Ok(StoredMessage::User { content })
    }

    /// `stop` hooks, told how the turn ended; they only observe.
    pub(super) async fn stop_hooks(&self, ended: &TurnEnded) {
        let Some(hooks) = self.hooks.as_ref().filter(|h| h.has(HookEvent::Stop)) else {
            return;
        };
        let last_message = self.history.iter().rev().find_map(|m| match m {
            StoredMessage::Assistant { content } => content.iter().find_map(|b| match b {
                StoredBlock::Text { text } => Some(text.clone()),
                _ => None,
            }),
            _ => None,
        });
        let stop_reason = ended.stop_reason().as_str_name().to_ascii_lowercase();
        let input = json!({
            "stop_reason": stop_reason.trim_start_matches("stop_reason_"),
            "last_message": last_message,
            "llm_calls": ended.llm_calls,
        });
        for (hook, answer) in hooks.run_all(HookEvent::Stop, None, input).await {
            if let Some(failure) = &answer.failure {
                self.hook_failed(&hook, HookEvent::Stop, failure).await;
            }
        }
    }

    async fn hook_failed(&self, hook: &str, event: HookEvent, failure: &str) {
        let message = format!("hook {hook:?} ({}) {failure}", event.name());
        self.notice(NoticeLevel::Warning, NoticeKind::Hook, message)
            .await;
    }
}
