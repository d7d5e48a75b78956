//! What can go wrong between the editor and the remote `/acp` endpoint, in
//! words a user can act on (docs/acp.md, "Connecting an editor to a remote
//! server").

use std::io;

/// A failure of the bridge: reaching the server, its answer to the token,
/// or the editor's stream.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("invalid --connect URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "ws:// would send the token and the conversation in clear text to {host}: use wss:// (ws:// is accepted for loopback addresses only)"
    )]
    PlainTextRemote { host: String },
    #[error("the server refused the token in ${var} (HTTP {status} from {endpoint})")]
    TokenRefused {
        var: String,
        status: u16,
        endpoint: String,
    },
    #[error(
        "{endpoint} requires a token (HTTP {status}): start the bridge with --token-env VAR, the token in $VAR"
    )]
    TokenRequired { endpoint: String, status: u16 },
    #[error("{endpoint} refused the WebSocket (HTTP {status}){detail}")]
    Rejected {
        endpoint: String,
        status: u16,
        detail: String,
    },
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("TLS with {endpoint} failed: {reason}")]
    Tls { endpoint: String, reason: String },
    #[error("no answer from {endpoint} within {secs} s")]
    Timeout { endpoint: String, secs: u64 },
    #[error("the connection to {endpoint} dropped: {reason}")]
    Dropped { endpoint: String, reason: String },
    #[error("the server answered {method} with an error: {message}")]
    Restore { method: String, message: String },
    #[error("cannot load this system's TLS root certificates: {0}")]
    Roots(String),
    #[error("the editor's stream failed: {0}")]
    Editor(#[source] io::Error),
}

impl BridgeError {
    /// Whether trying again later may succeed without a change by the
    /// user (a refused token or a wrong URL will not).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Timeout { .. }
                | Self::Dropped { .. }
                | Self::Rejected { .. }
                | Self::Restore { .. }
                | Self::Tls { .. }
        )
    }
}
