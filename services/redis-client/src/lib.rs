//! How every Redis-backed store connects to Redis, in one place: the
//! session store of the agent loop (`openheim-agent-loop`, `store/redis.rs`),
//! the long-term memory (`openheim-memory`, `redis.rs`) and the OAuth tokens
//! of MCP servers (`openheim-mcp-broker`, `oauth/store.rs`).
//!
//! - [`RedisConnection::open`] makes one lazily connecting connection
//!   manager with bounded connect and response timeouts; it reconnects in
//!   the background after a failure.
//! - [`RedisConnection::failure`] sorts an error: connection trouble is
//!   [`Failure::Unavailable`] (worth sending again), an answer Redis gave
//!   is [`Failure::Refused`].
//! - [`RedisConnection::retrying`] sends a command again across a
//!   reconnect until it succeeds or a window has passed, so a Redis
//!   restart costs a client a pause, not an error (docs/deployment.md).
//! - Messages name the server, never the URL's password.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use tokio::time::Instant;

/// Each attempt to reach Redis gives up after this long.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// A command without an answer after this long fails (reported as
/// unavailable rather than hanging a turn).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection attempts per failed command, with exponential backoff.
const RECONNECT_RETRIES: usize = 3;
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// First pause before a command is sent again; it doubles up to the most.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(25);
const MAX_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("Redis must be opened inside a Tokio runtime")]
    NoRuntime,
    #[error("Redis at {server}: {reason}")]
    Connect { server: String, reason: String },
}

/// A command that failed, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Redis could not be reached or did not answer in time: the command
    /// may succeed if sent again.
    Unavailable(String),
    /// Redis answered with an error: sending it again would not help.
    Refused(String),
}

/// The connection to one Redis server. Cheap to clone.
#[derive(Clone)]
pub struct RedisConnection {
    manager: ConnectionManager,
    server: String,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConnection({})", self.server)
    }
}

impl RedisConnection {
    /// A connection to the Redis at `url` (`redis://[user:password@]host
    /// [:port][/db]`, or `rediss://` for TLS). Connects on first use; must
    /// be called inside a Tokio runtime.
    pub fn open(url: &str) -> Result<Self, OpenError> {
        let client = Client::open(url).map_err(|e| OpenError::InvalidUrl {
            url: without_credentials(url),
            reason: e.to_string(),
        })?;
        let server = client.get_connection_info().addr().to_string();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(OpenError::NoRuntime);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            OpenError::Connect {
                server: server.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self { manager, server })
    }

    /// The connection manager, to send commands with.
    pub fn manager(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// `host:port` of the server, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `error` sorted, its message naming the server.
    pub fn failure(&self, error: &RedisError) -> Failure {
        let message = format!("Redis at {}: {error}", self.server);
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
        {
            Failure::Unavailable(message)
        } else {
            Failure::Refused(message)
        }
    }

    /// Runs `op` (given a connection and whether this is a retry) until it
    /// succeeds, fails for a reason other than the connection, or `window`
    /// has passed. The manager reconnects in the background after a
    /// failure; the pauses give it time to. Only for commands that do the
    /// same when sent twice, or that use the retry flag to tell.
    pub async fn retrying<T, F, Fut>(&self, window: Duration, mut op: F) -> Result<T, Failure>
    where
        F: FnMut(ConnectionManager, bool) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = Instant::now() + window;
        let mut delay = FIRST_RETRY_DELAY;
        let mut retrying = false;
        loop {
            let failure = match op(self.manager(), retrying).await {
                Ok(value) => return Ok(value),
                Err(e) => self.failure(&e),
            };
            let Failure::Unavailable(message) = &failure else {
                return Err(failure);
            };
            if Instant::now() + delay > deadline {
                return Err(failure);
            }
            tracing::debug!(error = %message, "Redis command failed; sending it again");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
            retrying = true;
        }
    }
}

/// `redis://user:secret@host/0` → `redis://host/0`, for messages.
pub fn without_credentials(url: &str) -> String {
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
            without_credentials("redis://user:s3cret@db:6379/2"),
            "redis://db:6379/2"
        );
        assert_eq!(without_credentials("redis://db:6379"), "redis://db:6379");
        assert_eq!(without_credentials("rediss://:pw@h"), "rediss://h");
        assert_eq!(
            without_credentials("rediss://user:p@ss@cache"),
            "rediss://cache"
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password() {
        let error = RedisConnection::open("redis://user:s3cret@[bad").unwrap_err();
        assert!(matches!(error, OpenError::InvalidUrl { .. }));
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn opening_needs_a_runtime() {
        assert!(matches!(
            RedisConnection::open("redis://127.0.0.1:1"),
            Err(OpenError::NoRuntime)
        ));
    }

    /// A command sent while the server is down succeeds once it is back,
    /// within the window; past the window the caller hears it is
    /// unavailable; an error Redis answers is not sent again.
    #[tokio::test]
    async fn commands_are_sent_again_across_a_restart() {
        let mut server = openheim_test_redis::RedisServer::start_durable();
        let connection = RedisConnection::open(server.url()).unwrap();
        let ping = |window| {
            connection.retrying(window, |mut c, _| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
        };
        assert_eq!(ping(Duration::from_secs(1)).await.unwrap(), "PONG");

        server.stop();
        assert!(matches!(
            ping(Duration::from_millis(200)).await,
            Err(Failure::Unavailable(_))
        ));
        let restart = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.restart();
            server
        });
        assert_eq!(ping(Duration::from_secs(10)).await.unwrap(), "PONG");
        let _server = restart.await.unwrap();

        let mut sends = 0;
        let refused = connection
            .retrying(Duration::from_secs(5), |mut c, _| {
                sends += 1;
                async move { redis::cmd("NOSUCHCOMMAND").query_async::<()>(&mut c).await }
            })
            .await;
        assert!(matches!(refused, Err(Failure::Refused(_))), "{refused:?}");
        assert_eq!(sends, 1);
    }
}
