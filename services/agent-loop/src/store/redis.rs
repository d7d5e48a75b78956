//! Redis backend: the file backend's records, in Redis, shared by every
//! agent-loop replica (SPEC §10: any replica can serve any session).
//!
//! Key layout, every key under the configured prefix `P` (`store.prefix`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:session:<id>` | list | the session's records as JSON, header first (the `.jsonl` lines) |
//! | `P:sessions` | sorted set | every session id, scored by its last update (ms, Redis clock) |
//! | `P:lease:<id>` | string | the token of the replica running a turn, with a TTL |
//! | `P:approvals:<id>` | hash | remembered "always" answers: approval key → `allow` / `reject` |
//!
//! Each record is one `RPUSHX`, atomic with the index update (a Lua script),
//! so history is append-only and a crash loses no completed record. A lease
//! is `SET NX PX ttl` with a random token; its holder renews it every third
//! of the TTL and releases it with scripts that first check the token, so a
//! replica never extends or frees another's lease. A replica that dies stops
//! renewing: its sessions are free again at most one TTL later.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};
use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    Lease, Record, SessionMeta, SessionPage, SessionStore, StoreError, StoredSession,
    check_session_id, cursor_after, parse_cursor, replay,
};

/// Each attempt to reach Redis gives up after this long.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// A command without an answer after this long fails (the store reports it
/// unavailable rather than hanging a turn).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection attempts per failed command, with exponential backoff.
const RECONNECT_RETRIES: usize = 3;
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// Sessions read from the index per round trip while paging past a cursor.
const INDEX_BATCH: usize = 100;

const ALLOW: &str = "allow";
const REJECT: &str = "reject";

/// Stores the header of a new session unless the id is taken.
/// KEYS: session list, index. ARGV: header JSON, id. Returns 1, or 0 if taken.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000)), ARGV[2])
return 1
";

/// Appends a record to an existing session and marks it updated.
/// KEYS: session list, index. ARGV: record JSON, id. Returns the new
/// length, or 0 when the session does not exist.
const APPEND: &str = r"
local n = redis.call('RPUSHX', KEYS[1], ARGV[1])
if n == 0 then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000)), ARGV[2])
return n
";

/// Extends a lease if (and only if) the caller still holds it.
/// KEYS: lease. ARGV: token, TTL in ms. Returns 1 if extended.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Frees a lease if (and only if) the caller still holds it.
/// KEYS: lease. ARGV: token. Returns 1 if freed.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Where and under which prefix a [`RedisStore`] keeps its data.
#[derive(Debug, Clone)]
pub struct RedisStoreOptions {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS.
    pub url: String,
    /// Every key starts with `<prefix>:`.
    pub prefix: String,
}

pub struct RedisStore {
    /// Multiplexed, cheap to clone, reconnects after failures.
    connection: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    /// Host and port, never the credentials: goes into error messages.
    server: String,
}

struct Keys {
    prefix: String,
}

impl Keys {
    fn session(&self, id: &str) -> String {
        format!("{}:session:{id}", self.prefix)
    }
    fn index(&self) -> String {
        format!("{}:sessions", self.prefix)
    }
    fn lease(&self, id: &str) -> String {
        format!("{}:lease:{id}", self.prefix)
    }
    fn approvals(&self, id: &str) -> String {
        format!("{}:approvals:{id}", self.prefix)
    }
}

struct Scripts {
    create: Script,
    append: Script,
    renew: Script,
    release: Script,
}

impl RedisStore {
    /// A store over the Redis at `options.url`. Connects lazily (the first
    /// command connects; [`SessionStore::check`] proves the server is
    /// there); must be called inside a Tokio runtime.
    pub fn open(options: &RedisStoreOptions) -> Result<Self, StoreError> {
        let client = Client::open(options.url.as_str()).map_err(|e| {
            StoreError::Backend(format!(
                "invalid Redis URL {}: {e}",
                without_credentials(&options.url)
            ))
        })?;
        let server = client.get_connection_info().addr().to_string();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Backend(
                "the Redis store must be opened inside a Tokio runtime".to_owned(),
            ));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Backend(format!("Redis at {server}: {e}")))?;
        Ok(Self {
            connection,
            keys: Keys {
                prefix: options.prefix.clone(),
            },
            scripts: Scripts {
                create: Script::new(CREATE),
                append: Script::new(APPEND),
                renew: Script::new(RENEW),
                release: Script::new(RELEASE),
            },
            server,
        })
    }

    fn error(&self, error: RedisError) -> StoreError {
        redis_error(&self.server, &error)
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The sessions after `after` (all when `None`), newest first, up to
    /// `limit + 1` of them (one more tells that another page exists).
    async fn index_page(
        &self,
        limit: usize,
        after: Option<&(i64, String)>,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let max = after.map_or_else(|| "+inf".to_owned(), |(ms, _)| ms.to_string());
        let mut found = Vec::new();
        // A session updated while we page through the index shifts the
        // others by one, so a batch may repeat the previous one's last id.
        let mut seen = HashSet::new();
        let mut offset = 0;
        loop {
            let batch: Vec<(String, f64)> = ::redis::cmd("ZREVRANGEBYSCORE")
                .arg(self.keys.index())
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(INDEX_BATCH)
                .query_async(&mut self.connection())
                .await
                .map_err(|e| self.error(e))?;
            let fetched = batch.len();
            // Ties on the score come in descending id order, like the file
            // store sorts; the cursor's own score may repeat, so compare
            // (score, id) pairs rather than scores alone.
            found.extend(
                batch
                    .into_iter()
                    .map(|(id, score)| (score_ms(score), id))
                    .filter(|(ms, id)| {
                        check_session_id(id).is_ok()
                            && after.is_none_or(|(a_ms, a_id)| (ms, id) < (a_ms, a_id))
                            && seen.insert(id.clone())
                    }),
            );
            if found.len() > limit || fetched < INDEX_BATCH {
                found.truncate(limit + 1);
                return Ok(found);
            }
            offset += fetched;
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, meta: &SessionMeta) -> Result<(), StoreError> {
        check_session_id(&meta.id)?;
        let header = to_json(&Record::Session(meta.clone()))?;
        let created: i64 = self
            .scripts
            .create
            .key(self.keys.session(&meta.id))
            .key(self.keys.index())
            .arg(header)
            .arg(&meta.id)
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        if created == 0 {
            return Err(StoreError::AlreadyExists(meta.id.clone()));
        }
        Ok(())
    }

    async fn append(&self, session_id: &str, record: &Record) -> Result<(), StoreError> {
        check_session_id(session_id)?;
        let length: i64 = self
            .scripts
            .append
            .key(self.keys.session(session_id))
            .key(self.keys.index())
            .arg(to_json(record)?)
            .arg(session_id)
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        if length == 0 {
            return Err(StoreError::NotFound(session_id.to_owned()));
        }
        Ok(())
    }

    async fn load(&self, session_id: &str) -> Result<StoredSession, StoreError> {
        check_session_id(session_id)?;
        // One transaction, so the records and the update time agree.
        let (raw, score): (Vec<Vec<u8>>, Option<f64>) = ::redis::pipe()
            .atomic()
            .cmd("LRANGE")
            .arg(self.keys.session(session_id))
            .arg(0)
            .arg(-1)
            .cmd("ZSCORE")
            .arg(self.keys.index())
            .arg(session_id)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        let (meta, records) = parse_records(session_id, &raw)?;
        let updated = score.map_or(meta.created_at_ms, score_ms);
        Ok(replay(meta, records, updated))
    }

    /// Pages are cut by (update time, id), so a page never repeats a session
    /// of an earlier one. A session updated between two page reads moves to
    /// the front: it is not listed again by later pages (nor, if it had not
    /// been listed yet, by this listing at all); every other session keeps
    /// its place.
    async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<SessionPage, StoreError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let limit = limit.max(1);
        let mut entries = self.index_page(limit, after.as_ref()).await?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        if entries.is_empty() {
            return Ok(SessionPage {
                sessions: Vec::new(),
                next_cursor: None,
            });
        }
        let mut read = ::redis::pipe();
        for (_, id) in &entries {
            read.cmd("LRANGE").arg(self.keys.session(id)).arg(0).arg(-1);
        }
        let logs: Vec<Vec<Vec<u8>>> = read
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        let mut sessions = Vec::with_capacity(entries.len());
        for ((updated, id), raw) in entries.iter().zip(&logs) {
            match parse_records(id, raw) {
                Ok((meta, records)) => sessions.push(replay(meta, records, *updated).summary),
                Err(e) => tracing::warn!(session = %id, error = %e, "skipping unreadable session"),
            }
        }
        let next_cursor = match (more, entries.last()) {
            (true, Some((ms, id))) => Some(cursor_after(*ms, id)),
            _ => None,
        };
        Ok(SessionPage {
            sessions,
            next_cursor,
        })
    }

    async fn try_lease(
        &self,
        session_id: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        check_session_id(session_id)?;
        let key = self.keys.lease(session_id);
        let token = uuid::Uuid::new_v4().to_string();
        let ttl = ttl.max(Duration::from_millis(3));
        let taken: Option<String> = ::redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        if taken.is_none() {
            return Ok(None);
        }
        let held = HeldLease {
            connection: self.connection(),
            server: self.server.clone(),
            session_id: session_id.to_owned(),
            key,
            token,
        };
        let lost = CancellationToken::new();
        let renewal = tokio::spawn(held.clone().renew_until_lost(
            self.scripts.renew.clone(),
            ttl,
            lost.clone(),
        ));
        let release = self.scripts.release.clone();
        Ok(Some(Lease::remote(
            move || -> BoxFuture<'static, ()> {
                renewal.abort();
                Box::pin(held.release(release))
            },
            lost,
        )))
    }

    async fn remember(&self, session_id: &str, key: &str, allow: bool) -> Result<(), StoreError> {
        check_session_id(session_id)?;
        let _: i64 = ::redis::cmd("HSET")
            .arg(self.keys.approvals(session_id))
            .arg(key)
            .arg(if allow { ALLOW } else { REJECT })
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn remembered(&self, session_id: &str) -> Result<HashMap<String, bool>, StoreError> {
        check_session_id(session_id)?;
        let stored: HashMap<String, String> = ::redis::cmd("HGETALL")
            .arg(self.keys.approvals(session_id))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        stored
            .into_iter()
            .map(|(key, answer)| match answer.as_str() {
                ALLOW => Ok((key, true)),
                REJECT => Ok((key, false)),
                other => Err(StoreError::Corrupt {
                    id: session_id.to_owned(),
                    reason: format!("remembered approval {key:?} is {other:?}"),
                }),
            })
            .collect()
    }

    async fn check(&self) -> Result<(), StoreError> {
        let _: String = ::redis::cmd("PING")
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

/// What a lease's renewal and release need, owned by their tasks.
#[derive(Clone)]
struct HeldLease {
    connection: ConnectionManager,
    server: String,
    session_id: String,
    key: String,
    token: String,
}

impl HeldLease {
    /// Extends the lease every third of its TTL until it is released (the
    /// task is aborted) or lost: Redis no longer has our token, or no
    /// renewal succeeded for a whole TTL (so it may have expired).
    async fn renew_until_lost(self, script: Script, ttl: Duration, lost: CancellationToken) {
        let period = ttl / 3;
        let mut last_renewed = Instant::now();
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let mut connection = self.connection.clone();
            let mut invocation = script.prepare_invoke();
            invocation.key(&self.key).arg(&self.token).arg(millis(ttl));
            let renewing = invocation.invoke_async::<i64>(&mut connection);
            match tokio::time::timeout(period, renewing).await {
                Ok(Ok(1)) => last_renewed = Instant::now(),
                Ok(Ok(_)) => {
                    tracing::warn!(session = %self.session_id, "the session's turn lease was taken over");
                    lost.cancel();
                    return;
                }
                Ok(Err(e)) if last_renewed.elapsed() < ttl => {
                    tracing::warn!(session = %self.session_id, error = %redis_error(&self.server, &e), "could not renew the turn lease; retrying");
                }
                Err(_) if last_renewed.elapsed() < ttl => {
                    tracing::warn!(session = %self.session_id, "renewing the turn lease timed out; retrying");
                }
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!(session = %self.session_id, "the session's turn lease expired: Redis was unreachable for its whole TTL");
                    lost.cancel();
                    return;
                }
            }
        }
    }

    async fn release(self, script: Script) {
        let mut connection = self.connection.clone();
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.key).arg(&self.token);
        let freed = invocation.invoke_async::<i64>(&mut connection).await;
        if let Err(e) = freed {
            tracing::warn!(
                session = %self.session_id,
                error = %redis_error(&self.server, &e),
                "could not release the turn lease; it expires with its TTL"
            );
        }
    }
}

/// Connection trouble is retryable ([`StoreError::Unavailable`]); anything
/// Redis answered with an error is not ([`StoreError::Backend`]).
fn redis_error(server: &str, error: &RedisError) -> StoreError {
    let message = format!("Redis at {server}: {error}");
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
    {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// Parses a session's records. Redis stores each record whole, so unlike a
/// file there is no torn tail to forgive: anything unreadable is corruption.
fn parse_records(id: &str, raw: &[Vec<u8>]) -> Result<(SessionMeta, Vec<Record>), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        id: id.to_owned(),
        reason,
    };
    let (first, rest) = raw
        .split_first()
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let meta = match serde_json::from_slice::<Record>(first) {
        Ok(Record::Session(meta)) => meta,
        Ok(_) => return Err(corrupt("first record is not the session header".into())),
        Err(e) => return Err(corrupt(format!("header: {e}"))),
    };
    let records = rest
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            serde_json::from_slice::<Record>(bytes)
                .map_err(|e| corrupt(format!("record {}: {e}", i + 2)))
        })
        .collect::<Result<_, _>>()?;
    Ok((meta, records))
}

fn to_json(record: &Record) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::Io(std::io::Error::other(e)))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Index scores are whole milliseconds, well within f64's exact range.
fn score_ms(score: f64) -> i64 {
    score as i64
}

/// `redis://user:secret@host/0` → `redis://host/0`, for messages.
fn without_credentials(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_messages() {
        assert_eq!(
            without_credentials("redis://:pw@cache:6379/0"),
            "redis://cache:6379/0"
        );
        assert_eq!(
            without_credentials("rediss://user:p@ss@cache"),
            "rediss://cache"
        );
        assert_eq!(without_credentials("redis://cache"), "redis://cache");
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password() {
        let options = RedisStoreOptions {
            url: "redis://:hunter2@cache:notaport".into(),
            prefix: "p".into(),
        };
        let Err(error) = RedisStore::open(&options) else {
            panic!("opened a bad URL");
        };
        let text = error.to_string();
        assert!(text.contains("invalid Redis URL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn tls_urls_open() {
        let options = RedisStoreOptions {
            url: "rediss://cache.example:6380/1".into(),
            prefix: "p".into(),
        };
        let store = RedisStore::open(&options).unwrap();
        assert_eq!(store.server, "cache.example:6380");
    }

    #[test]
    fn corrupt_records_are_named() {
        let header = to_json(&Record::Session(SessionMeta {
            id: "s".into(),
            created_at_ms: 1,
            work_dir: "/w".into(),
            model: String::new(),
            skills: vec![],
            approval: super::super::Approval::Ask,
            read_only: false,
            parent: None,
            agent: None,
            depth: 0,
        }))
        .unwrap();
        let raw = vec![header.into_bytes(), b"{\"type\":\"model\"".to_vec()];
        let error = parse_records("s", &raw).unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt { reason, .. } if reason.starts_with("record 2:")),
            "{error}"
        );
        assert!(matches!(
            parse_records("s", &[]),
            Err(StoreError::NotFound(_))
        ));
    }
}
