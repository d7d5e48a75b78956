//! The agent-loop's error type and how each variant reaches a caller.

use openheim_proto::agent_loop::v1::TurnErrorKind;

use crate::prompt::PromptError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("{service} is unavailable: {message}")]
    Backend {
        service: &'static str,
        message: String,
    },
    /// Another turn of the session runs (here or on another replica);
    /// `retry_after` bounds how long its lease may still hold the session.
    #[error("session {session_id} is busy: another turn is running{}", retry_hint(.retry_after))]
    Busy {
        session_id: String,
        retry_after: Option<std::time::Duration>,
    },
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// The caller may never do this (not about one session: those answer
    /// `NotFound`).
    #[error("{0}")]
    Forbidden(String),
    /// No MCP server of the session has the prompt a command names.
    #[error("{0}")]
    UnknownPrompt(String),
    #[error("the model provider failed: {message}")]
    Llm { kind: i32, message: String },
    #[error("llm-proxy ended the stream without a final event")]
    TruncatedStream,
    #[error(transparent)]
    Memory(#[from] openheim_memory::MemoryError),
    #[error("long-term memory is off (memory.enabled = false)")]
    MemoryDisabled,
    #[error("the prompt was blocked by hook {hook:?}: {reason}")]
    HookDenied { hook: String, reason: String },
    /// A per-user limit refused (docs/security.md, "Limits").
    #[error(transparent)]
    Limited(openheim_limits::Refusal),
}

impl AgentError {
    /// How a turn reports this error to its caller.
    pub fn turn_error_kind(&self) -> TurnErrorKind {
        match self {
            Self::Store(StoreError::NotFound(_)) => TurnErrorKind::SessionNotFound,
            Self::Store(StoreError::InvalidId(_)) => TurnErrorKind::InvalidInput,
            Self::Store(_) => TurnErrorKind::Store,
            Self::Prompt(_) => TurnErrorKind::InvalidInput,
            Self::Backend { .. } | Self::TruncatedStream => TurnErrorKind::BackendUnavailable,
            Self::Busy { .. } => TurnErrorKind::SessionBusy,
            Self::InvalidInput(_) | Self::Forbidden(_) | Self::UnknownPrompt(_) => {
                TurnErrorKind::InvalidInput
            }
            Self::Llm { .. } => TurnErrorKind::Llm,
            Self::Memory(_) => TurnErrorKind::Store,
            Self::MemoryDisabled => TurnErrorKind::InvalidInput,
            Self::HookDenied { .. } => TurnErrorKind::HookDenied,
            Self::Limited(_) => TurnErrorKind::LimitExceeded,
        }
    }
}

/// ` (try again within N s)`, rounded up to whole seconds, or nothing.
fn retry_hint(retry_after: &Option<std::time::Duration>) -> String {
    match retry_after {
        Some(wait) => format!(
            " (try again within {} s)",
            wait.as_millis().div_ceil(1000).max(1)
        ),
        None => String::new(),
    }
}
