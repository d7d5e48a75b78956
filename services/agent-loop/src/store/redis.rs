//! Redis backend: the file backend's records, in Redis, shared by every
//! agent-loop replica (docs/deployment.md: any replica can serve any
//! session).
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
//! is `SET NX PX ttl` with a random token; its holder renews it every fifth
//! of the TTL and releases it with scripts that first check the token, so a
//! replica never extends or frees another's lease. A replica that dies stops
//! renewing: its sessions are free again at most one TTL later. Records
//! written while the store holds the session's lease are fenced: the append
//! script refuses them once another holder has the lease, so a turn whose
//! lease lapsed (Redis out of reach for a whole TTL) cannot interleave its
//! records with the next holder's.
//!
//! Redis going away (a restart, a failover, a network cut) costs no request
//! and no record: every command that fails for want of a connection is sent
//! again, with backoff, until it succeeds or the retry window
//! ([`RedisStoreOptions::retry_window`]) has passed. Commands are written so
//! that sending one twice (the first reached Redis but its answer was lost)
//! does what sending it once does: an append whose record is already the
//! session's last is not repeated, creating a session whose identical header
//! is stored succeeds, and taking a lease we already hold succeeds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;

use ::redis::aio::ConnectionManager;
use ::redis::{Cmd, FromRedisValue, RedisError, Script};
use openheim_redis_client::{Failure, OpenError, RedisConnection};

use super::record_cache::{Added, RecordCache, locked};
use super::redis_lease::{HeldLease, LeaseScripts};
use super::{
    Lease, Record, SessionMeta, SessionPage, SessionStore, StoreError, StoredSession,
    check_session_id, cursor_after, parse_cursor, replay,
};

/// How long a command is retried while Redis cannot be reached, unless the
/// options say otherwise.
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(10);
/// Sessions read from the index per round trip while paging past a cursor.
const INDEX_BATCH: usize = 100;

const ALLOW: &str = "allow";
const REJECT: &str = "reject";

/// Stores the header of a new session unless the id is taken.
/// KEYS: session list, index. ARGV: header JSON, id, "1" when this is a
/// retry. Returns 1, or 0 if taken. On a retry, finding the very same
/// header means the attempt whose answer was lost stored it: the header
/// holds the session's random id and creation time.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[3] == '1' and redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then return 1 end
  return 0
end
local t = redis.call('TIME')
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000)), ARGV[2])
return 1
";

/// Appends a record to an existing session and marks it updated.
/// KEYS: session list, index, lease. ARGV: record JSON, id, "1" when this
/// is a retry, the caller's lease token ("" when it holds none). Returns the
/// new length, 0 when the session does not exist, -1 when another holder
/// has the session's lease (the caller's lapsed: fenced off). A retry whose
/// record is already the last one was written by the attempt whose answer
/// was lost: it is not written twice.
const APPEND: &str = r"
if ARGV[4] ~= '' then
  local holder = redis.call('GET', KEYS[3])
  if holder and holder ~= ARGV[4] then return -1 end
end
if ARGV[3] == '1' and redis.call('LINDEX', KEYS[1], -1) == ARGV[1] then
  return redis.call('LLEN', KEYS[1])
end
local n = redis.call('RPUSHX', KEYS[1], ARGV[1])
if n == 0 then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000)), ARGV[2])
return n
";

/// Where and under which prefix a [`RedisStore`] keeps its data.
#[derive(Debug, Clone)]
pub struct RedisStoreOptions {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS.
    pub url: String,
    /// Every key starts with `<prefix>:`.
    pub prefix: String,
    /// How long a command is sent again while Redis cannot be reached
    /// before the store reports it unavailable. Keep it under the lease TTL:
    /// a turn's write that waits longer could land after another replica
    /// took the session over.
    pub retry_window: Duration,
}

impl RedisStoreOptions {
    /// Options with the default retry window.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            retry_window: DEFAULT_RETRY_WINDOW,
        }
    }
}

pub struct RedisStore {
    /// Multiplexed, cheap to clone, reconnects after failures.
    connection: RedisConnection,
    keys: Keys,
    scripts: Scripts,
    retry_window: Duration,
    /// Tokens of the leases this store holds, by session: a turn's appends
    /// are fenced with them.
    held: HeldTokens,
    /// Sessions read by earlier loads (`record_cache.rs`).
    records: Mutex<RecordCache>,
}

/// Session id → token of each lease a store holds; shared with the leases,
/// which take their entry out when they are released.
pub(super) type HeldTokens = Arc<Mutex<HashMap<String, String>>>;

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
    lease: LeaseScripts,
}

impl RedisStore {
    /// A store over the Redis at `options.url`. Connects lazily (the first
    /// command connects; [`SessionStore::check`] proves the server is
    /// there); must be called inside a Tokio runtime.
    pub fn open(options: &RedisStoreOptions) -> Result<Self, StoreError> {
        let connection = RedisConnection::open(&options.url).map_err(|e| match e {
            OpenError::NoRuntime => {
                StoreError::Backend("the Redis store must be opened inside a Tokio runtime".into())
            }
            other => StoreError::Backend(other.to_string()),
        })?;
        Ok(Self {
            connection,
            keys: Keys {
                prefix: options.prefix.clone(),
            },
            scripts: Scripts {
                create: Script::new(CREATE),
                append: Script::new(APPEND),
                lease: LeaseScripts::new(),
            },
            retry_window: options.retry_window,
            held: HeldTokens::default(),
            records: Mutex::default(),
        })
    }

    fn error(&self, error: RedisError) -> StoreError {
        store_error(self.connection.failure(&error))
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.manager()
    }

    fn retry(&self) -> Retry {
        Retry {
            connection: self.connection.clone(),
            window: self.retry_window,
        }
    }

    /// Runs one command (`op` sends it) and, while Redis cannot be reached,
    /// sends it again until it succeeds or the retry window has passed.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnMut(ConnectionManager, bool) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.retry().run(op).await
    }

    /// The length of session `id`'s list, its items from index `from` on
    /// and its update time, in one transaction so they agree.
    async fn read_from(
        &self,
        id: &str,
        from: u64,
    ) -> Result<(u64, Vec<Vec<u8>>, Option<f64>), StoreError> {
        let mut read = ::redis::pipe();
        read.atomic()
            .cmd("LLEN")
            .arg(self.keys.session(id))
            .cmd("LRANGE")
            .arg(self.keys.session(id))
            .arg(from)
            .arg(-1)
            .cmd("ZSCORE")
            .arg(self.keys.index())
            .arg(id);
        self.run(move |mut connection, _| {
            let read = read.clone();
            async move { read.query_async(&mut connection).await }
        })
        .await
    }

    /// Sends `command` until it succeeds or the retry window has passed; for
    /// commands that do the same when sent twice.
    async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, StoreError> {
        self.run(move |mut connection, _| {
            let command = command.clone();
            async move { command.query_async(&mut connection).await }
        })
        .await
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
            let mut command = ::redis::cmd("ZREVRANGEBYSCORE");
            command
                .arg(self.keys.index())
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(INDEX_BATCH);
            let batch: Vec<(String, f64)> = self.query(&command).await?;
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

/// What sending a command again needs; owned, so a lease's tasks carry it.
#[derive(Clone)]
pub(super) struct Retry {
    pub(super) connection: RedisConnection,
    pub(super) window: Duration,
}

impl Retry {
    /// Runs `op` (given a connection and whether this is a retry) until it
    /// succeeds, fails for a reason other than the connection, or the window
    /// has passed ([`RedisConnection::retrying`]).
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnMut(ConnectionManager, bool) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.connection
            .retrying(self.window, op)
            .await
            .map_err(store_error)
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, meta: &SessionMeta) -> Result<(), StoreError> {
        check_session_id(&meta.id)?;
        let header = to_json(&Record::Session(meta.clone()))?;
        let (session, index) = (self.keys.session(&meta.id), self.keys.index());
        let script = &self.scripts.create;
        let created: i64 = self
            .run(move |mut connection, retrying| {
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(&session)
                    .key(&index)
                    .arg(&header)
                    .arg(&meta.id)
                    .arg(if retrying { "1" } else { "0" });
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        if created == 0 {
            return Err(StoreError::AlreadyExists(meta.id.clone()));
        }
        Ok(())
    }

    async fn append(&self, session_id: &str, record: &Record) -> Result<(), StoreError> {
        check_session_id(session_id)?;
        let json = to_json(record)?;
        let (session, index) = (self.keys.session(session_id), self.keys.index());
        let lease = self.keys.lease(session_id);
        // Written while this store holds the session's lease (a turn's
        // records): only while no other holder has it.
        let fence = self
            .held
            .lock()
            .ok()
            .and_then(|held| held.get(session_id).cloned())
            .unwrap_or_default();
        let script = &self.scripts.append;
        let length: i64 = self
            .run(move |mut connection, retrying| {
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(&session)
                    .key(&index)
                    .key(&lease)
                    .arg(&json)
                    .arg(session_id)
                    .arg(if retrying { "1" } else { "0" })
                    .arg(&fence);
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        match length {
            0 => Err(StoreError::NotFound(session_id.to_owned())),
            -1 => Err(StoreError::Fenced(session_id.to_owned())),
            _ => Ok(()),
        }
    }

    /// Reads only the records appended since this store last loaded the
    /// session (`record_cache.rs`); a list that shrank is read whole.
    async fn load(&self, session_id: &str) -> Result<StoredSession, StoreError> {
        check_session_id(session_id)?;
        let known = locked(&self.records)?.known(session_id, 0, u64::MAX);
        let from = known.map_or(0, |k| k.position);
        let (len, raw, score) = self.read_from(session_id, from).await?;
        if len == 0 {
            return Err(StoreError::NotFound(session_id.to_owned()));
        }
        let updated = |meta: &SessionMeta| score.map_or(meta.created_at_ms, score_ms);
        if let Some(known) = known.filter(|k| len >= k.position) {
            let added = parse_records(session_id, &raw, known.lines)?;
            if let Some((meta, records)) = locked(&self.records)?.extend(session_id, &known, added)
            {
                let at = updated(&meta);
                return Ok(replay(meta, records, at));
            }
        }
        let raw = if from == 0 {
            raw
        } else {
            self.read_from(session_id, 0).await?.1
        };
        let (meta, added) = parse_whole(session_id, &raw)?;
        let records = locked(&self.records)?.insert(session_id, 0, &meta, added);
        let at = updated(&meta);
        Ok(replay(meta, records, at))
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
        let logs: Vec<Vec<Vec<u8>>> = self
            .run(move |mut connection, _| {
                let read = read.clone();
                async move { read.query_async(&mut connection).await }
            })
            .await?;
        let mut sessions = Vec::with_capacity(entries.len());
        for ((updated, id), raw) in entries.iter().zip(&logs) {
            match parse_whole(id, raw) {
                Ok((meta, added)) => sessions.push(replay(meta, added.records, *updated).summary),
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

    /// One transaction: the log, its index entry and its approvals go
    /// together.
    async fn delete(&self, session_id: &str) -> Result<(), StoreError> {
        check_session_id(session_id)?;
        let mut delete = ::redis::pipe();
        delete
            .atomic()
            .cmd("DEL")
            .arg(self.keys.session(session_id))
            .cmd("ZREM")
            .arg(self.keys.index())
            .arg(session_id)
            .ignore()
            .cmd("DEL")
            .arg(self.keys.approvals(session_id))
            .ignore();
        // A retry after a lost answer may find the session already gone.
        let retried = std::sync::atomic::AtomicBool::new(false);
        let (removed,): (i64,) = self
            .run(|mut connection, retrying| {
                retried.fetch_or(retrying, std::sync::atomic::Ordering::Relaxed);
                let delete = delete.clone();
                async move { delete.query_async(&mut connection).await }
            })
            .await?;
        if removed == 0 && !retried.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::NotFound(session_id.to_owned()));
        }
        Ok(())
    }

    async fn try_lease(
        &self,
        session_id: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        check_session_id(session_id)?;
        let held = HeldLease {
            retry: self.retry(),
            session_id: session_id.to_owned(),
            key: self.keys.lease(session_id),
            token: uuid::Uuid::new_v4().to_string(),
            ttl: ttl.max(Duration::from_millis(5)),
            held: Arc::clone(&self.held),
        };
        held.acquire(&self.scripts.lease).await
    }

    async fn busy_for(&self, session_id: &str) -> Result<Option<Duration>, StoreError> {
        check_session_id(session_id)?;
        let mut command = ::redis::cmd("PTTL");
        command.arg(self.keys.lease(session_id));
        let ms: i64 = self.query(&command).await?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    async fn remember(&self, session_id: &str, key: &str, allow: bool) -> Result<(), StoreError> {
        check_session_id(session_id)?;
        let mut command = ::redis::cmd("HSET");
        command
            .arg(self.keys.approvals(session_id))
            .arg(key)
            .arg(if allow { ALLOW } else { REJECT });
        let _: i64 = self.query(&command).await?;
        Ok(())
    }

    async fn remembered(&self, session_id: &str) -> Result<HashMap<String, bool>, StoreError> {
        check_session_id(session_id)?;
        let mut command = ::redis::cmd("HGETALL");
        command.arg(self.keys.approvals(session_id));
        let stored: HashMap<String, String> = self.query(&command).await?;
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

    /// One attempt, no retries: a service checks its store at startup and
    /// should fail at once when it is not there.
    async fn check(&self) -> Result<(), StoreError> {
        let _: String = ::redis::cmd("PING")
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

/// Connection trouble is retryable ([`StoreError::Unavailable`]); anything
/// Redis answered with an error is not ([`StoreError::Backend`]).
pub(super) fn store_error(failure: Failure) -> StoreError {
    match failure {
        Failure::Unavailable(message) => StoreError::Unavailable(message),
        Failure::Refused(message) => StoreError::Backend(message),
    }
}

fn corrupt(id: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        reason,
    }
}

/// A session's first item, its header.
fn parse_header(id: &str, first: &[u8]) -> Result<SessionMeta, StoreError> {
    match serde_json::from_slice::<Record>(first) {
        Ok(Record::Session(meta)) => Ok(meta),
        Ok(_) => Err(corrupt(id, "first record is not the session header".into())),
        Err(e) => Err(corrupt(id, format!("header: {e}"))),
    }
}

/// Parses items of a session's list that follow `before` others. Redis
/// stores each record whole, so unlike a file there is no torn tail to
/// forgive: anything unreadable is corruption.
fn parse_records(id: &str, raw: &[Vec<u8>], before: usize) -> Result<Added, StoreError> {
    let records = raw
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            serde_json::from_slice::<Record>(bytes)
                .map_err(|e| corrupt(id, format!("record {}: {e}", before + i + 1)))
        })
        .collect::<Result<_, _>>()?;
    Ok(Added {
        records,
        advance: raw.len() as u64,
        lines: before + raw.len(),
        weight: raw.iter().map(|r| r.len() as u64).sum(),
        tail: None,
    })
}

/// A session's whole list: its header and the records after it.
fn parse_whole(id: &str, raw: &[Vec<u8>]) -> Result<(SessionMeta, Added), StoreError> {
    let (first, rest) = raw
        .split_first()
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let meta = parse_header(id, first)?;
    let mut added = parse_records(id, rest, 1)?;
    added.advance += 1;
    added.weight += first.len() as u64;
    Ok((meta, added))
}

fn to_json(record: &Record) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::Io(std::io::Error::other(e)))
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Index scores are whole milliseconds, well within f64's exact range.
fn score_ms(score: f64) -> i64 {
    score as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password() {
        let options = RedisStoreOptions::new("redis://:hunter2@cache:notaport", "p");
        let Err(error) = RedisStore::open(&options) else {
            panic!("opened a bad URL");
        };
        let text = error.to_string();
        assert!(text.contains("invalid Redis URL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn tls_urls_open() {
        let options = RedisStoreOptions::new("rediss://cache.example:6380/1", "p");
        let store = RedisStore::open(&options).unwrap();
        assert_eq!(store.connection.server(), "cache.example:6380");
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
            owner: String::new(),
        }))
        .unwrap();
        let raw = vec![header.into_bytes(), b"{\"type\":\"model\"".to_vec()];
        let error = parse_whole("s", &raw).unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt { reason, .. } if reason.starts_with("record 2:")),
            "{error}"
        );
        assert!(matches!(
            parse_whole("s", &[]),
            Err(StoreError::NotFound(_))
        ));
    }
}
