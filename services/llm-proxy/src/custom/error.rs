//! [`ProviderError`]: how a custom provider says an attempt failed, typed
//! so that llm-proxy applies the same policy as to a built-in provider's
//! failure of the same kind.

use std::time::Duration;

use crate::error::LlmError;
use crate::provider::truncate;

/// What kind of failure a [`ProviderError`] is: decides whether it is
/// retried and how the user is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The provider refused the credentials. Not retried.
    Auth,
    /// The provider does not know the requested model. Not retried.
    ModelNotFound,
    /// The provider refused this request as invalid. Not retried.
    InvalidRequest,
    /// The conversation does not fit the model's context window. Not
    /// retried as is: the agent loop leaves out older turns and asks again.
    ContextTooLong,
    /// Too many requests. Retried, after the provider's `retry_after` when
    /// it gave one.
    RateLimited,
    /// The provider has no capacity now: a fallback, when configured, is
    /// tried before a retry.
    Overloaded,
    /// A transient failure on the provider's side (an HTTP 500, 502 or
    /// 504, a broken backend). Retried.
    Unavailable,
    /// The provider did not answer in time. Retried.
    Timeout,
    /// The connection failed or broke. Retried.
    Network,
    /// The provider sent something the implementation cannot understand.
    /// Not retried.
    Protocol,
    /// Any other failure that will not go away by asking again.
    Failed,
}

impl ErrorKind {
    /// The kind the built-in providers give an HTTP error status: 401/403
    /// auth, 404 model not found, 408 timeout, 429 rate limited, 503/529
    /// overloaded, 500/502/504 unavailable, other 5xx failed, other
    /// statuses an invalid request.
    pub fn from_http_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Auth,
            404 => Self::ModelNotFound,
            408 => Self::Timeout,
            429 => Self::RateLimited,
            503 | 529 => Self::Overloaded,
            500 | 502 | 504 => Self::Unavailable,
            500.. => Self::Failed,
            _ => Self::InvalidRequest,
        }
    }

    /// Whether a request that failed this way may succeed when sent again.
    pub fn is_retryable(self) -> bool {
        match self {
            Self::RateLimited
            | Self::Overloaded
            | Self::Unavailable
            | Self::Timeout
            | Self::Network => true,
            Self::Auth
            | Self::ModelNotFound
            | Self::InvalidRequest
            | Self::ContextTooLong
            | Self::Protocol
            | Self::Failed => false,
        }
    }

    /// Whether a provider-given `retry_after` is honoured for this kind.
    fn honours_retry_after(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Overloaded | Self::Unavailable
        )
    }
}

/// A failed attempt of a custom provider.
///
/// Its message is shown to the user after `provider NAME …`, so it should
/// say what went wrong in the provider's terms. It must not contain
/// credentials: llm-proxy scrubs the keys it knows from built-in providers'
/// errors, but a custom provider's credentials are its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    kind: ErrorKind,
    message: String,
    retry_after: Option<Duration>,
    http_status: Option<u16>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
            http_status: None,
        }
    }

    /// The error for an HTTP error answer, classified as the built-in
    /// providers classify theirs ([`ErrorKind::from_http_status`]).
    pub fn from_http_status(status: u16, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::from_http_status(status), message).with_http_status(status)
    }

    /// How long the provider asked to wait before a retry. Honoured for
    /// [`ErrorKind::RateLimited`], [`ErrorKind::Overloaded`] and
    /// [`ErrorKind::Unavailable`], capped by the provider's
    /// `retry_max_delay_ms`.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The HTTP status the provider answered with, shown to the user.
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether openheim will send the request again (or fall back).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The wait openheim will honour before the retry, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after.filter(|_| self.kind.honours_retry_after())
    }

    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// The service's error for this failure of `provider` serving `model`:
    /// the variant a built-in provider's failure of the same kind gets, so
    /// the policy and the user's message are the same.
    pub(crate) fn into_llm_error(self, provider: &str, model: &str) -> LlmError {
        let provider = provider.to_owned();
        let message = truncate(self.message);
        let (status, retry_after) = (self.http_status, self.retry_after);
        match self.kind {
            ErrorKind::Auth => LlmError::Auth {
                provider,
                status: status.unwrap_or(401),
                hint: message,
                detail: String::new(),
            },
            ErrorKind::ModelNotFound => LlmError::NotFound {
                provider,
                model: model.to_owned(),
                message,
            },
            ErrorKind::InvalidRequest => LlmError::BadRequest {
                provider,
                status: status.unwrap_or(400),
                message,
            },
            ErrorKind::ContextTooLong => LlmError::ContextTooLong {
                provider,
                model: model.to_owned(),
                status,
                message,
            },
            ErrorKind::RateLimited => LlmError::RateLimited {
                provider,
                message,
                retry_after,
            },
            ErrorKind::Overloaded => LlmError::Overloaded {
                provider,
                status: status.unwrap_or(503),
                message,
                retry_after,
            },
            ErrorKind::Unavailable | ErrorKind::Failed => LlmError::Provider {
                provider,
                status,
                message,
                retryable: self.kind.is_retryable(),
                retry_after: retry_after.filter(|_| self.kind.honours_retry_after()),
            },
            ErrorKind::Timeout => LlmError::Timeout {
                provider,
                status,
                message,
            },
            ErrorKind::Network => LlmError::Network { provider, message },
            ErrorKind::Protocol => LlmError::Protocol { provider, message },
        }
    }
}
