//! Fixed windows: time is cut into windows of one length aligned to the
//! Unix epoch (so a day window is a UTC day, a minute window a clock
//! minute). A window's counter lives under a key naming its index and
//! expires after the window ends; a refusal says how long until the next
//! window starts. Pure arithmetic, tested alone.
//!
//! A fixed window may let up to twice its limit through around a window
//! boundary (the end of one window and the start of the next); that is the
//! price of one counter per window (docs/security.md, "Limits").

use std::time::Duration;

/// One minute: the window of requests per minute.
pub const MINUTE: Duration = Duration::from_secs(60);
/// One UTC day: the window of sessions and tokens per day.
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A window length, at least one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    secs: u64,
}

impl Window {
    pub const fn new(length: Duration) -> Self {
        let secs = length.as_secs();
        Self {
            secs: if secs == 0 { 1 } else { secs },
        }
    }

    pub fn length(&self) -> Duration {
        Duration::from_secs(self.secs)
    }

    /// The index of the window holding `now` (since the epoch).
    pub fn index(&self, now: Duration) -> u64 {
        now.as_secs() / self.secs
    }

    /// How long from `now` until the next window starts (at least one
    /// second: a `Retry-After` of 0 would invite an immediate retry).
    pub fn remaining(&self, now: Duration) -> Duration {
        let end = (self.index(now) + 1).saturating_mul(self.secs);
        let left = Duration::from_secs(end).saturating_sub(now);
        left.max(Duration::from_secs(1))
    }

    /// How long a window's counter must live: past its end, with a margin
    /// for clocks of several processes that differ a little.
    pub fn key_ttl(&self) -> Duration {
        Duration::from_secs(self.secs + self.secs.min(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let minute = Window::new(MINUTE);
        assert_eq!(minute.index(secs(0)), 0);
        assert_eq!(minute.index(secs(59)), 0);
        assert_eq!(minute.index(secs(60)), 1);
        assert_eq!(minute.index(Duration::from_millis(119_999)), 1);
        let day = Window::new(DAY);
        // 2026-12-05T23:59:59Z and 2026-12-06T00:00:00Z.
        assert_eq!(
            day.index(secs(1_796_515_199)) + 1,
            day.index(secs(1_796_515_200))
        );
    }

    #[test]
    fn the_wait_runs_to_the_start_of_the_next_window() {
        let minute = Window::new(MINUTE);
        assert_eq!(minute.remaining(secs(60)), secs(60));
        assert_eq!(minute.remaining(secs(61)), secs(59));
        assert_eq!(
            minute.remaining(Duration::from_millis(119_500)),
            Duration::from_millis(500).max(secs(1))
        );
        assert_eq!(minute.remaining(secs(119)), secs(1));
        let day = Window::new(DAY);
        // 2026-12-05T18:00:00Z: six hours to midnight UTC.
        assert_eq!(day.remaining(secs(1_796_493_600)), secs(6 * 3600));
    }

    #[test]
    fn counters_outlive_their_window_and_a_zero_length_is_one_second() {
        assert_eq!(Window::new(MINUTE).key_ttl(), secs(120));
        assert_eq!(Window::new(DAY).key_ttl(), secs(86_460));
        let tiny = Window::new(Duration::ZERO);
        assert_eq!(tiny.length(), secs(1));
        assert_eq!(tiny.index(secs(5)), 5);
        assert_eq!(tiny.remaining(secs(5)), secs(1));
    }
}
