//! The ACP adapter's error type and its mapping onto JSON-RPC errors with
//! the standard codes (ACP v1 error page).

use std::time::Duration;

use agent_client_protocol::v1::schema as acp;
use agent_client_protocol::{Error as RpcError, ErrorCode};
use openheim_proto::agent_loop::v1::{TurnError, TurnErrorKind};

/// The JSON-RPC error code of a request refused by a per-user limit
/// (docs/acp.md, "Errors"): in the implementation-defined server range,
/// 429 as in HTTP.
pub const LIMIT_EXCEEDED: i32 = -32029;

#[derive(Debug, thiserror::Error)]
pub enum AcpError {
    /// The session is not open on this connection (or does not exist).
    #[error("session {0} not found")]
    SessionNotFound(String),
    /// A prompt is already running in the session.
    #[error("session {0} is busy: a prompt is already running; cancel it or wait for it to end")]
    SessionBusy(String),
    /// A turn of the session holds it on the server: another connection's,
    /// or one whose agent-loop replica stopped and whose lease has not
    /// lapsed yet. `retry_after` bounds the wait when the server knows it.
    #[error("session {id} is busy: another prompt of it is running on the server{}", wait_hint(.retry_after))]
    SessionHeld {
        id: String,
        retry_after: Option<Duration>,
    },
    /// The agent loop running the prompt went away mid-turn (a replica
    /// stopped, a connection broke).
    #[error(
        "the agent loop running this prompt went away ({0}); the messages it had completed are \
         saved; send the prompt again"
    )]
    TurnLost(String),
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The caller may never do this (list every user's sessions without
    /// being an admin).
    #[error("{0}")]
    Forbidden(String),
    /// A per-user limit refused (docs/security.md, "Limits"): JSON-RPC
    /// error [`LIMIT_EXCEEDED`] with `data.limit` and `data.retryAfter`.
    #[error("{message}")]
    LimitExceeded {
        limit: String,
        retry_after: Duration,
        message: String,
    },
    /// The agent loop refused or failed the request.
    #[error("{0}")]
    AgentLoop(String),
    /// The agent loop cannot be reached.
    #[error("the agent loop is unavailable: {0}")]
    Unavailable(String),
    /// The ACP connection itself failed.
    #[error("ACP connection failed: {0}")]
    Connection(String),
}

impl AcpError {
    /// From a failed agent-loop RPC; the code decides the JSON-RPC error.
    pub fn from_status(session_id: &str, status: &tonic::Status) -> Self {
        if let Some(refusal) = openheim_proto::limit::refusal(status) {
            return Self::LimitExceeded {
                limit: refusal.limit,
                retry_after: refusal.retry_after,
                message: refusal.message,
            };
        }
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::NotFound => Self::SessionNotFound(session_id.to_owned()),
            tonic::Code::PermissionDenied => Self::Forbidden(message),
            tonic::Code::InvalidArgument => Self::InvalidParams(message),
            tonic::Code::FailedPrecondition => Self::SessionBusy(session_id.to_owned()),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => Self::Unavailable(message),
            _ => Self::AgentLoop(message),
        }
    }

    /// From a turn's stream that failed after the turn started: a broken
    /// connection is a lost turn, anything else as [`AcpError::from_status`].
    pub fn lost_turn(session_id: &str, status: &tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                Self::TurnLost(status.message().to_owned())
            }
            _ => Self::from_status(session_id, status),
        }
    }

    /// From a turn that ended with an error event.
    pub fn from_turn_error(session_id: &str, error: &TurnError) -> Self {
        match error.kind() {
            TurnErrorKind::SessionNotFound => Self::SessionNotFound(session_id.to_owned()),
            TurnErrorKind::SessionBusy => Self::SessionHeld {
                id: session_id.to_owned(),
                retry_after: (error.retry_after_ms > 0)
                    .then(|| Duration::from_millis(u64::from(error.retry_after_ms))),
            },
            TurnErrorKind::InvalidInput | TurnErrorKind::HookDenied => {
                Self::InvalidParams(error.message.clone())
            }
            TurnErrorKind::BackendUnavailable => Self::Unavailable(error.message.clone()),
            TurnErrorKind::LimitExceeded => Self::LimitExceeded {
                limit: String::new(),
                retry_after: Duration::from_millis(u64::from(error.retry_after_ms.max(1))),
                message: error.message.clone(),
            },
            TurnErrorKind::Llm
            | TurnErrorKind::Store
            | TurnErrorKind::Internal
            | TurnErrorKind::Unspecified => Self::AgentLoop(error.message.clone()),
        }
    }
}

/// ` (free again within N s)`, rounded up to whole seconds, or nothing.
fn wait_hint(retry_after: &Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |wait| {
        format!(
            "; try again in {} s at the latest",
            wait.as_millis().div_ceil(1000).max(1)
        )
    })
}

fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

impl From<AcpError> for RpcError {
    fn from(error: AcpError) -> Self {
        let message = error.to_string();
        match error {
            AcpError::SessionNotFound(id) => {
                let mut rpc: RpcError = acp::Error::session_not_found(id).into();
                rpc.message = message;
                rpc
            }
            AcpError::SessionBusy(_) => RpcError::new(ErrorCode::INVALID_REQUEST, message),
            AcpError::SessionHeld { retry_after, .. } => {
                let mut rpc = RpcError::new(ErrorCode::INVALID_REQUEST, message);
                let wait = retry_after.map_or(0, millis);
                rpc.data = Some(serde_json::json!({"retryable": true, "retryAfterMs": wait}));
                rpc
            }
            AcpError::TurnLost(_) => {
                let mut rpc = RpcError::new(ErrorCode::INTERNAL_ERROR, message);
                rpc.data = Some(serde_json::json!({"retryable": true}));
                rpc
            }
            AcpError::InvalidParams(_) => RpcError::new(ErrorCode::INVALID_PARAMS, message),
            AcpError::Forbidden(_) => RpcError::new(ErrorCode::INVALID_REQUEST, message),
            AcpError::LimitExceeded {
                limit, retry_after, ..
            } => {
                let mut rpc = RpcError::new(ErrorCode::new(LIMIT_EXCEEDED), message);
                let secs = retry_after.as_millis().div_ceil(1000).max(1);
                rpc.data = Some(serde_json::json!({
                    "limit": limit,
                    "retryable": true,
                    "retryAfter": secs,
                    "retryAfterMs": millis(retry_after),
                }));
                rpc
            }
            // Another replica (or this one, back) usually answers within
            // the balanced channel's health-check period.
            AcpError::Unavailable(_) => {
                let mut rpc = RpcError::new(ErrorCode::INTERNAL_ERROR, message);
                let wait = millis(openheim_proto::balance::PROBE_INTERVAL);
                rpc.data = Some(serde_json::json!({"retryable": true, "retryAfterMs": wait}));
                rpc
            }
            AcpError::AgentLoop(_) | AcpError::Connection(_) => {
                RpcError::new(ErrorCode::INTERNAL_ERROR, message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_use_the_standard_codes() {
        let rpc = RpcError::from(AcpError::SessionNotFound("s1".into()));
        assert_eq!(rpc.code, ErrorCode::RESOURCE_NOT_FOUND);
        assert_eq!(rpc.message, "session s1 not found");
        let rpc = RpcError::from(AcpError::SessionBusy("s1".into()));
        assert_eq!(rpc.code, ErrorCode::INVALID_REQUEST);
        assert!(rpc.message.contains("already running"));
        let held = TurnError {
            kind: TurnErrorKind::SessionBusy as i32,
            message: "busy".into(),
            llm_error_kind: 0,
            retry_after_ms: 2500,
        };
        let rpc = RpcError::from(AcpError::from_turn_error("s1", &held));
        assert_eq!(rpc.code, ErrorCode::INVALID_REQUEST);
        assert!(
            rpc.message.ends_with("try again in 3 s at the latest"),
            "{}",
            rpc.message
        );
        assert_eq!(
            rpc.data,
            Some(serde_json::json!({"retryable": true, "retryAfterMs": 2500}))
        );
        let rpc = RpcError::from(AcpError::TurnLost("connection reset".into()));
        assert!(
            rpc.message.contains("send the prompt again"),
            "{}",
            rpc.message
        );
        assert_eq!(rpc.data, Some(serde_json::json!({"retryable": true})));
        let status = tonic::Status::not_found("session \"x\" not found");
        assert!(matches!(
            AcpError::from_status("x", &status),
            AcpError::SessionNotFound(_)
        ));
    }

    /// A limit's refusal (a status from the agent loop, or a turn error)
    /// is JSON-RPC error -32029 with the limit and the wait in seconds.
    #[test]
    fn a_limit_refusal_is_error_32029_with_the_wait() {
        let status = openheim_proto::limit::status("tokens_per_day", 3600, "limit reached".into());
        let rpc: RpcError = AcpError::from_status("s", &status).into();
        assert_eq!(rpc.code, ErrorCode::new(LIMIT_EXCEEDED));
        let data = rpc.data.unwrap();
        assert_eq!(data["limit"], "tokens_per_day");
        assert_eq!(data["retryAfter"], 3600);
        assert_eq!(data["retryAfterMs"], 3_600_000);
        let error = TurnError {
            kind: TurnErrorKind::LimitExceeded as i32,
            message: "limit reached".into(),
            llm_error_kind: 0,
            retry_after_ms: 1500,
        };
        let rpc: RpcError = AcpError::from_turn_error("s", &error).into();
        assert_eq!(rpc.code, ErrorCode::new(LIMIT_EXCEEDED));
        assert_eq!(rpc.data.unwrap()["retryAfter"], 2);
    }
}
