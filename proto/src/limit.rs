//! How a limit's refusal travels between services (docs/security.md,
//! "Limits"): gRPC status `RESOURCE_EXHAUSTED` with two metadata entries,
//! `retry-after` (whole seconds until trying again can succeed) and
//! `openheim-limit` (the limit's configuration key, e.g. `tokens_per_day`).
//! The agent loop writes them, the gateway and the ACP adapter read them;
//! this module is the one place both sides take the names from.

use std::time::Duration;

/// Metadata key: seconds until the request can succeed.
pub const RETRY_AFTER: &str = "retry-after";
/// Metadata key: which limit refused.
pub const LIMIT: &str = "openheim-limit";

/// A refusal as the caller reads it from a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRefusal {
    /// The limit's key (`concurrent_turns`, `sessions_per_day`,
    /// `requests_per_minute`, `tokens_per_day`).
    pub limit: String,
    pub retry_after: Duration,
    pub message: String,
}

/// The status refusing a request because of `limit`.
pub fn status(limit: &str, retry_after_secs: u64, message: String) -> tonic::Status {
    let mut status = tonic::Status::resource_exhausted(message);
    let metadata = status.metadata_mut();
    if let Ok(value) = retry_after_secs.to_string().parse() {
        metadata.insert(RETRY_AFTER, value);
    }
    if let Ok(value) = limit.parse() {
        metadata.insert(LIMIT, value);
    }
    status
}

/// The refusal a status carries: `RESOURCE_EXHAUSTED` with a limit's
/// metadata; `None` for any other status.
pub fn refusal(status: &tonic::Status) -> Option<LimitRefusal> {
    if status.code() != tonic::Code::ResourceExhausted {
        return None;
    }
    let metadata = status.metadata();
    let limit = metadata.get(LIMIT)?.to_str().ok()?.to_owned();
    let secs = metadata
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    Some(LimitRefusal {
        limit,
        retry_after: Duration::from_secs(secs.max(1)),
        message: status.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_survives_the_status() {
        let sent = status("tokens_per_day", 3600, "limit reached".into());
        assert_eq!(sent.code(), tonic::Code::ResourceExhausted);
        let read = refusal(&sent).unwrap();
        assert_eq!(read.limit, "tokens_per_day");
        assert_eq!(read.retry_after, Duration::from_secs(3600));
        assert_eq!(read.message, "limit reached");
        // Exhausted for another reason (a message size) is not a limit.
        assert_eq!(refusal(&tonic::Status::resource_exhausted("too big")), None);
        assert_eq!(refusal(&tonic::Status::not_found("x")), None);
    }
}
