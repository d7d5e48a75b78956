//! The gateway's errors: [`ApiError`], what a client is answered (one JSON
//! shape, `{"error": {"code", "message"}}`, through one `IntoResponse`), and
//! [`GatewayError`], why the server could not start or stopped.

use std::net::SocketAddr;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;

/// A backend service, as named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    AgentLoop,
    ToolExecutor,
    McpBroker,
    LlmProxy,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::AgentLoop => "agent-loop",
            Self::ToolExecutor => "tool-executor",
            Self::McpBroker => "mcp-broker",
            Self::LlmProxy => "llm-proxy",
        }
    }

    /// The `[services]` key that names the service's address.
    pub fn config_key(self) -> &'static str {
        match self {
            Self::AgentLoop => "services.agent_loop",
            Self::ToolExecutor => "services.tool_executor",
            Self::McpBroker => "services.mcp_broker",
            Self::LlmProxy => "services.llm_proxy",
        }
    }
}

/// Why a request failed, as the client is told.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("origin {0:?} is not allowed (server.allowed_origins)")]
    OriginNotAllowed(String),
    #[error("host {0:?} is not a name of this server (server.allowed_hosts)")]
    HostNotAllowed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} is not allowed on this route")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("too many open WebSocket connections; try again later")]
    TooManyConnections,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{} is not reachable from this gateway (set {})", .0.name(), .0.config_key())]
    NotConfigured(Backend),
    #[error("{}: {}", .service.name(), .message)]
    Unavailable { service: Backend, message: String },
    #[error("{} did not answer in time", .0.name())]
    Timeout(Backend),
    #[error("the request took longer than {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("{}: {}", .service.name(), .message)]
    Backend { service: Backend, message: String },
    /// A per-user limit refused (docs/security.md, "Limits"): 429 with
    /// `Retry-After`.
    #[error("{message}")]
    LimitExceeded {
        limit: String,
        retry_after_secs: u64,
        message: String,
    },
}

impl ApiError {
    /// The error a failed gRPC call of `service` is reported as. Codes that
    /// describe the request (not found, invalid) keep their meaning; the
    /// others say the backend failed.
    pub fn from_status(service: Backend, status: &tonic::Status) -> Self {
        if let Some(refusal) = openheim_proto::limit::refusal(status) {
            return Self::LimitExceeded {
                limit: refusal.limit,
                retry_after_secs: refusal.retry_after.as_secs().max(1),
                message: refusal.message,
            };
        }
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => Self::NotFound(message),
            Code::InvalidArgument | Code::OutOfRange => Self::BadRequest(message),
            Code::PermissionDenied => Self::Forbidden(message),
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => {
                Self::Conflict(message)
            }
            Code::Unavailable | Code::Cancelled => Self::Unavailable { service, message },
            Code::DeadlineExceeded => Self::Timeout(service),
            Code::Ok
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss
            | Code::Unauthenticated => Self::Backend { service, message },
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::OriginNotAllowed(_) | Self::HostNotAllowed(_) | Self::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyConnections | Self::ShuttingDown | Self::NotConfigured(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) | Self::RequestTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Backend { .. } => StatusCode::BAD_GATEWAY,
            Self::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// When the same request may succeed (the `Retry-After` header): a
    /// backend that is away is usually replaced within a second (a balanced
    /// channel checks its replicas every second); a full server frees
    /// sockets as sessions end.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Unavailable { .. } | Self::TooManyConnections | Self::ShuttingDown => Some(1),
            Self::LimitExceeded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::BadRequest(_)
            | Self::NotFound(_)
            | Self::Unauthorized
            | Self::OriginNotAllowed(_)
            | Self::HostNotAllowed(_)
            | Self::Forbidden(_)
            | Self::Conflict(_)
            | Self::MethodNotAllowed(_)
            | Self::TooLarge(_)
            | Self::NotConfigured(_)
            | Self::Timeout(_)
            | Self::RequestTimeout(_)
            | Self::Backend { .. } => None,
        }
    }

    /// The stable, machine-readable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "invalid_request",
            Self::NotFound(_) => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::OriginNotAllowed(_) => "origin_not_allowed",
            Self::HostNotAllowed(_) => "host_not_allowed",
            Self::Forbidden(_) => "forbidden",
            Self::Conflict(_) => "conflict",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::TooLarge(_) => "too_large",
            Self::TooManyConnections => "too_many_connections",
            Self::ShuttingDown => "shutting_down",
            Self::NotConfigured(_) => "backend_not_configured",
            Self::Unavailable { .. } => "backend_unavailable",
            Self::Timeout(_) => "backend_timeout",
            Self::RequestTimeout(_) => "timeout",
            Self::Backend { .. } => "backend_error",
            Self::LimitExceeded { .. } => "limit_exceeded",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Why the gateway could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "refusing to listen on {0} without authentication: a non-loopback address needs \
         server.auth_tokens (or OPENHEIM_SERVER__AUTH_TOKENS); use --host 127.0.0.1 for local use"
    )]
    Unprotected(SocketAddr),
    #[error("server.oidc: {0}")]
    Oidc(#[from] crate::jwt::JwtError),
    #[error("server.limits: {0}")]
    Limits(#[from] openheim_limits::LimitsError),
    #[error("HTTP server failed: {0}")]
    Serve(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn every_error_has_the_same_shape() {
        let (status, json) = body(ApiError::NotFound("session \"x\" not found".into())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "not_found", "message": "session \"x\" not found"}})
        );
        let unavailable = ApiError::Unavailable {
            service: Backend::AgentLoop,
            message: "connection refused".into(),
        };
        let response = unavailable.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let (status, json) = body(ApiError::NotConfigured(Backend::LlmProxy)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json["error"]["code"], "backend_not_configured");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("services.llm_proxy")
        );
    }

    #[test]
    fn grpc_codes_keep_their_meaning() {
        let cases = [
            (Code::NotFound, StatusCode::NOT_FOUND),
            (Code::InvalidArgument, StatusCode::BAD_REQUEST),
            (Code::PermissionDenied, StatusCode::FORBIDDEN),
            (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            (Code::DeadlineExceeded, StatusCode::GATEWAY_TIMEOUT),
            (Code::Internal, StatusCode::BAD_GATEWAY),
        ];
        for (code, want) in cases {
            let error = ApiError::from_status(Backend::AgentLoop, &tonic::Status::new(code, "x"));
            assert_eq!(error.status(), want, "{code:?}");
        }
    }

    /// Every error as a client receives it: a wire change shows up as a
    /// snapshot diff in review.
    #[tokio::test]
    async fn error_bodies_as_clients_see_them() {
        // A limit's refusal from a service becomes the same 429.
        let refused = openheim_proto::limit::status("tokens_per_day", 7, "spent".into());
        let error = ApiError::from_status(Backend::AgentLoop, &refused);
        assert_eq!(
            (error.code(), error.retry_after_secs()),
            ("limit_exceeded", Some(7))
        );
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let errors = [
            ApiError::BadRequest("limit must be a number".into()),
            ApiError::NotFound("session \"x\" not found".into()),
            ApiError::Unauthorized,
            ApiError::OriginNotAllowed("https://evil.example".into()),
            ApiError::HostNotAllowed("evil.example".into()),
            ApiError::Forbidden("outside the workspace".into()),
            ApiError::Conflict("the session is busy".into()),
            ApiError::MethodNotAllowed("PUT".into()),
            ApiError::TooLarge(1024),
            ApiError::TooManyConnections,
            ApiError::ShuttingDown,
            ApiError::NotConfigured(Backend::ToolExecutor),
            ApiError::Unavailable {
                service: Backend::McpBroker,
                message: "connection refused".into(),
            },
            ApiError::Timeout(Backend::LlmProxy),
            ApiError::RequestTimeout(std::time::Duration::from_secs(30)),
            ApiError::Backend {
                service: Backend::AgentLoop,
                message: "internal".into(),
            },
            ApiError::LimitExceeded {
                limit: "requests_per_minute".into(),
                retry_after_secs: 42,
                message: "limit reached: 60 requests per minute (`requests_per_minute`); try again in 42 s".into(),
            },
        ];
        let mut shown = String::new();
        for error in errors {
            let (status, json) = body(error).await;
            shown.push_str(&format!("{} {json}\n", status.as_u16()));
        }
        insta::assert_snapshot!(shown);
    }

    #[tokio::test]
    async fn unauthorized_asks_for_a_bearer_token() {
        let response = ApiError::Unauthorized.into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
