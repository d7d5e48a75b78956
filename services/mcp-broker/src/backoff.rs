//! How long to wait before reconnecting to a server whose connection failed
//! or died: exponential, capped, no jitter (each server has one supervisor
//! reconnecting it, so there is no herd of clients to spread out).

use std::time::Duration;

/// Wait before the first reconnect.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(500);
/// Longest wait between two attempts.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// Growth per consecutive failure.
pub const DEFAULT_FACTOR: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub factor: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: DEFAULT_INITIAL_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            factor: DEFAULT_FACTOR,
        }
    }
}

impl ReconnectPolicy {
    /// The wait after `failures` consecutive failed attempts (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1);
        let growth = self.factor.max(1).checked_pow(exponent).unwrap_or(u32::MAX);
        self.initial_delay
            .checked_mul(growth)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let policy = ReconnectPolicy::default();
        let delays: Vec<u64> = (1..=9)
            .map(|n| policy.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }

    #[test]
    fn never_overflows() {
        let policy = ReconnectPolicy::default();
        assert_eq!(policy.delay(u32::MAX), DEFAULT_MAX_DELAY);
        assert_eq!(policy.delay(0), DEFAULT_INITIAL_DELAY);
    }

    #[test]
    fn a_factor_of_one_is_a_constant_delay() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            factor: 1,
        };
        assert_eq!(policy.delay(7), Duration::from_secs(1));
    }
}
