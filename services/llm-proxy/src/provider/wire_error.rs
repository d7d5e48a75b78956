//! Error bodies of the providers' APIs, and the mapping of the error codes
//! they put in bodies and stream events to [`LlmError`]s.
//!
//! The shapes differ only in detail: OpenAI `{"error": {"message", "type",
//! "code"}}`, Anthropic `{"type": "error", "error": {"type", "message"}}`,
//! Google `{"error": {"code": 429, "message", "status", "details": [...]}}`,
//! Ollama `{"error": "text"}`. One tolerant parser reads them all.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error::LlmError;

/// An error object in any of the supported shapes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorBody {
    Object(ErrorObject),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorObject {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// A string (`"context_length_exceeded"`) or a number (vLLM and Google
    /// repeat the HTTP status here).
    #[serde(default)]
    pub code: Option<Value>,
    /// Google's canonical status, e.g. `"RESOURCE_EXHAUSTED"`.
    #[serde(default)]
    pub status: Option<String>,
    /// Google's typed details (`ErrorInfo.reason`, `RetryInfo.retryDelay`).
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, rename = "retryDelay")]
    pub retry_delay: Option<String>,
}

impl ErrorBody {
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::Object(o) => o.message.as_deref().unwrap_or_default(),
            Self::Text(t) => t,
        }
    }

    /// The machine-readable code: a string `code`, else the `type`, else
    /// Google's `status`.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Self::Object(o) => o
                .code
                .as_ref()
                .and_then(Value::as_str)
                .or(o.kind.as_deref())
                .or(o.status.as_deref()),
            Self::Text(_) => None,
        }
    }

    /// A numeric `code`, when it is an HTTP status.
    pub(crate) fn numeric_code(&self) -> Option<u16> {
        match self {
            Self::Object(o) => o
                .code
                .as_ref()
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c)),
            Self::Text(_) => None,
        }
    }

    /// Google's `ErrorInfo.reason`, e.g. `"API_KEY_INVALID"`.
    pub(crate) fn reason(&self) -> Option<&str> {
        match self {
            Self::Object(o) => o.details.iter().find_map(|d| d.reason.as_deref()),
            Self::Text(_) => None,
        }
    }

    /// Google's `RetryInfo.retryDelay` (`"35s"`, `"1.5s"`).
    pub(crate) fn retry_delay(&self) -> Option<Duration> {
        let Self::Object(o) = self else { return None };
        let delay = o.details.iter().find_map(|d| d.retry_delay.as_deref())?;
        let seconds: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
        if seconds.is_finite() && seconds >= 0.0 {
            Duration::try_from_secs_f64(seconds).ok()
        } else {
            None
        }
    }
}

/// Phrases with which providers say the prompt is too long when they send
/// no dedicated code (vLLM, llama.cpp, Anthropic, Gemini, OpenAI's own
/// message). Matching text is a last resort: the code is checked first.
const CONTEXT_TOO_LONG_PHRASES: &[&str] = &[
    "maximum context length",
    "context length exceeded",
    "context_length_exceeded",
    "exceeds the available context size",
    "context window",
    "prompt is too long",
    "input token count",
];

/// Whether an error says the context window was exceeded.
pub(crate) fn is_context_too_long(code: Option<&str>, message: &str) -> bool {
    if code == Some("context_length_exceeded") {
        return true;
    }
    let message = message.to_ascii_lowercase();
    CONTEXT_TOO_LONG_PHRASES.iter().any(|p| message.contains(p))
}

/// Parses an error response body; `None` when it has no recognisable shape.
pub(crate) fn parse_error_body(body: &str) -> Option<ErrorBody> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        error: Option<ErrorBody>,
        /// Some servers answer `{"message": ...}` or FastAPI's `{"detail": ...}`.
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        detail: Option<Value>,
    }
    // Google wraps some errors in a one-element array.
    let body = body.trim();
    let envelope: Envelope = if body.starts_with('[') {
        serde_json::from_str::<[Envelope; 1]>(body)
            .map(|[e]| e)
            .ok()?
    } else {
        serde_json::from_str(body).ok()?
    };
    envelope
        .error
        .or_else(|| envelope.message.map(ErrorBody::Text))
        .or_else(|| {
            envelope.detail.map(|d| match d {
                Value::String(s) => ErrorBody::Text(s),
                other => ErrorBody::Text(other.to_string()),
            })
        })
}

/// Where an error reported inside a stream came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub provider: &'a str,
    pub model: &'a str,
}

/// Maps an error a provider reported inside a stream (or with a code only)
/// to the error the caller can act on. Unknown codes are treated as
/// transient provider failures: mid-stream failures usually are.
pub(crate) fn stream_error(origin: Origin<'_>, error: &ErrorBody) -> LlmError {
    if let Some(status) = error.numeric_code() {
        return status_error(origin, status, error);
    }
    let message = error.message().to_owned();
    let provider = origin.provider.to_owned();
    match error.code() {
        code if is_context_too_long(code, &message) => LlmError::ContextTooLong {
            provider,
            model: origin.model.to_owned(),
            status: None,
            message,
        },
        Some("rate_limit_exceeded" | "rate_limit_error" | "RESOURCE_EXHAUSTED") => {
            LlmError::RateLimited {
                provider,
                message,
                retry_after: error.retry_delay(),
            }
        }
        Some("overloaded_error") => overloaded(provider, 529, message),
        Some("server_is_overloaded" | "UNAVAILABLE") => overloaded(provider, 503, message),
        Some("invalid_request_error" | "invalid_prompt" | "INVALID_ARGUMENT") => {
            LlmError::BadRequest {
                provider,
                status: 400,
                message,
            }
        }
        Some("request_too_large") => LlmError::BadRequest {
            provider,
            status: 413,
            message,
        },
        Some("authentication_error" | "UNAUTHENTICATED") => auth(provider, 401, String::new()),
        Some("permission_error" | "PERMISSION_DENIED") => auth(provider, 403, message),
        Some("not_found_error" | "NOT_FOUND") => LlmError::NotFound {
            provider,
            model: origin.model.to_owned(),
            message,
        },
        Some("timeout_error" | "DEADLINE_EXCEEDED") => LlmError::Timeout {
            provider,
            status: None,
            message,
        },
        _ => LlmError::Provider {
            provider,
            status: None,
            message,
            retryable: true,
            retry_after: None,
        },
    }
}

/// An error that carries an HTTP status in its body maps like that status.
fn status_error(origin: Origin<'_>, status: u16, error: &ErrorBody) -> LlmError {
    let message = error.message().to_owned();
    LlmError::from_http(crate::error::HttpFailure {
        provider: origin.provider,
        model: origin.model,
        status,
        context_too_long: is_context_too_long(error.code(), &message),
        message,
        retry_after: error.retry_delay(),
        auth_hint: "check the provider's API key",
        url: "",
    })
}

fn overloaded(provider: String, status: u16, message: String) -> LlmError {
    LlmError::Overloaded {
        provider,
        status,
        message,
        retry_after: None,
    }
}

fn auth(provider: String, status: u16, detail: String) -> LlmError {
    LlmError::Auth {
        provider,
        status,
        hint: "check the provider's API key".into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        provider: "p",
        model: "m",
    };

    fn classify(body: &str) -> LlmError {
        stream_error(ORIGIN, &parse_error_body(body).unwrap())
    }

    #[test]
    fn bodies_of_every_provider_parse() {
        let openai = parse_error_body(
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        )
        .unwrap();
        assert_eq!(openai.code(), Some("context_length_exceeded"));
        assert!(is_context_too_long(openai.code(), openai.message()));
        let anthropic = parse_error_body(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
        )
        .unwrap();
        assert_eq!(anthropic.code(), Some("overloaded_error"));
        let google = parse_error_body(
            r#"[{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"35s"}]}}]"#,
        )
        .unwrap();
        assert_eq!(google.numeric_code(), Some(429));
        assert_eq!(google.code(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(google.retry_delay(), Some(Duration::from_secs(35)));
        let ollama = parse_error_body(r#"{"error":"model \"x\" not found"}"#).unwrap();
        assert_eq!(ollama.message(), "model \"x\" not found");
        let fastapi = parse_error_body(r#"{"detail":"Not Found"}"#).unwrap();
        assert_eq!(fastapi.message(), "Not Found");
        assert!(parse_error_body("<html>").is_none());
    }

    #[test]
    fn context_too_long_is_recognised_across_providers() {
        for message in [
            "This model's maximum context length is 4096 tokens. However, you requested 5000",
            "prompt is too long: 208310 tokens > 200000 maximum",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        ] {
            assert!(is_context_too_long(None, message), "{message}");
        }
        assert!(!is_context_too_long(
            None,
            "unknown parameter: stream_options"
        ));
    }

    #[test]
    fn stream_codes_map_to_kinds() {
        let e = classify(r#"{"error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert!(
            matches!(e, LlmError::Overloaded { status: 529, .. }),
            "{e:?}"
        );
        let e = classify(r#"{"error":{"message":"slow","type":"rate_limit_exceeded"}}"#);
        assert!(matches!(e, LlmError::RateLimited { .. }), "{e:?}");
        let e = classify(r#"{"error":{"message":"bad","code":400}}"#);
        assert!(
            matches!(e, LlmError::BadRequest { status: 400, .. }),
            "{e:?}"
        );
        let e = classify(r#"{"error":{"message":"boom","type":"server_error"}}"#);
        assert!(e.is_retryable(), "{e:?}");
        let e = classify(r#"{"error":{"message":"no","type":"permission_error"}}"#);
        assert!(matches!(e, LlmError::Auth { status: 403, .. }), "{e:?}");
        let e = classify(r#"{"error":"model crashed"}"#);
        assert!(e.to_string().contains("model crashed"), "{e}");
    }
}
