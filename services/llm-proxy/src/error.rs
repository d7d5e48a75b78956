//! Errors of the llm-proxy: [`LlmError`] for everything that can go wrong
//! while talking to a provider (typed so the caller knows how to react), and
//! [`LlmProxyError`] for starting and running the service itself.
//!
//! Invariant: no message built here ever contains an API key. Provider error
//! bodies are redacted by the provider client before they reach this module,
//! and authentication failures never quote the provider at all (OpenAI echoes
//! a masked key in its 401 message).

use std::time::Duration;

use openheim_proto::llm_proxy::v1::ErrorKind;

/// A failed provider call, or a request the proxy could not route.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The provider refused our credentials (401/403).
    #[error("{}", auth_message(provider, *status, hint, detail))]
    Auth {
        provider: String,
        status: u16,
        /// What to fix, e.g. "check OPENAI_API_KEY".
        hint: String,
        /// The provider's explanation, only for 403 (401 bodies may echo the key).
        detail: String,
    },
    /// Unknown model or endpoint (404).
    #[error("model {model:?} was not found at provider {provider} (404): {message}")]
    NotFound {
        provider: String,
        model: String,
        message: String,
    },
    /// The provider rejected the request (400 and other 4xx).
    #[error("provider {provider} rejected the request ({status}): {message}")]
    BadRequest {
        provider: String,
        status: u16,
        message: String,
    },
    /// The conversation does not fit the model's context window.
    #[error("the conversation is too long for model {model:?} at provider {provider}: {message}")]
    ContextTooLong {
        provider: String,
        model: String,
        status: Option<u16>,
        message: String,
    },
    /// 429.
    #[error("provider {provider} is rate limiting requests (429): {message}")]
    RateLimited {
        provider: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// 503 and 529: the provider has no capacity; a fallback is worth trying.
    #[error("provider {provider} is overloaded ({status}): {message}")]
    Overloaded {
        provider: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Other 5xx answers, and errors the provider reports inside a stream.
    #[error("provider {provider} failed{}: {message}", status_suffix(*status))]
    Provider {
        provider: String,
        status: Option<u16>,
        message: String,
        retryable: bool,
        retry_after: Option<Duration>,
    },
    /// 408, or the provider stayed silent longer than its `timeout_secs`.
    #[error("provider {provider} timed out{}: {message}", status_suffix(*status))]
    Timeout {
        provider: String,
        status: Option<u16>,
        message: String,
    },
    /// Connection failures and streams that ended before their terminal event.
    #[error("network error talking to provider {provider}: {message}")]
    Network { provider: String, message: String },
    /// The completion as a whole (attempts, waits and fallbacks) did not
    /// finish within the proxy's total deadline. Not retried: the time is up.
    #[error("no complete answer from provider {provider} within {} s (the total deadline of one completion)", after.as_secs())]
    Deadline { provider: String, after: Duration },
    /// The provider sent something we could not understand.
    #[error("provider {provider} sent an invalid response: {message}")]
    Protocol { provider: String, message: String },
    /// Our own configuration: unknown provider or model, refused URL,
    /// unsupported provider kind.
    #[error("{message}")]
    Config { message: String },
    /// A bug or an invalid request from the caller.
    #[error("{message}")]
    Internal { message: String },
}

fn auth_message(provider: &str, status: u16, hint: &str, detail: &str) -> String {
    if detail.is_empty() {
        format!("provider {provider} rejected the API key ({status}): {hint}")
    } else {
        format!(
            "provider {provider} rejected the API key ({status}): {hint} (provider said: {detail})"
        )
    }
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" ({s})")).unwrap_or_default()
}

/// What a provider answered with a non-success HTTP status, already reduced
/// to what the mapping needs. Built by each provider client from its own wire
/// format.
#[derive(Debug, Clone)]
pub struct HttpFailure<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub status: u16,
    /// The provider's own error message, with any key redacted.
    pub message: String,
    /// Whether the provider said the context window was exceeded (decided
    /// by the provider client from its wire format).
    pub context_too_long: bool,
    pub retry_after: Option<Duration>,
    /// What to fix on 401/403, e.g. "check OPENAI_API_KEY".
    pub auth_hint: &'a str,
    /// Where the request went, so a 404 can point at a wrong `api_base`.
    pub url: &'a str,
}

impl LlmError {
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
        }
    }

    /// Maps an HTTP error answer to the error the caller can act on. A
    /// table of statuses, kept whole so it reads as one.
    pub fn from_http(failure: HttpFailure<'_>) -> Self {
        let provider = failure.provider.to_owned();
        let message = failure.message;
        let retry_after = failure.retry_after;
        match failure.status {
            _ if failure.context_too_long => Self::ContextTooLong {
                provider,
                model: failure.model.to_owned(),
                status: Some(failure.status),
                message,
            },
            status @ (401 | 403) => Self::Auth {
                provider,
                status,
                hint: failure.auth_hint.to_owned(),
                detail: if status == 403 {
                    message
                } else {
                    String::new()
                },
            },
            404 => Self::NotFound {
                provider,
                model: failure.model.to_owned(),
                message: format!(
                    "check the model name and the provider's api_base (requested {}){}",
                    failure.url,
                    detail_suffix(&message)
                ),
            },
            408 => Self::Timeout {
                provider,
                status: Some(408),
                message,
            },
            429 => Self::RateLimited {
                provider,
                message,
                retry_after,
            },
            status @ (503 | 529) => Self::Overloaded {
                provider,
                status,
                message,
                retry_after,
            },
            status @ 500.. => Self::Provider {
                provider,
                status: Some(status),
                message,
                // Other 5xx (501 Not Implemented, 505…) will not change.
                retryable: matches!(status, 500 | 502 | 504),
                retry_after,
            },
            // 4xx other than the above, and anything odd below 400 that a
            // provider client chose to treat as a failure.
            status => Self::BadRequest {
                provider,
                status,
                message,
            },
        }
    }

    /// The wire kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Auth { .. } => ErrorKind::Auth,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::BadRequest { .. } => ErrorKind::BadRequest,
            Self::ContextTooLong { .. } => ErrorKind::ContextTooLong,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::Overloaded { .. } => ErrorKind::Overloaded,
            Self::Provider { .. } => ErrorKind::Provider,
            Self::Timeout { .. } | Self::Deadline { .. } => ErrorKind::Timeout,
            Self::Network { .. } => ErrorKind::Network,
            Self::Protocol { .. } => ErrorKind::Protocol,
            Self::Config { .. } => ErrorKind::Config,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the same request may succeed when sent again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::Overloaded { .. }
            | Self::Timeout { .. }
            | Self::Network { .. } => true,
            Self::Provider { retryable, .. } => *retryable,
            Self::Auth { .. }
            | Self::NotFound { .. }
            | Self::BadRequest { .. }
            | Self::ContextTooLong { .. }
            | Self::Deadline { .. }
            | Self::Protocol { .. }
            | Self::Config { .. }
            | Self::Internal { .. } => false,
        }
    }

    /// Whether the provider said it has no capacity: retrying the same
    /// provider is unlikely to help soon, so a fallback goes first.
    pub fn is_overload(&self) -> bool {
        matches!(self, Self::Overloaded { .. })
    }

    /// How long the provider asked us to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. }
            | Self::Overloaded { retry_after, .. }
            | Self::Provider { retry_after, .. } => *retry_after,
            Self::Auth { .. }
            | Self::NotFound { .. }
            | Self::BadRequest { .. }
            | Self::ContextTooLong { .. }
            | Self::Timeout { .. }
            | Self::Deadline { .. }
            | Self::Network { .. }
            | Self::Protocol { .. }
            | Self::Config { .. }
            | Self::Internal { .. } => None,
        }
    }

    /// The provider's HTTP status, when the error came from one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Auth { status, .. }
            | Self::BadRequest { status, .. }
            | Self::Overloaded { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            Self::RateLimited { .. } => Some(429),
            Self::ContextTooLong { status, .. }
            | Self::Provider { status, .. }
            | Self::Timeout { status, .. } => *status,
            Self::Deadline { .. }
            | Self::Network { .. }
            | Self::Protocol { .. }
            | Self::Config { .. }
            | Self::Internal { .. } => None,
        }
    }

    /// This error with every occurrence of `secret` in its text replaced.
    /// Provider clients apply it to everything built from a provider's
    /// answer, since some providers quote the key they rejected.
    pub fn redacted(mut self, secret: &str) -> Self {
        for text in self.texts_mut() {
            if !secret.is_empty() && text.contains(secret) {
                *text = text.replace(secret, "[redacted]");
            }
            // A key in a URL's query (`?api-key=…`) is as secret.
            if let std::borrow::Cow::Owned(clean) = openheim_config::redact_urls_in(text) {
                *text = clean;
            }
        }
        self
    }

    /// Every free-text field (provider and model names are ours, not the
    /// provider's, and are left out).
    fn texts_mut(&mut self) -> impl Iterator<Item = &mut String> {
        let (first, second) = match self {
            Self::Auth { hint, detail, .. } => (Some(hint), Some(detail)),
            Self::NotFound { message, .. }
            | Self::BadRequest { message, .. }
            | Self::ContextTooLong { message, .. }
            | Self::RateLimited { message, .. }
            | Self::Overloaded { message, .. }
            | Self::Provider { message, .. }
            | Self::Timeout { message, .. }
            | Self::Network { message, .. }
            | Self::Protocol { message, .. }
            | Self::Config { message }
            | Self::Internal { message } => (Some(message), None),
            Self::Deadline { .. } => (None, None),
        };
        first.into_iter().chain(second)
    }

    /// The wire form, attributed to the provider and model of the attempt.
    pub fn to_wire(&self, provider: &str, model: &str) -> openheim_proto::llm_proxy::v1::LlmError {
        openheim_proto::llm_proxy::v1::LlmError {
            kind: self.kind().into(),
            message: self.to_string(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            retryable: self.is_retryable(),
            http_status: self.http_status().map(u32::from),
        }
    }
}

fn detail_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!("; provider said: {message}")
    }
}

/// Failures of the service itself (not of one completion).
#[derive(Debug, thiserror::Error)]
pub enum LlmProxyError {
    /// The gRPC server stopped with an error.
    #[error("the gRPC server failed: {0}")]
    Serve(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16) -> HttpFailure<'static> {
        HttpFailure {
            provider: "openai",
            model: "gpt-4o",
            status,
            message: "upstream says no".into(),
            context_too_long: false,
            retry_after: Some(Duration::from_secs(2)),
            auth_hint: "check OPENAI_API_KEY",
            url: "https://api.openai.com/v1/chat/completions",
        }
    }

    #[test]
    fn auth_names_the_env_var_and_not_the_provider_text() {
        let e = LlmError::from_http(failure(401));
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "provider openai rejected the API key (401): check OPENAI_API_KEY"
        );
        let e = LlmError::from_http(failure(403));
        assert!(e.to_string().contains("upstream says no"));
    }

    #[test]
    fn statuses_map_to_kinds_and_retryability() {
        let cases = [
            (400, ErrorKind::BadRequest, false),
            (404, ErrorKind::NotFound, false),
            (408, ErrorKind::Timeout, true),
            (422, ErrorKind::BadRequest, false),
            (429, ErrorKind::RateLimited, true),
            (500, ErrorKind::Provider, true),
            (501, ErrorKind::Provider, false),
            (502, ErrorKind::Provider, true),
            (503, ErrorKind::Overloaded, true),
            (504, ErrorKind::Provider, true),
            (529, ErrorKind::Overloaded, true),
        ];
        for (status, kind, retryable) in cases {
            let e = LlmError::from_http(failure(status));
            assert_eq!(e.kind(), kind, "{status}");
            assert_eq!(e.is_retryable(), retryable, "{status}");
            assert_eq!(e.http_status(), Some(status), "{status}");
        }
    }

    #[test]
    fn context_too_long_wins_over_the_status() {
        let e = LlmError::from_http(HttpFailure {
            context_too_long: true,
            ..failure(400)
        });
        assert_eq!(e.kind(), ErrorKind::ContextTooLong);
        assert!(!e.is_retryable());
    }

    #[test]
    fn not_found_names_model_provider_and_url() {
        let e = LlmError::from_http(failure(404)).to_string();
        assert!(e.contains("\"gpt-4o\"") && e.contains("openai"), "{e}");
        assert!(
            e.contains("https://api.openai.com/v1/chat/completions"),
            "{e}"
        );
    }

    #[test]
    fn redaction_scrubs_every_text_field() {
        let e = LlmError::from_http(HttpFailure {
            message: "bad key sk-abc in request".into(),
            ..failure(403)
        })
        .redacted("sk-abc");
        assert!(!format!("{e:?}").contains("sk-abc"), "{e:?}");
        assert!(e.to_string().contains("bad key [redacted] in request"));
        let e = LlmError::Network {
            provider: "p".into(),
            message: "sk-abc".into(),
        }
        .redacted("");
        assert!(
            e.to_string().contains("sk-abc"),
            "an empty secret changes nothing"
        );
    }

    #[test]
    fn the_deadline_is_a_final_timeout() {
        let e = LlmError::Deadline {
            provider: "p".into(),
            after: Duration::from_secs(90),
        };
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("within 90 s"), "{e}");
    }

    #[test]
    fn retry_after_is_kept_for_rate_limits() {
        let e = LlmError::from_http(failure(429));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let wire = e.to_wire("openai", "gpt-4o");
        assert_eq!(wire.kind, ErrorKind::RateLimited as i32);
        assert!(wire.retryable);
        assert_eq!(wire.http_status, Some(429));
    }
}
