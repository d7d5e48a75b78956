//! Answers of peers that do not change between turns, kept briefly so a
//! turn does not ask again: how llm-proxy resolves a model (its provider,
//! context window, output cap) and tool-executor's tool list for a
//! workspace. Both follow from the peers' configuration, which changes only
//! when they restart; [`PEER_CACHE_TTL`] bounds how long a restarted peer's
//! new answer can go unseen. MCP tools are not cached: servers connect and
//! disconnect while sessions run.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a peer's answer is reused.
pub const PEER_CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept per cache; more (many workspaces or models at once) start
/// it afresh.
const MAX_ENTRIES: usize = 256;

/// A small map of answers that expire after a fixed time.
pub(crate) struct Expiring<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Expiring<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer stored for `key` unless it has expired.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    pub(crate) fn put(&self, key: K, value: V) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire() {
        let cache = Expiring::new(Duration::from_millis(30));
        cache.put("m", 1);
        assert_eq!(cache.get(&"m"), Some(1));
        assert_eq!(cache.get(&"other"), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"m"), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = Expiring::new(Duration::from_secs(60));
        for i in 0..(MAX_ENTRIES * 2) {
            cache.put(i, i);
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert_eq!(cache.get(&(MAX_ENTRIES * 2 - 1)), Some(MAX_ENTRIES * 2 - 1));
    }
}
