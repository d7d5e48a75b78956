//! The ACP adapter's error type and its mapping onto JSON-RPC errors with
//! the standard codes (ACP v1 error page).

use agent_client_protocol::v1::schema as acp;
use agent_client_protocol::{Error as RpcError, ErrorCode};
use openheim_proto::agent_loop::v1::{TurnError, TurnErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum AcpError {
    /// The session is not open on this connection (or does not exist).
    #[error("session {0} not found")]
    SessionNotFound(String),
    /// A prompt is already running in the session.
    #[error("session {0} is busy: a prompt is already running; cancel it or wait for it to end")]
    SessionBusy(String),
    #[error("invalid params: {0}")]
    InvalidParams(String),
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
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::NotFound => Self::SessionNotFound(session_id.to_owned()),
            tonic::Code::InvalidArgument => Self::InvalidParams(message),
            tonic::Code::FailedPrecondition => Self::SessionBusy(session_id.to_owned()),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => Self::Unavailable(message),
            _ => Self::AgentLoop(message),
        }
    }

    /// From a turn that ended with an error event.
    pub fn from_turn_error(session_id: &str, error: &TurnError) -> Self {
        match error.kind() {
            TurnErrorKind::SessionNotFound => Self::SessionNotFound(session_id.to_owned()),
            TurnErrorKind::SessionBusy => Self::SessionBusy(session_id.to_owned()),
            TurnErrorKind::InvalidInput | TurnErrorKind::HookDenied => {
                Self::InvalidParams(error.message.clone())
            }
            TurnErrorKind::BackendUnavailable => Self::Unavailable(error.message.clone()),
            TurnErrorKind::Llm
            | TurnErrorKind::Store
            | TurnErrorKind::Internal
            | TurnErrorKind::Unspecified => Self::AgentLoop(error.message.clone()),
        }
    }
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
            AcpError::InvalidParams(_) => RpcError::new(ErrorCode::INVALID_PARAMS, message),
            AcpError::AgentLoop(_) | AcpError::Unavailable(_) | AcpError::Connection(_) => {
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
        let status = tonic::Status::not_found("session \"x\" not found");
        assert!(matches!(
            AcpError::from_status("x", &status),
            AcpError::SessionNotFound(_)
        ));
    }
}
