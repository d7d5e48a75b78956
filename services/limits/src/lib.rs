//! Per-user limits of a shared server, in one place (docs/security.md,
//! "Limits"): how many turns a user runs at once, how many sessions they
//! create per UTC day, how many HTTP requests they make per minute and how
//! many tokens their LLM calls use per UTC day. [`Limiter`] decides; the
//! agent loop asks it at `CreateSession` and `StartTurn` (before any LLM
//! call) and tells it the tokens each call used, the gateway asks it for
//! every request. A refusal is a [`Refusal`]: which limit, and how long
//! until trying again can succeed.
//!
//! Counts live in [`counters`]: in this process, or in Redis when the
//! deployment has one (the session store's), so every gateway and
//! agent-loop replica counts together. Day and minute limits use fixed
//! windows ([`window`]); concurrent turns a counter held by each running
//! turn ([`TurnSlot`]).
//!
//! A counter store that fails lets the request through (with a warning):
//! limits protect a budget, not data, and Redis being down already stops
//! the sessions a turn would need.

pub mod counters;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openheim_config::{LimitsConfig, ServerConfig};
use openheim_redis_client::RedisConnection;

pub use counters::{CounterError, Counters, MemoryCounters, RedisCounters};
use window::{DAY, MINUTE, Window};

/// The wait a refused turn is told when the user's running turns are the
/// limit: a turn's end is not known in advance.
pub const CONCURRENT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long a user's running-turns counter lives without being renewed.
/// Every running turn renews it every third of this, so the count of a
/// replica that crashed mid-turn is forgotten at most this long after the
/// user's last running turn ends.
pub const TURN_COUNTER_TTL: Duration = Duration::from_secs(15 * 60);

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    ConcurrentTurns,
    SessionsPerDay,
    RequestsPerMinute,
    TokensPerDay,
}

impl Limit {
    pub const ALL: [Limit; 4] = [
        Limit::ConcurrentTurns,
        Limit::SessionsPerDay,
        Limit::RequestsPerMinute,
        Limit::TokensPerDay,
    ];

    /// The limit's configuration key, also its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConcurrentTurns => "concurrent_turns",
            Self::SessionsPerDay => "sessions_per_day",
            Self::RequestsPerMinute => "requests_per_minute",
            Self::TokensPerDay => "tokens_per_day",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|limit| limit.name() == name)
    }

    fn what(self) -> &'static str {
        match self {
            Self::ConcurrentTurns => "turns running at once",
            Self::SessionsPerDay => "new sessions per day",
            Self::RequestsPerMinute => "requests per minute",
            Self::TokensPerDay => "tokens per day",
        }
    }
}

/// A request refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit reached: {allowed} {} (`{}`); try again in {} s", .limit.what(), .limit.name(), retry_secs(.retry_after))]
pub struct Refusal {
    pub limit: Limit,
    /// The configured limit.
    pub allowed: u64,
    /// How long until the request can succeed (a new window; for running
    /// turns, a guess).
    pub retry_after: Duration,
}

impl Refusal {
    /// The wait in whole seconds, rounded up, at least 1 (`Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        retry_secs(&self.retry_after)
    }
}

fn retry_secs(wait: &Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

/// Why the limiter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("limit counters in Redis: {0}")]
    Redis(#[from] openheim_redis_client::OpenError),
}

type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The configured limits: everyone's, and each user's that differ (with
/// the defaults filled in). No secrets, so a service that only counts can
/// hold it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitSettings {
    pub defaults: LimitsConfig,
    pub users: HashMap<String, LimitsConfig>,
}

impl LimitSettings {
    /// `[server.limits]` and every `[server.users.NAME.limits]`.
    pub fn from_server(server: &ServerConfig) -> Self {
        let users = server
            .users
            .iter()
            .filter(|(_, user)| user.limits != LimitsConfig::default())
            .map(|(name, user)| (name.clone(), user.limits.over(&server.limits)))
            .collect();
        Self {
            defaults: server.limits,
            users,
        }
    }

    /// Whether no limit is configured for anyone.
    pub fn is_empty(&self) -> bool {
        self.defaults == LimitsConfig::default() && self.users.is_empty()
    }
}

struct Inner {
    defaults: LimitsConfig,
    users: HashMap<String, LimitsConfig>,
    counters: Arc<dyn Counters>,
    /// Every key starts with this.
    prefix: String,
    /// Time since the Unix epoch.
    now: Clock,
}

/// The limits of every user and their counters. Cheap to clone; the
/// default is off (no limits, nothing counted).
#[derive(Clone, Default)]
pub struct Limiter {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => write!(f, "Limiter(off)"),
            Some(inner) => write!(f, "Limiter({:?})", inner.counters),
        }
    }
}

fn system_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Limiter {
    /// No limits.
    pub fn off() -> Self {
        Self::default()
    }

    /// `settings`, counted in `counters` under keys starting with
    /// `prefix`. Off when no limit is configured.
    pub fn new(settings: &LimitSettings, counters: Arc<dyn Counters>, prefix: &str) -> Self {
        if settings.is_empty() {
            return Self::off();
        }
        Self {
            inner: Some(Arc::new(Inner {
                defaults: settings.defaults,
                users: settings.users.clone(),
                counters,
                prefix: format!("{prefix}:limits"),
                now: Arc::new(system_now),
            })),
        }
    }

    /// `settings`, counted in the Redis at `store_url` when it is one
    /// (`redis://`, `rediss://`; under `<prefix>:limits:`), else in this
    /// process. Must be called inside a Tokio runtime when it is Redis.
    pub fn open(
        settings: &LimitSettings,
        store_url: Option<&str>,
        prefix: &str,
    ) -> Result<Self, LimitsError> {
        if settings.is_empty() {
            return Ok(Self::off());
        }
        let counters: Arc<dyn Counters> = match store_url {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Arc::new(RedisCounters::new(RedisConnection::open(url)?))
            }
            _ => Arc::new(MemoryCounters::default()),
        };
        Ok(Self::new(settings, counters, prefix))
    }

    /// The same limiter reading time from `now` (tests).
    pub fn with_clock(mut self, now: impl Fn() -> Duration + Send + Sync + 'static) -> Self {
        if let Some(inner) = self.inner.take() {
            let inner = Inner {
                defaults: inner.defaults,
                users: inner.users.clone(),
                counters: Arc::clone(&inner.counters),
                prefix: inner.prefix.clone(),
                now: Arc::new(now),
            };
            self.inner = Some(Arc::new(inner));
        }
        self
    }

    pub fn is_off(&self) -> bool {
        self.inner.is_none()
    }

    /// The limits that apply to `user`.
    pub fn limits_of(&self, user: &str) -> LimitsConfig {
        self.inner
            .as_ref()
            .map_or_else(LimitsConfig::default, |inner| inner.limits_of(user))
    }

    /// One HTTP request of `user` (the gateway, per request).
    pub async fn request(&self, user: &str) -> Result<(), Refusal> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let allowed = inner.limits_of(user).requests_per_minute.map(u64::from);
        inner
            .count_in_window(user, Limit::RequestsPerMinute, allowed, Window::new(MINUTE))
            .await
    }

    /// A new session of `user` (not a sub-agent's).
    pub async fn create_session(&self, user: &str) -> Result<(), Refusal> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let allowed = inner.limits_of(user).sessions_per_day.map(u64::from);
        inner
            .count_in_window(user, Limit::SessionsPerDay, allowed, Window::new(DAY))
            .await
    }

    /// A turn of `user` starts: refused when their tokens of today are
    /// spent or their running turns are the limit; else the turn holds the
    /// returned slot until it ends.
    pub async fn start_turn(&self, user: &str) -> Result<TurnSlot, Refusal> {
        let Some(inner) = &self.inner else {
            return Ok(TurnSlot::none());
        };
        let limits = inner.limits_of(user);
        inner.check_tokens(user, limits.tokens_per_day).await?;
        let Some(allowed) = limits.concurrent_turns.map(u64::from) else {
            return Ok(TurnSlot::none());
        };
        TurnSlot::take(Arc::clone(inner), user, allowed).await
    }

    /// A sub-agent's turn of `user` starts: it runs inside its parent's
    /// slot (a parent waiting on its child must not be refused for it), so
    /// only the token budget is checked.
    pub async fn start_sub_turn(&self, user: &str) -> Result<(), Refusal> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        inner
            .check_tokens(user, inner.limits_of(user).tokens_per_day)
            .await
    }

    /// Whether `user` has a concurrent-turn limit.
    pub fn limits_turns(&self, user: &str) -> bool {
        self.limits_of(user).concurrent_turns.is_some()
    }

    /// What a turn of `user` uses its LLM calls' tokens through.
    pub fn meter(&self, user: &str) -> TokenMeter {
        TokenMeter {
            limiter: self.clone(),
            user: user.to_owned(),
        }
    }

    /// `tokens` (input plus output) used by an LLM call of `user`.
    pub async fn spend_tokens(&self, user: &str, tokens: u64) {
        let Some(inner) = &self.inner else {
            return;
        };
        if tokens == 0 || inner.limits_of(user).tokens_per_day.is_none() {
            return;
        }
        let day = Window::new(DAY);
        let key = inner.window_key(Limit::TokensPerDay, day.index((inner.now)()), user);
        let by = i64::try_from(tokens).unwrap_or(i64::MAX);
        if let Err(error) = inner.counters.add(&key, by, day.key_ttl(), false).await {
            tracing::warn!(%error, "tokens used were not counted");
        }
    }
}

/// Counts the tokens of one user's LLM calls (a turn holds one).
#[derive(Debug, Clone, Default)]
pub struct TokenMeter {
    limiter: Limiter,
    user: String,
}

impl TokenMeter {
    /// One LLM call used `input` plus `output` tokens.
    pub async fn spend(&self, input: u64, output: u64) {
        self.limiter
            .spend_tokens(&self.user, input.saturating_add(output))
            .await;
    }
}

impl Inner {
    fn limits_of(&self, user: &str) -> LimitsConfig {
        self.users.get(user).copied().unwrap_or(self.defaults)
    }

    /// Refused when `user`'s tokens of today reach `allowed`.
    async fn check_tokens(&self, user: &str, allowed: Option<u64>) -> Result<(), Refusal> {
        let Some(allowed) = allowed else {
            return Ok(());
        };
        let day = Window::new(DAY);
        let now = (self.now)();
        let key = self.window_key(Limit::TokensPerDay, day.index(now), user);
        if self.read(&key).await >= allowed {
            return Err(Refusal {
                limit: Limit::TokensPerDay,
                allowed,
                retry_after: day.remaining(now),
            });
        }
        Ok(())
    }

    fn window_key(&self, limit: Limit, index: u64, user: &str) -> String {
        format!("{}:{}:{index}:{user}", self.prefix, limit.name())
    }

    /// A counter's value; 0 (and a warning) when the store fails.
    async fn read(&self, key: &str) -> u64 {
        match self.counters.get(key).await {
            Ok(value) => u64::try_from(value).unwrap_or(0),
            Err(error) => {
                tracing::warn!(%error, "limit not checked");
                0
            }
        }
    }

    /// Counts one in the current window of `limit`; refused (and not
    /// counted) past `allowed`.
    async fn count_in_window(
        &self,
        user: &str,
        limit: Limit,
        allowed: Option<u64>,
        window: Window,
    ) -> Result<(), Refusal> {
        let Some(allowed) = allowed else {
            return Ok(());
        };
        let now = (self.now)();
        let key = self.window_key(limit, window.index(now), user);
        let ttl = window.key_ttl();
        // A refused request does not use up the window.
        match self
            .counters
            .add_one_within(&key, allowed, ttl, false)
            .await
        {
            Ok(false) => Err(Refusal {
                limit,
                allowed,
                retry_after: window.remaining(now),
            }),
            Ok(true) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, limit = limit.name(), "limit not checked");
                Ok(())
            }
        }
    }
}

/// A running turn's place among its user's concurrent turns; given back
/// by [`TurnSlot::release`] (or, if dropped, by a task it spawns).
pub struct TurnSlot {
    held: Option<HeldSlot>,
}

struct HeldSlot {
    inner: Arc<Inner>,
    key: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TurnSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.held.as_ref().map(|held| held.key.as_str());
        f.debug_struct("TurnSlot").field("held", &held).finish()
    }
}

impl TurnSlot {
    /// A slot that counts nothing (no concurrency limit).
    pub fn none() -> Self {
        Self { held: None }
    }

    async fn take(inner: Arc<Inner>, user: &str, allowed: u64) -> Result<Self, Refusal> {
        let key = format!("{}:{}:{user}", inner.prefix, Limit::ConcurrentTurns.name());
        let counters = &inner.counters;
        let taken = match counters
            .add_one_within(&key, allowed, TURN_COUNTER_TTL, true)
            .await
        {
            Ok(taken) => taken,
            Err(error) => {
                tracing::warn!(%error, "concurrent turns not checked");
                return Ok(Self::none());
            }
        };
        if !taken {
            return Err(Refusal {
                limit: Limit::ConcurrentTurns,
                allowed,
                retry_after: CONCURRENT_RETRY_AFTER,
            });
        }
        let renewal = tokio::spawn(renew(Arc::clone(&inner), key.clone()));
        Ok(Self {
            held: Some(HeldSlot {
                inner,
                key,
                renewal,
            }),
        })
    }

    /// Gives the slot back (the turn ended).
    pub async fn release(mut self) {
        if let Some(held) = self.held.take() {
            held.release().await;
        }
    }
}

impl HeldSlot {
    async fn release(self) {
        self.renewal.abort();
        match self
            .inner
            .counters
            .add(&self.key, -1, TURN_COUNTER_TTL, true)
            .await
        {
            // The counter expired under a turn longer than its TTL: never
            // leave it below zero, which would allow an extra turn.
            Ok(left) if left < 0 => {
                let _ = self
                    .inner
                    .counters
                    .add(&self.key, -left, TURN_COUNTER_TTL, true)
                    .await;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "a running turn's slot was not given back"),
        }
    }
}

impl Drop for TurnSlot {
    fn drop(&mut self) {
        if let Some(held) = self.held.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(held.release());
        }
    }
}

/// Keeps a user's running-turns counter alive while a turn holds a slot.
async fn renew(inner: Arc<Inner>, key: String) {
    loop {
        tokio::time::sleep(TURN_COUNTER_TTL / 3).await;
        if let Err(error) = inner.counters.add(&key, 0, TURN_COUNTER_TTL, true).await {
            tracing::debug!(%error, "running turns counter not renewed");
        }
    }
}

#[cfg(test)]
mod tests;
