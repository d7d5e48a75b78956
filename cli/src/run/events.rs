//! The events of `openheim run --json`, one JSON object per line on stdout
//! (docs/automation.md). `docs/run-events.schema.json` is generated from
//! these types (a test keeps it current). Adding an event type or an
//! optional field keeps `schema_version`; renaming, removing or changing the
//! meaning of anything bumps it.

use schemars::JsonSchema;
use serde::Serialize;

/// The version of this event format, sent in `session.started`.
pub const SCHEMA_VERSION: u32 = 1;

/// One line of the stream. The first line is `session.started` (unless the
/// session could not be created, then the only line is `turn.failed`), the
/// last is `turn.completed` or `turn.failed`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type")]
pub enum RunEvent {
    /// The run's session exists (created, or resumed with `--resume`).
    #[serde(rename = "session.started")]
    SessionStarted {
        /// Version of this event format; a breaking change bumps it.
        schema_version: u32,
        /// The session's id, for `--resume` and the REST API.
        session_id: String,
        /// True when an existing session is continued.
        resumed: bool,
        /// The model the session's turns ask for, as `provider/model` when
        /// the agent loop resolved it; otherwise as the session names it
        /// ("" = the configured default). `model.selected` says which model
        /// actually serves each call.
        model: String,
        /// Absolute path of the session's workspace.
        workspace: String,
        /// Version of the openheim binary.
        openheim_version: String,
    },
    /// The provider and model serving the next model call (again when
    /// openheim falls back to another model).
    #[serde(rename = "model.selected")]
    ModelSelected {
        /// Provider name from the configuration.
        provider: String,
        /// Model name at that provider.
        model: String,
        /// Tokens the model accepts; absent when unknown.
        #[serde(skip_serializing_if = "Option::is_none")]
        context_window: Option<u64>,
        /// Served by a fallback after the requested model failed.
        is_fallback: bool,
    },
    /// A piece of the assistant's answer text, as it streams.
    #[serde(rename = "message.delta")]
    MessageDelta {
        /// Text to append to the message being written.
        text: String,
    },
    /// The assistant's text of one model call, complete (the deltas since
    /// the previous `message.completed` or `message.retracted`, joined).
    #[serde(rename = "message.completed")]
    MessageCompleted {
        /// The whole text.
        text: String,
    },
    /// Output streamed since the current model call began is void: the
    /// provider's stream broke and the call is made again.
    #[serde(rename = "message.retracted")]
    MessageRetracted {
        /// Why the stream broke.
        reason: String,
    },
    /// A piece of the model's reasoning summary, as it streams.
    #[serde(rename = "thinking.delta")]
    ThinkingDelta {
        /// Text to append to the reasoning being written.
        text: String,
    },
    /// The reasoning text of one model call, complete.
    #[serde(rename = "thinking.completed")]
    ThinkingCompleted {
        /// The whole reasoning text.
        text: String,
    },
    /// The model called a tool.
    #[serde(rename = "tool_call.started")]
    ToolCallStarted {
        /// The call's id, shared by its later events.
        id: String,
        /// Tool name as the model called it.
        name: String,
        /// A short human title, e.g. `write_file hello.txt`.
        title: String,
        /// What the tool does.
        kind: ToolKind,
        /// The arguments, as the model sent them (a string when they are
        /// not valid JSON).
        arguments: serde_json::Value,
        /// Workspace paths the call touches.
        locations: Vec<String>,
    },
    /// A tool call changed state before finishing (it started running).
    #[serde(rename = "tool_call.updated")]
    ToolCallUpdated {
        /// The call's id.
        id: String,
        /// Its new state.
        status: ToolCallProgress,
    },
    /// A tool call finished; exactly one per `tool_call.started`.
    #[serde(rename = "tool_call.completed")]
    ToolCallCompleted {
        /// The call's id.
        id: String,
        /// Tool name as the model called it.
        name: String,
        /// How it ended.
        status: ToolCallOutcome,
        /// The result text the model sees, capped at
        /// [`RESULT_CAP_BYTES`] bytes.
        result: String,
        /// True when `result` was cut to the cap.
        result_truncated: bool,
        /// Milliseconds from `tool_call.started` to this event.
        duration_ms: u64,
        /// Structured result of built-in tools (e.g. a command's exit
        /// code); absent when the tool gave none.
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<serde_json::Value>,
    },
    /// Whether a tool call may run, decided before it runs.
    #[serde(rename = "permission.decided")]
    PermissionDecided {
        /// The call's id.
        tool_call_id: String,
        /// Tool name as the model called it.
        tool_name: String,
        /// `allow` or `deny`.
        decision: PermissionDecision,
        /// Who decided.
        by: DecidedBy,
        /// Why, when more than `by` is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The hook that decided (`by` = `hook`), or that replaced the
        /// call's arguments before another rule decided.
        #[serde(skip_serializing_if = "Option::is_none")]
        hook: Option<String>,
    },
    /// The agent's task plan changed (its `update_plan` tool): the whole
    /// plan, replacing the previous one.
    #[serde(rename = "plan.updated")]
    PlanUpdated {
        /// The steps, in order.
        entries: Vec<PlanStep>,
    },
    /// Something the user should know: retries, context left out, fallbacks.
    #[serde(rename = "notice")]
    Notice {
        /// How serious.
        level: NoticeLevel,
        /// What it is about.
        kind: NoticeKind,
        /// The text shown to a person.
        message: String,
    },
    /// Tokens and cost of one model call.
    #[serde(rename = "usage")]
    Usage {
        /// Provider of the call (from the last `model.selected`; "" when
        /// none was announced).
        provider: String,
        /// Model of the call.
        model: String,
        /// What the call used.
        usage: Usage,
    },
    /// The turn ended normally; the last line.
    #[serde(rename = "turn.completed")]
    TurnCompleted {
        /// The session's id.
        session_id: String,
        /// Why the turn ended.
        stop_reason: StopReason,
        /// Totals over every model call of the turn.
        usage: Usage,
        /// Model calls made.
        llm_calls: u32,
        /// Milliseconds from `session.started` to this event.
        duration_ms: u64,
        /// The exit code of `openheim run` (docs/automation.md).
        exit_code: u8,
    },
    /// The turn failed; the last line.
    #[serde(rename = "turn.failed")]
    TurnFailed {
        /// The session's id; absent when no session could be created.
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        /// What went wrong.
        error: RunError,
        /// Totals over the model calls that reported usage before the
        /// failure.
        usage: Usage,
        /// Model calls that reported usage.
        llm_calls: u32,
        /// Milliseconds from the start of the run to this event.
        duration_ms: u64,
        /// The exit code of `openheim run` (docs/automation.md).
        exit_code: u8,
    },
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PlanStep {
    /// What the step is.
    pub content: String,
    /// `pending`, `in_progress` or `completed`.
    pub status: PlanStepStatus,
    /// `high`, `medium` or `low`.
    pub priority: PlanStepPriority,
}

/// How far a plan step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStepStatus {
    Pending,
    InProgress,
    Completed,
}

/// How much a plan step matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStepPriority {
    High,
    Medium,
    Low,
}

/// Result text longer than this is cut in `tool_call.completed`.
pub const RESULT_CAP_BYTES: usize = 16 * 1024;

/// Token counts and cost. `input_tokens` counts the whole prompt, cached
/// parts included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Generated tokens, reasoning included.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: u64,
    /// The part of `output_tokens` spent reasoning, where the provider
    /// says; 0 otherwise.
    pub reasoning_tokens: u64,
    /// Cost in picodollars (10⁻¹² USD), exact; `null` when a price is
    /// unknown (never a guess).
    pub cost_pico_usd: Option<u64>,
}

/// What a tool does, as the permission policy groups tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Read,
    Edit,
    Delete,
    Move,
    Search,
    Execute,
    Think,
    Fetch,
    Other,
}

/// A running tool call's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallProgress {
    /// Waiting (e.g. for another call that edits files).
    Pending,
    /// Running.
    InProgress,
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallOutcome {
    /// The tool answered; `result` is its output.
    Completed,
    /// The tool failed, was refused or cancelled; `result` says why, as
    /// the model sees it.
    Failed,
}

/// A permission decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermissionDecision {
    Allow,
    Deny,
}

/// Who decided whether a tool call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The run's approval mode (`--yes`, `--deny`, `permissions.run`).
    ApprovalMode,
    /// The `[permissions]` policy of the tool's kind.
    Policy,
    /// An "always" answer remembered for the session.
    Remembered,
    /// A person's answer.
    User,
    /// A `pre_tool_use` hook (named in `hook`).
    Hook,
}

/// How serious a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    Info,
    Warning,
}

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Older turns were left out of the model's context window.
    Context,
    /// A provider call is retried after a transient failure.
    Retry,
    /// Another model serves the call after the requested one failed.
    Fallback,
    /// A hook failed (timed out, crashed, answered garbage) or changed
    /// something; the message names it.
    Hook,
    /// An MCP server was still starting when the turn began, or its tools
    /// joined the turn late.
    Mcp,
    /// Anything else.
    Other,
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model answered without calling tools.
    EndTurn,
    /// The answer was cut at the model's output limit.
    MaxTokens,
    /// The model refused to answer.
    Refusal,
    /// The turn reached `--max-iterations` (or `max_iterations`) model
    /// calls before a final answer.
    MaxIterations,
    /// Interrupted (Ctrl-C).
    Cancelled,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RunError {
    /// A stable name for the kind of failure.
    pub kind: ErrorKind,
    /// What happened, for a person.
    pub message: String,
}

/// Kinds of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The model provider failed for good (after retries and fallbacks).
    Provider,
    /// The session does not exist (`--resume`).
    SessionNotFound,
    /// Another turn of the session is running.
    SessionBusy,
    /// The request was refused as invalid.
    InvalidInput,
    /// A `user_prompt_submit` hook blocked the prompt.
    HookDenied,
    /// A per-user limit (`[server.limits]`) refused the turn.
    LimitExceeded,
    /// The session store failed.
    Store,
    /// A service could not be reached.
    Unavailable,
    /// Anything else.
    Internal,
}

/// The JSON Schema of one line of the stream, as published in
/// `docs/run-events.schema.json`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunEvent)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/run-events.schema.json"
    );

    /// The published schema is what these types produce. Regenerate it with
    /// `OPENHEIM_WRITE_SCHEMA=1 cargo test -p openheim run_events_schema`.
    #[test]
    fn run_events_schema_in_docs_is_current() {
        let generated = serde_json::to_string_pretty(&schema()).unwrap() + "\n";
        if std::env::var_os("OPENHEIM_WRITE_SCHEMA").is_some() {
            std::fs::write(PUBLISHED, &generated).unwrap();
        }
        let published = std::fs::read_to_string(PUBLISHED).unwrap_or_default();
        assert!(
            published == generated,
            "docs/run-events.schema.json is not the schema of cli/src/run/events.rs; \
             regenerate it with OPENHEIM_WRITE_SCHEMA=1 cargo test -p openheim run_events_schema"
        );
    }

    #[test]
    fn every_event_is_one_line_tagged_with_its_type() {
        let event = RunEvent::MessageDelta {
            text: "two\nlines".into(),
        };
        let line = serde_json::to_string(&event).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(line, r#"{"type":"message.delta","text":"two\nlines"}"#);
    }

    /// Every property of every event carries a description.
    #[test]
    fn every_field_is_documented() {
        let schema = schema();
        let mut undocumented = Vec::new();
        for variant in schema["oneOf"].as_array().unwrap() {
            let name = variant["properties"]["type"]["const"].clone();
            assert!(variant.get("description").is_some(), "{name} undocumented");
            for (field, spec) in variant["properties"].as_object().unwrap() {
                if field != "type" && spec.get("description").is_none() {
                    undocumented.push(format!("{name}.{field}"));
                }
            }
        }
        assert!(undocumented.is_empty(), "undocumented: {undocumented:?}");
    }
}
