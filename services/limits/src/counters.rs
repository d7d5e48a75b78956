//! Where counts are kept: [`MemoryCounters`] for one process,
//! [`RedisCounters`] for a deployment whose gateways and agent-loop
//! replicas must share them. Each operation is one atomic step (a Lua
//! script in Redis), so two replicas counting at once never lose a count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use openheim_redis_client::{Failure, RedisConnection};
use redis::Script;
use tokio::time::Instant;

/// A counter store failed (Redis unreachable or refusing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("limit counters: {0}")]
pub struct CounterError(pub String);

/// Named integer counters that expire.
#[async_trait::async_trait]
pub trait Counters: Send + Sync + std::fmt::Debug {
    /// Adds `by` (may be negative) to `key` and returns the new value. A
    /// key that did not exist starts at 0 and expires after `ttl`; with
    /// `renew`, every call sets the expiry to `ttl` again.
    async fn add(
        &self,
        key: &str,
        by: i64,
        ttl: Duration,
        renew: bool,
    ) -> Result<i64, CounterError>;

    /// The value of `key` (0 when it does not exist).
    async fn get(&self, key: &str) -> Result<i64, CounterError>;

    /// Counts one more in `key` (as [`add`](Self::add) does) unless the
    /// count then passes `allowed`: `Ok(true)` when counted; `Ok(false)`
    /// when refused, with the one taken back, so a refusal uses up nothing.
    async fn add_one_within(
        &self,
        key: &str,
        allowed: u64,
        ttl: Duration,
        renew: bool,
    ) -> Result<bool, CounterError> {
        let count = self.add(key, 1, ttl, renew).await?;
        if u64::try_from(count).unwrap_or(0) <= allowed {
            return Ok(true);
        }
        if let Err(error) = self.add(key, -1, ttl, renew).await {
            tracing::debug!(%error, "a refused count was not taken back");
        }
        Ok(false)
    }
}

/// Counters of this process.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    entries: Mutex<HashMap<String, (i64, Instant)>>,
}

impl MemoryCounters {
    fn with_entries<T>(&self, f: impl FnOnce(&mut HashMap<String, (i64, Instant)>) -> T) -> T {
        let mut entries = match self.entries.lock() {
            Ok(entries) => entries,
            // A panic while counting leaves the map usable.
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        entries.retain(|_, (_, expires)| *expires > now);
        f(&mut entries)
    }
}

#[async_trait::async_trait]
impl Counters for MemoryCounters {
    async fn add(
        &self,
        key: &str,
        by: i64,
        ttl: Duration,
        renew: bool,
    ) -> Result<i64, CounterError> {
        Ok(self.with_entries(|entries| {
            let expires = Instant::now() + ttl;
            let entry = entries.entry(key.to_owned()).or_insert((0, expires));
            entry.0 = entry.0.saturating_add(by);
            if renew {
                entry.1 = expires;
            }
            entry.0
        }))
    }

    async fn get(&self, key: &str) -> Result<i64, CounterError> {
        Ok(self.with_entries(|entries| entries.get(key).map_or(0, |(value, _)| *value)))
    }
}

/// INCRBY, then an expiry for a new key (or always, to renew).
const ADD: &str = r"
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[3] == '1' or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
";

/// How long a counter command is sent again across a Redis reconnect.
const RETRY_WINDOW: Duration = Duration::from_millis(500);

/// Counters in Redis, shared by every process of a deployment. Keys start
/// with the configured prefix.
#[derive(Debug)]
pub struct RedisCounters {
    connection: RedisConnection,
    add: Script,
}

impl RedisCounters {
    pub fn new(connection: RedisConnection) -> Self {
        Self {
            connection,
            add: Script::new(ADD),
        }
    }

    fn error(failure: Failure) -> CounterError {
        match failure {
            Failure::Unavailable(message) | Failure::Refused(message) => CounterError(message),
        }
    }
}

#[async_trait::async_trait]
impl Counters for RedisCounters {
    async fn add(
        &self,
        key: &str,
        by: i64,
        ttl: Duration,
        renew: bool,
    ) -> Result<i64, CounterError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        // Not sent again: a second INCRBY after a lost answer would count
        // twice.
        let mut connection = self.connection.manager();
        self.add
            .key(key)
            .arg(by)
            .arg(ttl_ms)
            .arg(if renew { "1" } else { "0" })
            .invoke_async(&mut connection)
            .await
            .map_err(|e| Self::error(self.connection.failure(&e)))
    }

    async fn get(&self, key: &str) -> Result<i64, CounterError> {
        let value: Option<i64> = self
            .connection
            .retrying(RETRY_WINDOW, |mut c, _| {
                let key = key.to_owned();
                async move { redis::cmd("GET").arg(key).query_async(&mut c).await }
            })
            .await
            .map_err(Self::error)?;
        Ok(value.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn counts_and_expires(counters: &dyn Counters, key: &str) {
        let ttl = Duration::from_millis(300);
        assert_eq!(counters.get(key).await.unwrap(), 0);
        assert_eq!(counters.add(key, 2, ttl, false).await.unwrap(), 2);
        assert_eq!(counters.add(key, -1, ttl, false).await.unwrap(), 1);
        assert_eq!(counters.get(key).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(counters.get(key).await.unwrap(), 0, "expired");
        // Renewed on every call, a counter lives as long as it is used.
        for _ in 0..3 {
            counters.add(key, 1, ttl, true).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(counters.get(key).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn memory_counters_count_and_expire() {
        counts_and_expires(&MemoryCounters::default(), "k").await;
    }

    #[tokio::test]
    async fn a_count_past_the_limit_is_refused_and_taken_back() {
        let counters = MemoryCounters::default();
        let ttl = Duration::from_secs(60);
        for _ in 0..2 {
            assert!(counters.add_one_within("k", 2, ttl, false).await.unwrap());
        }
        assert!(!counters.add_one_within("k", 2, ttl, false).await.unwrap());
        assert!(!counters.add_one_within("k", 2, ttl, false).await.unwrap());
        assert_eq!(counters.get("k").await.unwrap(), 2);
        assert!(
            !counters
                .add_one_within("none", 0, ttl, false)
                .await
                .unwrap()
        );
        assert_eq!(counters.get("none").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn redis_counters_count_and_expire() {
        let server = openheim_test_redis::RedisServer::start();
        let connection = RedisConnection::open(server.url()).unwrap();
        let counters = RedisCounters::new(connection);
        counts_and_expires(&counters, &format!("{}:k", server.prefix())).await;
    }
}
