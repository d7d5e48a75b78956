//! Retry policy: how often and how long to wait before sending a failed
//! request again, and how to read a provider's `Retry-After`.
//!
//! The policy is a small value type; the loop that applies it lives in
//! `service.rs`, where it also reports every wait to the caller.

use std::time::{Duration, SystemTime};

use openheim_config::ProviderConfig;

/// Attempts after the first one, when a provider does not configure it.
pub const DEFAULT_MAX_RETRIES: u32 = openheim_config::DEFAULT_MAX_RETRIES;
/// Delay before the first retry, before jitter.
pub const DEFAULT_BASE_DELAY: Duration =
    Duration::from_millis(openheim_config::DEFAULT_RETRY_BASE_DELAY_MS);
/// No single wait is longer than this, whatever the backoff or the provider says.
pub const DEFAULT_MAX_DELAY: Duration =
    Duration::from_millis(openheim_config::DEFAULT_RETRY_MAX_DELAY_MS);

/// Exponential backoff with equal jitter, capped, honouring `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

impl RetryPolicy {
    pub fn from_provider(config: &ProviderConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            base_delay: Duration::from_millis(config.retry_base_delay_ms),
            max_delay: Duration::from_millis(config.retry_max_delay_ms),
        }
    }

    /// How long to wait before retry number `attempt` (1 = first retry).
    ///
    /// A provider's `Retry-After` wins over the backoff (it knows when its
    /// limit resets) but is still capped, so a hostile or confused header
    /// cannot park a turn for an hour. Otherwise `base * 2^(attempt-1)`,
    /// capped, with equal jitter: half of it fixed, half random, so retries
    /// from many clients spread out while never retrying immediately.
    pub fn delay_for(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_delay);
        }
        let exponent = attempt.saturating_sub(1).min(31);
        let backoff = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let half = backoff / 2;
        let jitter_nanos = u64::try_from((backoff - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=jitter_nanos))
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110).
/// A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // Some servers send fractional seconds; accept them rather than ignore the hint.
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses OpenAI's `retry-after-ms` header (milliseconds, possibly fractional).
pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let millis = value.trim().parse::<f64>().ok()?;
    if !millis.is_finite() || millis < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(millis / 1000.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };

    #[test]
    fn backoff_doubles_with_equal_jitter_and_is_capped() {
        for _ in 0..200 {
            for (attempt, full) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (4, 800),
                (5, 1000),
                (40, 1000),
            ] {
                let full = Duration::from_millis(full);
                let d = POLICY.delay_for(attempt, None);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        assert_eq!(POLICY.delay_for(1, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(
            POLICY.delay_for(3, Some(Duration::from_millis(250))),
            Duration::from_millis(250)
        );
        assert_eq!(
            POLICY.delay_for(1, Some(Duration::from_secs(3600))),
            POLICY.max_delay
        );
    }

    #[test]
    fn zero_base_delay_retries_immediately() {
        let policy = RetryPolicy {
            base_delay: Duration::ZERO,
            ..POLICY
        };
        assert_eq!(policy.delay_for(3, None), Duration::ZERO);
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after_ms("20"), Some(Duration::from_millis(20)));
        assert_eq!(parse_retry_after_ms("x"), None);
    }

    #[test]
    fn reads_the_provider_settings() {
        let config = ProviderConfig {
            max_retries: 7,
            retry_base_delay_ms: 10,
            retry_max_delay_ms: 20,
            ..ProviderConfig::default()
        };
        assert_eq!(
            RetryPolicy::from_provider(&config),
            RetryPolicy {
                max_retries: 7,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
            }
        );
        assert_eq!(RetryPolicy::default().max_retries, DEFAULT_MAX_RETRIES);
    }
}
