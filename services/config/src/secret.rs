//! A string that must never be logged or returned by an API (API keys, tokens).

use std::fmt;

/// Holds a secret value. `Debug` and `Display` print `[redacted]`; the only
/// way to read it is [`Secret::expose`], which makes every use greppable.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `candidate` equals the secret, compared in constant time: the
    /// time taken depends on the lengths only, never on where the two differ
    /// (auth tokens must not leak through response timing).
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = u64::from(a.len() != b.len());
        for i in 0..a.len().max(b.len()) {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            diff |= u64::from(x ^ y);
        }
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn matches_only_the_exact_value() {
        let s = Secret::new("token-abc");
        assert!(s.matches("token-abc"));
        for other in ["token-abd", "token-ab", "token-abcd", "", "TOKEN-ABC"] {
            assert!(!s.matches(other), "{other}");
        }
        assert!(Secret::new("").matches(""));
    }
}
