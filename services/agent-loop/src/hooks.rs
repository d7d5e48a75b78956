//! Hooks (docs/automation.md, "Hooks"): configured commands run at
//! `session_start`, `user_prompt_submit`, `pre_tool_use`, `post_tool_use`
//! and `stop`. Each gets one JSON object on stdin and answers by its exit
//! code and, optionally, a JSON object on stdout. They run through
//! tool-executor's `RunHook` — in the workspace, confined like the shell —
//! so they run where commands run in both deployments; this module decides
//! what their answers mean.
//!
//! Answers: exit 0 with nothing on stdout = no objection; exit 0 with
//! `{"decision": "allow"|"deny"|"ask", "reason", "arguments", "context"}`;
//! exit 2 = deny, with stderr as the reason. Anything else — another exit
//! code, a timeout, a signal, stdout that is not such an object, a hook that
//! cannot be started — is a failure, reported and decided by `on_error`.

use std::time::Duration;

use openheim_config::{HookConfig, HooksConfig, OnError};
use openheim_proto::tool_executor::v1::{RunHookResponse, Workspace};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::backends::Backends;
use crate::error::AgentError;

/// Exit code by which a hook denies without JSON (its stderr is the reason).
pub const DENY_EXIT_CODE: i32 = 2;
/// Characters of a hook's garbage or stderr quoted in a failure message.
const QUOTE_CHARS: usize = 200;

/// The points where hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    SessionStart,
    UserPromptSubmit,
    PreToolUse,
    PostToolUse,
    Stop,
}

impl HookEvent {
    pub fn name(self) -> &'static str {
        match self {
            Self::SessionStart => "session_start",
            Self::UserPromptSubmit => "user_prompt_submit",
            Self::PreToolUse => "pre_tool_use",
            Self::PostToolUse => "post_tool_use",
            Self::Stop => "stop",
        }
    }

    /// What a failed hook decides unless configured: a gate fails closed.
    fn default_on_error(self) -> OnError {
        match self {
            Self::PreToolUse | Self::UserPromptSubmit => OnError::Deny,
            Self::SessionStart | Self::PostToolUse | Self::Stop => OnError::Allow,
        }
    }

    fn hooks(self, config: &HooksConfig) -> &[HookConfig] {
        match self {
            Self::SessionStart => &config.session_start,
            Self::UserPromptSubmit => &config.user_prompt_submit,
            Self::PreToolUse => &config.pre_tool_use,
            Self::PostToolUse => &config.post_tool_use,
            Self::Stop => &config.stop,
        }
    }
}

/// A hook's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookDecision {
    Allow,
    Deny,
    Ask,
}

/// What one hook answered, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookAnswer {
    /// `None`: no objection (the usual rules decide).
    pub decision: Option<HookDecision>,
    pub reason: String,
    /// Text to add (to the prompt, or to a tool result).
    pub context: Option<String>,
    /// Replacement arguments of the tool call (`pre_tool_use`).
    pub arguments: Option<Value>,
    /// Why the hook failed, when it did (then `decision` is `on_error`'s).
    pub failure: Option<String>,
}

/// The JSON a hook may print.
#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Reads the answer of `hook` from how its command ended (`Err`: it could
/// not be run at all).
pub fn interpret(
    event: HookEvent,
    hook: &HookConfig,
    ran: Result<RunHookResponse, AgentError>,
) -> HookAnswer {
    let on_error = hook.on_error.unwrap_or(event.default_on_error());
    let failed = |failure: String| HookAnswer {
        decision: (on_error == OnError::Deny).then_some(HookDecision::Deny),
        reason: format!("hook {:?} failed: {failure}", hook.label()),
        failure: Some(failure),
        ..HookAnswer::default()
    };
    let ran = match ran {
        Ok(ran) if ran.error.is_empty() => ran,
        Ok(ran) => return failed(format!("could not be run: {}", ran.error)),
        Err(error) => return failed(format!("could not be run: {error}")),
    };
    if ran.timed_out {
        return failed(format!("timed out after {} s", hook.timeout_secs));
    }
    match ran.exit_code {
        None => failed("was killed by a signal".into()),
        Some(0) => match parse_reply(&ran.stdout) {
            Ok(answer) => answer,
            Err(failure) => failed(failure.to_string()),
        },
        Some(DENY_EXIT_CODE) => HookAnswer {
            decision: Some(HookDecision::Deny),
            reason: quote(ran.stderr.trim()),
            ..HookAnswer::default()
        },
        Some(code) => failed(format!("exited with {code}: {}", quote(ran.stderr.trim()))),
    }
}

/// Why a hook's answer could not be read.
#[derive(Debug, thiserror::Error)]
enum BadReply {
    #[error("printed something that is not a JSON answer: {0}")]
    NotJson(String),
    #[error("answered an unknown decision {0:?}")]
    UnknownDecision(String),
    #[error("answered `arguments` that are not a JSON object")]
    ArgumentsNotAnObject,
}

fn parse_reply(stdout: &str) -> Result<HookAnswer, BadReply> {
    let text = stdout.trim();
    if text.is_empty() {
        return Ok(HookAnswer::default());
    }
    let reply: Reply = serde_json::from_str(text).map_err(|_| BadReply::NotJson(quote(text)))?;
    let decision = match reply.decision.as_deref() {
        None => None,
        Some("allow") => Some(HookDecision::Allow),
        Some("deny") => Some(HookDecision::Deny),
        Some("ask") => Some(HookDecision::Ask),
        Some(other) => return Err(BadReply::UnknownDecision(other.to_owned())),
    };
    if reply.arguments.as_ref().is_some_and(|a| !a.is_object()) {
        return Err(BadReply::ArgumentsNotAnObject);
    }
    Ok(HookAnswer {
        decision,
        reason: reply.reason.unwrap_or_default(),
        context: reply.context.filter(|c| !c.trim().is_empty()),
        arguments: reply.arguments,
        failure: None,
    })
}

fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().count() > QUOTE_CHARS {
        quoted.push('…');
    }
    quoted
}

/// What the `pre_tool_use` hooks of one call decided together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolVerdict {
    /// The strongest decision: deny, then ask, then allow; `None` when no
    /// hook objected or allowed.
    pub decision: Option<HookDecision>,
    /// The hook that decided, and why.
    pub hook: String,
    pub reason: String,
    /// The arguments to run the call with, when a hook replaced them, and
    /// which hook did.
    pub arguments: Option<(String, Value)>,
    /// Failures to report: (hook, what happened).
    pub failures: Vec<(String, String)>,
}

/// Runs hooks through tool-executor for one session's turn.
#[derive(Clone)]
pub struct HookRunner {
    pub config: std::sync::Arc<HooksConfig>,
    pub backends: Backends,
    pub workspace: Workspace,
    pub session_id: String,
}

impl HookRunner {
    pub fn has(&self, event: HookEvent) -> bool {
        !event.hooks(&self.config).is_empty()
    }

    /// Runs one hook with `input` (the event's fields; the common ones are
    /// added here).
    async fn run_one(&self, event: HookEvent, hook: &HookConfig, mut input: Value) -> HookAnswer {
        if let Some(fields) = input.as_object_mut() {
            fields.insert("event".into(), event.name().into());
            fields.insert("session_id".into(), self.session_id.clone().into());
            fields.insert("workspace".into(), self.workspace.root.clone().into());
        }
        let timeout = Duration::from_secs(hook.timeout_secs);
        let ran = self
            .backends
            .run_hook(&self.workspace, &hook.command, input.to_string(), timeout)
            .await;
        let answer = interpret(event, hook, ran);
        if let Some(failure) = &answer.failure {
            tracing::warn!(hook = hook.label(), event = event.name(), %failure, "a hook failed");
        }
        answer
    }

    /// Runs every hook of an event that adds context or observes
    /// (`session_start`, `user_prompt_submit`, `post_tool_use`, `stop`), in
    /// order; the answers with the hooks' names. A denial stops the rest.
    pub async fn run_all(
        &self,
        event: HookEvent,
        tool: Option<&str>,
        input: Value,
    ) -> Vec<(String, HookAnswer)> {
        let mut answers = Vec::new();
        for hook in event.hooks(&self.config) {
            if tool.is_some_and(|t| !hook.matches(t)) {
                continue;
            }
            let answer = self.run_one(event, hook, input.clone()).await;
            let denied = answer.decision == Some(HookDecision::Deny);
            answers.push((hook.label().to_owned(), answer));
            if denied {
                break;
            }
        }
        answers
    }

    /// Runs the `pre_tool_use` hooks matching `tool`, in order: each sees
    /// the arguments the hooks before it left; the first denial ends it.
    pub async fn pre_tool_use(&self, tool: &str, call_id: &str, arguments: Value) -> ToolVerdict {
        let mut verdict = ToolVerdict::default();
        let mut current = arguments;
        for hook in HookEvent::PreToolUse.hooks(&self.config) {
            if !hook.matches(tool) {
                continue;
            }
            let input = json!({
                "tool_name": tool,
                "tool_call_id": call_id,
                "arguments": current,
            });
            let answer = self.run_one(HookEvent::PreToolUse, hook, input).await;
            let label = hook.label().to_owned();
            if let Some(failure) = answer.failure.clone() {
                verdict.failures.push((label.clone(), failure));
            }
            if let Some(arguments) = answer.arguments {
                current = arguments.clone();
                verdict.arguments = Some((label.clone(), arguments));
            }
            let stronger = match (answer.decision, verdict.decision) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(new), Some(old)) => rank(new) > rank(old),
            };
            if stronger {
                verdict.decision = answer.decision;
                verdict.hook = label;
                verdict.reason = answer.reason;
            }
            if verdict.decision == Some(HookDecision::Deny) {
                break;
            }
        }
        verdict
    }
}

fn rank(decision: HookDecision) -> u8 {
    match decision {
        HookDecision::Allow => 1,
        HookDecision::Ask => 2,
        HookDecision::Deny => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(on_error: Option<OnError>) -> HookConfig {
        HookConfig {
            command: "guard.sh".into(),
            name: Some("guard".into()),
            matcher: None,
            timeout_secs: 5,
            on_error,
        }
    }

    fn exited(code: i32, stdout: &str, stderr: &str) -> Result<RunHookResponse, AgentError> {
        Ok(RunHookResponse {
            exit_code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
            ..RunHookResponse::default()
        })
    }

    #[test]
    fn exit_codes_and_json_answers() {
        let pre = HookEvent::PreToolUse;
        assert_eq!(
            interpret(pre, &hook(None), exited(0, "", "")),
            HookAnswer::default()
        );
        let denied = interpret(pre, &hook(None), exited(2, "", "no rm -rf here\n"));
        assert_eq!(denied.decision, Some(HookDecision::Deny));
        assert_eq!(denied.reason, "no rm -rf here");
        let json = r#"{"decision":"ask","reason":"sure?","arguments":{"path":"b"},"context":"c"}"#;
        let asked = interpret(pre, &hook(None), exited(0, json, ""));
        assert_eq!(asked.decision, Some(HookDecision::Ask));
        assert_eq!(asked.arguments, Some(json!({"path": "b"})));
        assert_eq!(asked.context.as_deref(), Some("c"));
        assert_eq!(asked.failure, None);
    }

    #[test]
    fn failures_follow_on_error_and_fail_closed_before_tools() {
        let garbage = || exited(0, "yes please", "");
        let pre = interpret(HookEvent::PreToolUse, &hook(None), garbage());
        assert_eq!(pre.decision, Some(HookDecision::Deny));
        assert!(
            pre.failure
                .as_deref()
                .unwrap()
                .contains("not a JSON answer")
        );
        let allowed = interpret(
            HookEvent::PreToolUse,
            &hook(Some(OnError::Allow)),
            garbage(),
        );
        assert_eq!((allowed.decision, allowed.failure.is_some()), (None, true));
        let post = interpret(HookEvent::PostToolUse, &hook(None), exited(1, "", "boom"));
        assert_eq!(post.decision, None, "observing hooks fail open by default");
        assert!(post.failure.unwrap().contains("exited with 1: boom"));
        let timed_out = Ok(RunHookResponse {
            timed_out: true,
            ..RunHookResponse::default()
        });
        let slow = interpret(HookEvent::PreToolUse, &hook(None), timed_out);
        assert_eq!(slow.failure.as_deref(), Some("timed out after 5 s"));
        assert!(slow.reason.contains("guard") && slow.reason.contains("timed out"));
        let crashed = Ok(RunHookResponse::default());
        let killed = interpret(HookEvent::Stop, &hook(Some(OnError::Deny)), crashed);
        assert_eq!(killed.decision, Some(HookDecision::Deny));
        let unstartable = interpret(
            HookEvent::Stop,
            &hook(None),
            Err(AgentError::Backend {
                service: "tool-executor",
                message: "no sandbox".into(),
            }),
        );
        assert!(unstartable.failure.unwrap().contains("no sandbox"));
        let unknown = interpret(
            HookEvent::PreToolUse,
            &hook(None),
            exited(0, r#"{"decision":"maybe"}"#, ""),
        );
        assert!(unknown.failure.is_some());
        let bad_args = interpret(
            HookEvent::PreToolUse,
            &hook(None),
            exited(0, r#"{"arguments":[1]}"#, ""),
        );
        assert!(bad_args.failure.is_some());
    }
}
