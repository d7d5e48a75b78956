//! Session persistence: the [`SessionStore`] trait every backend implements,
//! and the stored record format (stable, human-readable JSON).
//!
//! Invariants: history is append-only (a message, once stored, is never
//! rewritten); every message is stored as soon as it is complete; only one
//! turn per session runs at a time, enforced by a lease from the store.
//!
//! Backends: [`FileStore`] (JSON lines under `<data_dir>/history`, one
//! agent-loop process) and [`RedisStore`] (the same records in Redis, shared
//! by every agent-loop replica).

mod files;
mod log_cache;
mod record;
mod record_cache;
mod redis;
mod redis_lease;

use std::collections::HashMap;
use std::time::Duration;

pub use files::FileStore;
pub use record::{StoredBlock, StoredImage, StoredMessage};
pub use redis::{DEFAULT_RETRY_WINDOW, RedisStore, RedisStoreOptions};

use futures::future::BoxFuture;
use openheim_proto::common::v1::Usage;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// How tool calls that need approval are handled in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    Ask,
    Auto,
    Deny,
}

/// What a session is, independent of its messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub id: String,
    pub created_at_ms: i64,
    pub work_dir: String,
    /// "" = the proxy's default model.
    pub model: String,
    pub skills: Vec<String>,
    #[serde(default)]
    pub approval: Approval,
    /// Only read-only tools are offered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// A sub-agent's session: where it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// The sub-agent profile the session runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRun>,
    /// 0 for a user's session; the parent's plus one for a sub-agent's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
    /// The user the session belongs to; "" = the local user (and every
    /// session stored before owners were recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The parent of a sub-agent's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentRef {
    pub session_id: String,
    pub tool_call_id: String,
}

/// A sub-agent profile as its session runs it (a copy, so every replica
/// runs the session's turns alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentRun {
    pub name: String,
    /// Replaces `system.md`; "" = `system.md`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity: String,
    /// Only these tools are offered; `None` = no restriction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
}

/// A sub-agent session started by one of a session's turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildRef {
    pub session_id: String,
    pub tool_call_id: String,
    /// The profile; "" = general-purpose.
    #[serde(default)]
    pub agent: String,
    pub created_at_ms: i64,
}

/// A session as listed: its metadata plus what is derived from its log.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub meta: SessionMeta,
    pub title: String,
    pub updated_at_ms: i64,
    pub message_count: u64,
    /// Totals over the session's LLM calls ([`Record::Usage`]).
    pub usage: Usage,
    pub llm_calls: u64,
}

/// A session with its full history.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub summary: SessionSummary,
    pub messages: Vec<StoredMessage>,
    /// Sub-agent sessions its turns started, oldest first.
    pub children: Vec<ChildRef>,
    /// The latest compaction: what the model sees in place of the first
    /// `covers` messages.
    pub compaction: Option<Compaction>,
}

/// The older part of a conversation, summarised (docs/context.md). The
/// messages it covers stay stored; the model is sent `text` in their
/// place. A later compaction covers at least as much (its summary was
/// written from this one), so only the latest counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compaction {
    /// How many messages from the start of the history the summary
    /// replaces.
    pub covers: u64,
    pub text: String,
    /// Who wrote it: `provider/model`.
    #[serde(default)]
    pub model: String,
    /// Estimated tokens of the conversation sent before and after it.
    #[serde(default)]
    pub tokens_before: u64,
    #[serde(default)]
    pub tokens_after: u64,
}

/// One line of a session log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// Always the first record.
    Session(SessionMeta),
    Message {
        at_ms: i64,
        message: StoredMessage,
    },
    /// The session's model was switched.
    Model {
        at_ms: i64,
        model: String,
    },
    /// The session's mode was switched: how its tool calls are approved and
    /// whether only read-only tools are offered.
    Mode {
        at_ms: i64,
        approval: Approval,
        #[serde(default)]
        read_only: bool,
    },
    /// The session's skills were replaced by this list.
    Skills {
        at_ms: i64,
        skills: Vec<String>,
    },
    /// The older part of the conversation was summarised.
    Compaction {
        at_ms: i64,
        #[serde(flatten)]
        compaction: Compaction,
    },
    /// A turn of the session started a sub-agent in its own session.
    Child(ChildRef),
    /// What one LLM call used and cost.
    Usage {
        at_ms: i64,
        #[serde(default)]
        provider: String,
        #[serde(default)]
        model: String,
        usage: StoredUsage,
    },
}

/// Tokens and cost of one LLM call as stored (the wire's `Usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoredUsage {
    #[serde(default)]
    pub input: u64,
    #[serde(default)]
    pub output: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cache_read: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cache_write: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub reasoning: u64,
    /// Picodollars; absent = unknown (a price was missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_pico_usd: Option<u64>,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl StoredUsage {
    pub fn from_wire(usage: &Usage) -> Self {
        Self {
            input: usage.input_tokens,
            output: usage.output_tokens,
            cache_read: usage.cache_read_tokens,
            cache_write: usage.cache_write_tokens,
            reasoning: usage.reasoning_tokens,
            cost_pico_usd: usage.cost_pico_usd,
        }
    }

    pub fn to_wire(self) -> Usage {
        Usage {
            input_tokens: self.input,
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            reasoning_tokens: self.reasoning,
            cost_pico_usd: self.cost_pico_usd,
        }
    }
}

/// A page of sessions, newest first.
#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<SessionSummary>,
    /// Opaque cursor of the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session {0:?} not found")]
    NotFound(String),
    #[error("session {0:?} already exists")]
    AlreadyExists(String),
    #[error("invalid session id {0:?}")]
    InvalidId(String),
    #[error("invalid cursor {0:?}")]
    InvalidCursor(String),
    #[error("session {id:?} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("session store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The store's server cannot be reached (refused, dropped, timed out):
    /// worth retrying later.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store's server refused a command (e.g. the key prefix holds data
    /// of another kind): retrying does not help.
    #[error("session store error: {0}")]
    Backend(String),
    /// A turn's write after its lease passed to another holder (it could
    /// not be renewed in time): refused, so two turns never interleave
    /// their records.
    #[error("session {0:?} was taken over by another turn: this turn's lease had lapsed")]
    Fenced(String),
}

impl StoreError {
    /// Whether the same call may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Io(_) => true,
            Self::NotFound(_)
            | Self::AlreadyExists(_)
            | Self::InvalidId(_)
            | Self::InvalidCursor(_)
            | Self::Corrupt { .. }
            | Self::Backend(_)
            | Self::Fenced(_) => false,
        }
    }
}

/// Held while a turn runs. Give it back with [`Lease::release`]; a lease
/// that is only dropped is released too (in the background for a remote
/// store).
pub struct Lease {
    release: Option<Release>,
    /// Cancelled by the store when it learns the lease is no longer held
    /// (it expired because it could not be renewed in time).
    lost: CancellationToken,
}

enum Release {
    /// Done at once: an in-process lease table.
    Local(Box<dyn FnOnce() + Send + Sync>),
    /// A round trip to the store's server.
    Remote(Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send + Sync>),
}

impl Lease {
    /// A lease of an in-process table, released by `release`; never lost.
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            release: Some(Release::Local(Box::new(release))),
            lost: CancellationToken::new(),
        }
    }

    /// A lease held on a server: `release` gives it back; the store cancels
    /// `lost` if the lease expires while held.
    pub fn remote(
        release: impl FnOnce() -> BoxFuture<'static, ()> + Send + Sync + 'static,
        lost: CancellationToken,
    ) -> Self {
        Self {
            release: Some(Release::Remote(Box::new(release))),
            lost,
        }
    }

    /// Gives the lease back and waits until the store has it.
    pub async fn release(mut self) {
        match self.release.take() {
            Some(Release::Local(release)) => release(),
            Some(Release::Remote(release)) => release().await,
            None => {}
        }
    }

    /// Resolves if the lease is lost while held; pending forever otherwise.
    pub async fn lost(&self) {
        self.lost.cancelled().await;
    }

    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self.release.take() {
            Some(Release::Local(release)) => release(),
            Some(Release::Remote(release)) => {
                let releasing = release();
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn(releasing)),
                    Err(_) => tracing::warn!(
                        "a session lease was dropped outside a runtime; it expires with its TTL"
                    ),
                }
            }
            None => {}
        }
    }
}

/// Where sessions live. Implementations: [`FileStore`] (default) and
/// [`RedisStore`] (distributed); both keep the same records.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session's header; fails if the id is taken.
    async fn create(&self, meta: &SessionMeta) -> Result<(), StoreError>;
    /// Appends one record durably before returning.
    async fn append(&self, session_id: &str, record: &Record) -> Result<(), StoreError>;
    async fn load(&self, session_id: &str) -> Result<StoredSession, StoreError>;
    /// Sessions by last update, newest first (ties: greater id first).
    async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<SessionPage, StoreError>;
    /// Removes the session's history and remembered approvals; `NotFound`
    /// when there is no such session. The caller holds its lease.
    async fn delete(&self, session_id: &str) -> Result<(), StoreError>;
    /// Takes the session's turn lease, or `None` when another holder has it.
    /// `ttl` bounds how long a crashed holder can block the session.
    async fn try_lease(&self, session_id: &str, ttl: Duration)
    -> Result<Option<Lease>, StoreError>;
    /// How long the session's lease may still be held by its current holder
    /// (at most: a live holder renews it, a finished one frees it sooner);
    /// `None` when the store cannot tell. Told to callers refused as busy,
    /// so they know when to try again.
    async fn busy_for(&self, session_id: &str) -> Result<Option<Duration>, StoreError> {
        check_session_id(session_id)?;
        Ok(None)
    }
    /// Remembers an "always" answer of the permission gate for the session:
    /// `allow` true = always allow, false = always reject; `key` is the
    /// gate's approval key.
    async fn remember(&self, session_id: &str, key: &str, allow: bool) -> Result<(), StoreError>;
    /// The session's remembered "always" answers, by approval key.
    async fn remembered(&self, session_id: &str) -> Result<HashMap<String, bool>, StoreError>;
    /// Checks that the store can be used (reachable, writable), so a bad
    /// store fails a service at startup rather than at its first request.
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Session ids are generated by us; anything else is refused before it can
/// reach a file name or a key.
pub fn check_session_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.chars().take(80).collect()))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Title of a session: the start of its first user message.
pub fn title_of(messages: &[StoredMessage]) -> String {
    const MAX_CHARS: usize = 80;
    let first = messages.iter().find_map(|m| match m {
        StoredMessage::User { content } => content.iter().find_map(|b| match b {
            StoredBlock::Text { text } => Some(text.as_str()),
            _ => None,
        }),
        _ => None,
    });
    let line = first.unwrap_or("").lines().next().unwrap_or("").trim();
    if line.chars().count() > MAX_CHARS {
        let mut t: String = line.chars().take(MAX_CHARS - 1).collect();
        t.push('…');
        t
    } else {
        line.to_owned()
    }
}

/// Folds a session's records (after its header) into the session: messages
/// in order, the latest model, mode and skills, and the usage totals.
pub(crate) fn replay(meta: SessionMeta, records: Vec<Record>, updated_at_ms: i64) -> StoredSession {
    let mut meta = meta;
    let mut messages = Vec::new();
    let mut compaction = None;
    let mut children = Vec::new();
    let mut usage = Usage::zero();
    let mut llm_calls = 0;
    for record in records {
        match record {
            Record::Message { message, .. } => messages.push(message),
            // A summary can only cover messages stored before it.
            Record::Compaction { compaction: c, .. } => {
                let covers = c.covers.min(messages.len() as u64);
                compaction = Some(Compaction { covers, ..c });
            }
            Record::Usage { usage: call, .. } => {
                usage.add(&call.to_wire());
                llm_calls += 1;
            }
            Record::Model { model, .. } => meta.model = model,
            Record::Mode {
                approval,
                read_only,
                ..
            } => {
                meta.approval = approval;
                meta.read_only = read_only;
            }
            Record::Skills { skills, .. } => meta.skills = skills,
            Record::Child(child) => children.push(child),
            Record::Session(_) => {}
        }
    }
    StoredSession {
        summary: SessionSummary {
            title: title_of(&messages),
            updated_at_ms,
            message_count: messages.len() as u64,
            usage,
            llm_calls,
            meta,
        },
        messages,
        compaction,
        children,
    }
}

/// A listing cursor: `<updated_at_ms>:<id>` of the last session of the
/// previous page; the next page holds what sorts after it.
pub(crate) fn cursor_after(updated_at_ms: i64, id: &str) -> String {
    format!("{updated_at_ms}:{id}")
}

pub(crate) fn parse_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let invalid = || StoreError::InvalidCursor(cursor.chars().take(80).collect());
    let (ms, id) = cursor.split_once(':').ok_or_else(invalid)?;
    let ms = ms.parse().map_err(|_| invalid())?;
    check_session_id(id).map_err(|_| invalid())?;
    Ok((ms, id.to_owned()))
}
