//! Where the tokens of each server are kept, and the lock that lets one
//! process at a time refresh them:
//!
//! - files (`<data_dir>/mcp-auth/NAME.json`, 0600 in a 0700 directory),
//!   locked with an advisory lock on `NAME.lock` beside it;
//! - the deployment's Redis when `[store] url` is `redis://…`: the same JSON
//!   under `PREFIX:mcp-auth:NAME`, locked with `SET PREFIX:mcp-auth:NAME:lock
//!   TOKEN NX PX` and released by a compare-and-delete script, so several
//!   broker replicas sharing one rotating refresh token use it once.
//!
//! The connection to Redis follows `openheim-redis-client` (bounded
//! timeouts, commands sent again across a reconnect). Keys name servers,
//! never tokens; messages name the Redis server, never its password.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openheim_redis_client::{Failure, RedisConnection};

use super::OAuthError;
use super::login::random_text;
use super::tokens::{self, StoredTokens};

/// How long a refresh lock lives when its holder never releases it (it
/// crashed): longer than a token request may take.
pub const LOCK_TTL: Duration = Duration::from_secs(45);
/// How long a process waits for another one's refresh before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(50);
/// Pause between two attempts to take a held lock.
const LOCK_POLL: Duration = Duration::from_millis(50);
/// How long a Redis command is sent again while Redis is unreachable.
const RETRY_WINDOW: Duration = Duration::from_secs(5);

/// Deletes the lock only when it still holds our token: a lock that
/// expired and was taken by another process stays theirs.
const RELEASE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Where tokens are kept. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct TokenStore {
    inner: Arc<Backend>,
}

enum Backend {
    Files {
        dir: PathBuf,
    },
    Redis {
        url: String,
        prefix: String,
        /// Opened on first use (it needs a Tokio runtime).
        connection: Mutex<Option<RedisConnection>>,
        /// The tokens last read or written per server, for statuses, which
        /// cannot wait for Redis.
        seen: Mutex<HashMap<String, StoredTokens>>,
    },
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Backend::Files { dir } => write!(f, "TokenStore(files in {})", dir.display()),
            Backend::Redis { url, prefix, .. } => write!(
                f,
                "TokenStore(Redis {} under {prefix}:mcp-auth)",
                openheim_redis_client::without_credentials(url)
            ),
        }
    }
}

/// A held refresh lock; [`RefreshLock::release`] gives it back (a lock
/// dropped without it is given back when the process exits or, in Redis,
/// when it expires).
pub struct RefreshLock {
    held: Held,
}

enum Held {
    /// Closing the file releases the advisory lock.
    File { _open: std::fs::File },
    Redis {
        connection: RedisConnection,
        key: String,
        token: String,
    },
}

impl RefreshLock {
    pub async fn release(self) {
        let Held::Redis {
            connection,
            key,
            token,
        } = self.held
        else {
            return;
        };
        let released = connection
            .retrying(RETRY_WINDOW, |mut c, _| {
                let (key, token) = (key.clone(), token.clone());
                async move {
                    redis::Script::new(RELEASE_SCRIPT)
                        .key(key)
                        .arg(token)
                        .invoke_async::<i64>(&mut c)
                        .await
                }
            })
            .await;
        if let Err(failure) = released {
            // It expires on its own after LOCK_TTL.
            tracing::warn!(error = %failure_text(&failure), "releasing an MCP OAuth refresh lock failed");
        }
    }
}

impl TokenStore {
    /// Files under `dir` (`<data_dir>/mcp-auth`).
    pub fn files(dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Backend::Files { dir: dir.into() }),
        }
    }

    /// The Redis at `url`, keys under `prefix`; connects on first use.
    pub fn redis(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Backend::Redis {
                url: url.into(),
                prefix: prefix.into(),
                connection: Mutex::new(None),
                seen: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The store a configuration selects: Redis when `[store] url` is a
    /// Redis URL, else files in the data directory; `None` without either.
    pub fn from_config(config: &openheim_config::Config) -> Option<Self> {
        match config.store.url.as_deref() {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Some(Self::redis(url, config.store.prefix.clone()))
            }
            _ => config
                .data_dir
                .as_deref()
                .map(|dir| Self::files(crate::auth_dir(dir))),
        }
    }

    /// Where the tokens of `server` are, in words (no secret).
    pub fn location(&self, server: &str) -> Result<String, OAuthError> {
        Ok(match &*self.inner {
            Backend::Files { dir } => tokens::token_file(dir, server)?.display().to_string(),
            Backend::Redis { url, prefix, .. } => format!(
                "{} under key {}",
                openheim_redis_client::without_credentials(url),
                redis_key(prefix, server)?
            ),
        })
    }

    /// The stored tokens of `server`, `None` when there are none.
    pub async fn read(&self, server: &str) -> Result<Option<StoredTokens>, OAuthError> {
        match &*self.inner {
            Backend::Files { dir } => tokens::read(&tokens::token_file(dir, server)?),
            Backend::Redis { prefix, .. } => {
                let key = redis_key(prefix, server)?;
                let connection = self.connection()?;
                let text = connection
                    .retrying(RETRY_WINDOW, |mut c, _| {
                        let key = key.clone();
                        async move {
                            redis::cmd("GET")
                                .arg(key)
                                .query_async::<Option<String>>(&mut c)
                                .await
                        }
                    })
                    .await
                    .map_err(|f| store_error("reading the tokens", &f))?;
                let tokens = text
                    .map(|text| {
                        serde_json::from_str::<StoredTokens>(&text).map_err(|e| {
                            OAuthError::Metadata {
                                what: format!("the tokens under {key}"),
                                reason: e.to_string(),
                            }
                        })
                    })
                    .transpose()?;
                self.remember(server, tokens.as_ref());
                Ok(tokens)
            }
        }
    }

    /// Stores the tokens of `server`, replacing what was there.
    pub async fn write(&self, server: &str, stored: &StoredTokens) -> Result<(), OAuthError> {
        match &*self.inner {
            Backend::Files { dir } => tokens::write(&tokens::token_file(dir, server)?, stored),
            Backend::Redis { prefix, .. } => {
                let key = redis_key(prefix, server)?;
                let json = serde_json::to_string(stored).map_err(|e| OAuthError::Metadata {
                    what: "the tokens".into(),
                    reason: e.to_string(),
                })?;
                self.connection()?
                    .retrying(RETRY_WINDOW, |mut c, _| {
                        let (key, json) = (key.clone(), json.clone());
                        async move {
                            redis::cmd("SET")
                                .arg(key)
                                .arg(json)
                                .query_async::<()>(&mut c)
                                .await
                        }
                    })
                    .await
                    .map_err(|f| store_error("storing the tokens", &f))?;
                self.remember(server, Some(stored));
                Ok(())
            }
        }
    }

    /// Deletes the tokens of `server`; false when there were none.
    pub async fn remove(&self, server: &str) -> Result<bool, OAuthError> {
        match &*self.inner {
            Backend::Files { dir } => tokens::remove_tokens(&tokens::token_file(dir, server)?),
            Backend::Redis { prefix, .. } => {
                let key = redis_key(prefix, server)?;
                let removed = self
                    .connection()?
                    .retrying(RETRY_WINDOW, |mut c, _| {
                        let key = key.clone();
                        async move { redis::cmd("DEL").arg(key).query_async::<u64>(&mut c).await }
                    })
                    .await
                    .map_err(|f| store_error("removing the tokens", &f))?;
                self.remember(server, None);
                Ok(removed > 0)
            }
        }
    }

    /// Takes the refresh lock of `server`, waiting at most [`LOCK_WAIT`]
    /// for another process's refresh to end.
    pub async fn lock(&self, server: &str) -> Result<RefreshLock, OAuthError> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        match &*self.inner {
            Backend::Files { dir } => {
                let file = tokens::token_file(dir, server)?.with_extension("lock");
                let lock = open_lock_file(&file)?;
                loop {
                    match lock.try_lock() {
                        Ok(()) => {
                            return Ok(RefreshLock {
                                held: Held::File { _open: lock },
                            });
                        }
                        Err(std::fs::TryLockError::WouldBlock) => {}
                        Err(std::fs::TryLockError::Error(e)) => {
                            return Err(OAuthError::io(format!("locking {}", file.display()), e));
                        }
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(OAuthError::LockTimeout(LOCK_WAIT));
                    }
                    tokio::time::sleep(LOCK_POLL).await;
                }
            }
            Backend::Redis { prefix, .. } => {
                let key = format!("{}:lock", redis_key(prefix, server)?);
                let token = random_text()?;
                let connection = self.connection()?;
                loop {
                    if take_redis_lock(&connection, &key, &token).await? {
                        return Ok(RefreshLock {
                            held: Held::Redis {
                                connection,
                                key,
                                token,
                            },
                        });
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(OAuthError::LockTimeout(LOCK_WAIT));
                    }
                    tokio::time::sleep(LOCK_POLL).await;
                }
            }
        }
    }

    /// The tokens of `server` as last known without waiting: read from
    /// its file, or the last ones this process read from or wrote to Redis.
    pub fn peek(&self, server: &str) -> Option<StoredTokens> {
        match &*self.inner {
            Backend::Files { dir } => tokens::read(&tokens::token_file(dir, server).ok()?)
                .ok()
                .flatten(),
            Backend::Redis { seen, .. } => seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(server)
                .cloned(),
        }
    }

    fn remember(&self, server: &str, stored: Option<&StoredTokens>) {
        if let Backend::Redis { seen, .. } = &*self.inner {
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            match stored {
                Some(tokens) => seen.insert(server.to_owned(), tokens.clone()),
                None => seen.remove(server),
            };
        }
    }

    fn connection(&self) -> Result<RedisConnection, OAuthError> {
        let Backend::Redis {
            url, connection, ..
        } = &*self.inner
        else {
            return Err(OAuthError::Store("not a Redis store".into()));
        };
        let mut slot = connection.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = &*slot {
            return Ok(open.clone());
        }
        let open = RedisConnection::open(url).map_err(|e| OAuthError::Store(e.to_string()))?;
        *slot = Some(open.clone());
        Ok(open)
    }
}

/// `SET key token NX PX ttl`; true when taken. A retry after a lost answer
/// checks whether the first attempt took it.
async fn take_redis_lock(
    connection: &RedisConnection,
    key: &str,
    token: &str,
) -> Result<bool, OAuthError> {
    let ttl = u64::try_from(LOCK_TTL.as_millis()).unwrap_or(u64::MAX);
    connection
        .retrying(RETRY_WINDOW, |mut c, retrying| {
            let (key, token) = (key.to_owned(), token.to_owned());
            async move {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut c)
                    .await?;
                if set.is_some() {
                    return Ok(true);
                }
                if !retrying {
                    return Ok(false);
                }
                let holder: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(&mut c).await?;
                Ok(holder.as_deref() == Some(token.as_str()))
            }
        })
        .await
        .map_err(|f| store_error("taking the refresh lock", &f))
}

fn open_lock_file(file: &Path) -> Result<std::fs::File, OAuthError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| OAuthError::io(format!("creating {}", dir.display()), e))?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)
        .map_err(|e| OAuthError::io(format!("opening {}", file.display()), e))
}

/// `PREFIX:mcp-auth:NAME`, for a name that could also name a file.
fn redis_key(prefix: &str, server: &str) -> Result<String, OAuthError> {
    tokens::token_file(Path::new("."), server)?;
    Ok(format!("{prefix}:mcp-auth:{server}"))
}

fn failure_text(failure: &Failure) -> &str {
    match failure {
        Failure::Unavailable(m) | Failure::Refused(m) => m,
    }
}

fn store_error(what: &str, failure: &Failure) -> OAuthError {
    OAuthError::Store(format!("{what}: {}", failure_text(failure)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_keys_live_under_the_prefix_and_need_file_names() {
        assert_eq!(redis_key("team", "gh").unwrap(), "team:mcp-auth:gh");
        assert!(redis_key("team", "../x").is_err());
        assert!(redis_key("team", "a:b").is_err());
    }

    #[test]
    fn the_store_follows_the_configuration() {
        let mut config = openheim_config::Config {
            data_dir: None,
            ..openheim_config::Config::default()
        };
        config.store.url = None;
        assert!(TokenStore::from_config(&config).is_none());
        config.data_dir = Some("/d".into());
        let files = TokenStore::from_config(&config).unwrap();
        assert_eq!(files.location("gh").unwrap(), "/d/mcp-auth/gh.json");
        config.store.url = Some("redis://user:pw@cache:6379/0".into());
        config.store.prefix = "team".into();
        let redis = TokenStore::from_config(&config).unwrap();
        let words = redis.location("gh").unwrap();
        assert_eq!(words, "redis://cache:6379/0 under key team:mcp-auth:gh");
        assert!(!format!("{redis:?}").contains("pw"));
    }
}
