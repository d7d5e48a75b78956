//! OAuth 2.1 sign-in to Streamable HTTP MCP servers, as the MCP
//! authorization specification (2025-06-18, 2025-11-25) describes it:
//! discovery (`discovery`: Protected Resource Metadata, RFC 9728; the
//! authorization server's metadata, RFC 8414 or OpenID Connect), the
//! authorization code flow with PKCE S256 and the `resource` parameter
//! (RFC 8707) on a loopback redirect (`login`: `openheim mcp login NAME`),
//! tokens kept per server with 0600 permissions and refreshed before they
//! expire or when the server refuses them (`tokens`), in files or the
//! deployment's Redis with a lock for each refresh (`store`), and the HTTP client
//! that puts them on the broker's MCP requests (`client`).
//!
//! A small client of our own rather than rmcp's `auth` feature: that one
//! pulls the `oauth2` crate and its dependencies (not in our lockfile), and
//! keeps tokens behind its own store trait; this one is five files over the
//! reqwest we already build, with the storage rules of docs/security.md.
//!
//! Tokens never appear in `Debug` output, logs, errors or statuses.

mod client;
mod discovery;
mod login;
mod store;
mod tokens;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use client::OAuthHttpClient;
pub use login::{LoginOptions, PendingLogin, prepare_login};
pub use store::{LOCK_TTL, LOCK_WAIT, RefreshLock, TokenStore};
pub use tokens::{StoredTokens, TokenSession, token_file};

/// What the client settings of one server are (`[mcp_servers.NAME.oauth]`).
#[derive(Clone, Default)]
pub struct ClientSettings {
    pub client_id: Option<String>,
    /// Read from the configuration's secret; never printed.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
}

/// The secret is never printed.
impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl ClientSettings {
    pub fn from_config(config: Option<&openheim_config::McpOAuthConfig>) -> Self {
        config
            .map(|o| Self {
                client_id: o.client_id.clone(),
                client_secret: crate::secrets::oauth_client_secret(o),
                scopes: o.scopes.clone(),
            })
            .unwrap_or_default()
    }
}

/// Where a configured HTTP server's sign-in lives, known to the broker.
#[derive(Debug, Clone)]
pub struct OAuthTarget {
    /// The files of the data directory or the deployment's Redis.
    pub store: TokenStore,
    /// Whether `[mcp_servers.NAME.oauth]` says the server needs sign-in
    /// (otherwise the server's 401 says so).
    pub configured: bool,
}

/// Everything that goes wrong signing in; none of it quotes a token.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{what}: {reason}")]
    Http { what: String, reason: String },
    #[error("{what}: the server answered {status}{}", oauth_error(error))]
    Status {
        what: String,
        status: u16,
        /// The OAuth `error` code and description, when the answer had them.
        error: Option<String>,
    },
    #[error("{what}: {reason}")]
    Metadata { what: String, reason: String },
    #[error(
        "`{url}` does not ask for OAuth sign-in (no 401 with a Bearer challenge, no protected resource metadata)"
    )]
    NotProtected { url: String },
    #[error("refusing plain http to a non-loopback host for OAuth ({url}); use https")]
    Insecure { url: String },
    #[error(
        "the authorization server {issuer} does not offer PKCE with S256; refusing to sign in without it"
    )]
    NoPkce { issuer: String },
    #[error(
        "the authorization server {issuer} offers no dynamic client registration: set `client_id` in [mcp_servers.{server}.oauth]"
    )]
    NoClient { issuer: String, server: String },
    #[error(
        "the sign-in answer's state does not match this sign-in; refused (start again with `openheim mcp login`)"
    )]
    StateMismatch,
    #[error(
        "the authorization server metadata fetched for {expected} names another issuer, {found}; refusing it"
    )]
    IssuerMismatch { expected: String, found: String },
    #[error("the authorization server refused: {0}")]
    Denied(String),
    #[error("no sign-in answer arrived within {}s", .0.as_secs())]
    CallbackTimeout(Duration),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` cannot name a token file (letters, digits, `_`, `-` and `.` only)")]
    BadName(String),
    #[error("the access token expired and there is no refresh token: sign in again")]
    Expired,
    #[error("the sign-in was removed (`openheim mcp logout`): sign in again")]
    SignedOut,
    #[error("another process kept refreshing the tokens for over {}s; try again", .0.as_secs())]
    LockTimeout(Duration),
    #[error("the token store: {0}")]
    Store(String),
}

fn oauth_error(error: &Option<String>) -> String {
    error
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default()
}

impl OAuthError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// A failure of the HTTP client, in its words (not its type names);
    /// URLs in it have their query redacted.
    fn http(what: impl Into<String>, error: &reqwest::Error) -> Self {
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        Self::Http {
            what: what.into(),
            reason: openheim_config::redact_urls_in(&reason).into_owned(),
        }
    }
}

/// Refuses plain http except to this machine: tokens and codes travel here.
pub(crate) fn require_secure(url: &str) -> Result<(), OAuthError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://")
        || (lower.starts_with("http://") && openheim_config::is_loopback_url(url))
    {
        Ok(())
    } else {
        Err(OAuthError::Insecure {
            url: openheim_config::redact_url(url).into_owned(),
        })
    }
}

/// Seconds since the Unix epoch.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The sign-in of `server` in words, for statuses: `None` when there are
/// no tokens for it (as far as this process knows without waiting; see
/// [`TokenStore::peek`]).
pub fn describe(store: &TokenStore, server: &str) -> Option<String> {
    let tokens = store.peek(server)?;
    Some(match tokens.expires_at {
        None => "oauth (signed in)".to_owned(),
        Some(at) if at > now_secs() => format!("oauth (signed in, expires {})", utc(at)),
        Some(at) if tokens.has_refresh_token() => format!(
            "oauth (signed in; the access token expired {}, refreshed on next use)",
            utc(at)
        ),
        Some(_) => login_needed(server),
    })
}

/// What a status says when there are no usable tokens.
pub fn login_needed(server: &str) -> String {
    format!("oauth (login needed: openheim mcp login {server})")
}

/// `2026-12-05 19:40 UTC`.
fn utc(secs: u64) -> String {
    let t = openheim_time::UtcTime::from_unix_secs(i64::try_from(secs).unwrap_or(i64::MAX));
    format!("{} {:02}:{:02} UTC", t.date(), t.hour, t.minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_490_000), "2026-11-24 03:13 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn debug_output_never_shows_the_client_secret() {
        let config = openheim_config::McpOAuthConfig {
            client_id: Some("c1".into()),
            client_secret: Some(openheim_config::Secret::new("cs-s3cr3t")),
            scopes: vec!["a".into()],
        };
        let settings = ClientSettings::from_config(Some(&config));
        assert_eq!(settings.client_secret.as_deref(), Some("cs-s3cr3t"));
        let printed = format!("{settings:?}");
        assert!(
            printed.contains("c1") && !printed.contains("s3cr3t"),
            "{printed}"
        );
    }

    #[test]
    fn tokens_travel_only_over_https_or_to_this_machine() {
        assert!(require_secure("https://as.example.com/token").is_ok());
        assert!(require_secure("http://127.0.0.1:9/token").is_ok());
        assert!(require_secure("http://localhost/token").is_ok());
        let refused = require_secure("http://as.example.com/token?k=v").unwrap_err();
        assert!(matches!(refused, OAuthError::Insecure { .. }));
    }
}
