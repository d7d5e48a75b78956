//! The tokens of one server: their file format (`<data_dir>/mcp-auth/NAME.json`,
//! file 0600, directory 0700, replaced atomically; the same JSON in Redis,
//! see `store`), refreshed at the token endpoint before they expire and when
//! the server refuses them. Refresh tokens rotate: a new one replaces the
//! old in the store at once.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::store::TokenStore;
use super::{OAuthError, now_secs};

/// An access token is refreshed when it expires within this.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// What is stored for one server.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredTokens {
    /// The MCP server's URL at sign-in.
    pub server_url: String,
    /// The RFC 8707 resource the tokens are for.
    pub resource: String,
    pub issuer: String,
    pub token_endpoint: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds since the Unix epoch; `None` when the server did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Scopes a server asked for since (a `403 insufficient_scope`), which
    /// the next `openheim mcp login` asks for too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wanted_scope: Option<String>,
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("server_url", &self.server_url)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl StoredTokens {
    pub fn has_refresh_token(&self) -> bool {
        self.refresh_token.is_some()
    }

    /// Whether the access token expires within [`REFRESH_MARGIN`].
    pub fn due(&self, now: u64) -> bool {
        self.expires_at
            .is_some_and(|at| at <= now.saturating_add(REFRESH_MARGIN.as_secs()))
    }

    /// Takes a token endpoint's answer in.
    pub(super) fn absorb(&mut self, answer: TokenAnswer) {
        self.access_token = answer.access_token;
        // Without a new refresh token the old one stays valid (RFC 6749 6).
        if answer.refresh_token.is_some() {
            self.refresh_token = answer.refresh_token;
        }
        self.expires_at = answer.expires_in.map(|s| now_secs().saturating_add(s));
        if answer.scope.is_some() {
            self.scope = answer.scope;
        }
    }
}

/// A token endpoint's successful answer (RFC 6749 5.1).
#[derive(Deserialize)]
pub(super) struct TokenAnswer {
    pub access_token: String,
    #[serde(default)]
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

/// A token endpoint's error answer (RFC 6749 5.2).
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    error_description: Option<String>,
}

/// Posts `form` to the token endpoint and reads the tokens.
pub(super) async fn token_request(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, &str)],
    what: &str,
) -> Result<TokenAnswer, OAuthError> {
    super::require_secure(endpoint)?;
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    let response = http
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| OAuthError::http(what, &e))?;
    let status = response.status();
    if !status.is_success() {
        let error = response
            .json::<ErrorAnswer>()
            .await
            .ok()
            .map(|e| match e.error_description {
                Some(d) => format!("{}: {d}", e.error),
                None => e.error,
            });
        return Err(OAuthError::Status {
            what: what.to_owned(),
            status: status.as_u16(),
            error,
        });
    }
    let answer: TokenAnswer = response.json().await.map_err(|e| OAuthError::Metadata {
        what: what.to_owned(),
        reason: format!("not a token answer: {e}"),
    })?;
    if !answer.token_type.is_empty() && !answer.token_type.eq_ignore_ascii_case("bearer") {
        return Err(OAuthError::Metadata {
            what: what.to_owned(),
            reason: format!("token type `{}`, not Bearer", answer.token_type),
        });
    }
    Ok(answer)
}

/// `<dir>/NAME.json`, for a name that can be a file name.
pub fn token_file(dir: &Path, server: &str) -> Result<PathBuf, OAuthError> {
    let fits = !server.is_empty()
        && !server.starts_with('.')
        && server
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !fits {
        return Err(OAuthError::BadName(server.to_owned()));
    }
    Ok(dir.join(format!("{server}.json")))
}

/// The stored tokens, `None` when there are none.
pub fn read(file: &Path) -> Result<Option<StoredTokens>, OAuthError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(OAuthError::io(format!("reading {}", file.display()), e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| OAuthError::Metadata {
            what: format!("the token file {}", file.display()),
            reason: e.to_string(),
        })
}

/// Writes `tokens` to `file`: the directory 0700, the file 0600 from its
/// creation (a temporary file renamed over the old one).
pub fn write(file: &Path, tokens: &StoredTokens) -> Result<(), OAuthError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = file.parent().unwrap_or(Path::new("."));
    let failed = |what: &str, e| OAuthError::io(format!("{what} {}", dir.display()), e);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed("creating", e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| failed("securing", e))?;
    let temporary = file.with_extension(format!("json.{}.tmp", std::process::id()));
    let json = serde_json::to_vec_pretty(tokens).map_err(|e| OAuthError::Metadata {
        what: "the tokens".into(),
        reason: e.to_string(),
    })?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| failed("writing in", e))?;
    out.write_all(&json)
        .and_then(|()| out.sync_all())
        .map_err(|e| failed("writing in", e))?;
    std::fs::rename(&temporary, file).map_err(|e| failed("writing in", e))
}

/// Deletes the tokens of a server; false when there were none.
pub fn remove_tokens(file: &Path) -> Result<bool, OAuthError> {
    match std::fs::remove_file(file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(OAuthError::io(format!("removing {}", file.display()), e)),
    }
}

/// The tokens of one connection, refreshed as needed and written back to
/// their store. A refresh holds the store's lock for the server, and first
/// looks whether another process refreshed meanwhile: rotating refresh
/// tokens work once, so two processes must not both use one.
pub struct TokenSession {
    store: TokenStore,
    server: String,
    http: reqwest::Client,
    tokens: Mutex<StoredTokens>,
}

impl TokenSession {
    /// The session of the stored tokens; `None` when there are none.
    pub async fn load(
        store: &TokenStore,
        server: &str,
        http: reqwest::Client,
    ) -> Result<Option<Self>, OAuthError> {
        Ok(store.read(server).await?.map(|tokens| Self {
            store: store.clone(),
            server: server.to_owned(),
            http,
            tokens: Mutex::new(tokens),
        }))
    }

    /// The access token to send, refreshed first when it expires soon.
    pub async fn bearer(&self) -> Result<String, OAuthError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.due(now_secs()) {
            self.refresh(&mut tokens).await?;
        }
        Ok(tokens.access_token.clone())
    }

    /// A new access token after the server refused `rejected`; when another
    /// request already refreshed it, the current one.
    pub async fn after_rejection(&self, rejected: &str) -> Result<String, OAuthError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.access_token == rejected {
            self.refresh(&mut tokens).await?;
        }
        Ok(tokens.access_token.clone())
    }

    /// The server's name (`[mcp_servers.NAME]`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Records that the server asked for `scope` (a `403 insufficient_scope`),
    /// for the next `openheim mcp login` to ask for it too.
    pub async fn wants_scope(&self, scope: &str) -> Result<(), OAuthError> {
        let lock = self.store.lock(&self.server).await?;
        let recorded = async {
            let Some(mut stored) = self.store.read(&self.server).await? else {
                return Ok(());
            };
            let wanted =
                super::login::union_of_scopes([stored.wanted_scope.as_deref(), Some(scope)]);
            if wanted != stored.wanted_scope {
                stored.wanted_scope = wanted;
                self.store.write(&self.server, &stored).await?;
            }
            Ok(())
        }
        .await;
        lock.release().await;
        recorded
    }

    async fn refresh(&self, tokens: &mut StoredTokens) -> Result<(), OAuthError> {
        let lock = self.store.lock(&self.server).await?;
        let refreshed = self.refresh_locked(tokens).await;
        lock.release().await;
        refreshed
    }

    /// Under the lock: takes what another process stored since we read
    /// (a fresh access token, or at least the newest refresh token), and
    /// only refreshes when that is not enough.
    async fn refresh_locked(&self, tokens: &mut StoredTokens) -> Result<(), OAuthError> {
        let stored = self
            .store
            .read(&self.server)
            .await?
            .ok_or(OAuthError::SignedOut)?;
        let ours = std::mem::replace(tokens, stored);
        if tokens.access_token != ours.access_token && !tokens.due(now_secs()) {
            tracing::info!(server = %self.server, "MCP OAuth access token taken from another process's refresh");
            return Ok(());
        }
        let refresh_token = tokens.refresh_token.clone().ok_or(OAuthError::Expired)?;
        let secret = tokens.client_secret.clone().unwrap_or_default();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", tokens.client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("resource", tokens.resource.as_str()),
        ];
        let endpoint = tokens.token_endpoint.clone();
        let answer =
            token_request(&self.http, &endpoint, &form, "refreshing the access token").await?;
        tokens.absorb(answer);
        self.store.write(&self.server, tokens).await?;
        tracing::info!(server = %self.server, "MCP OAuth access token refreshed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sample() -> StoredTokens {
        StoredTokens {
            server_url: "https://mcp.example.com/mcp".into(),
            resource: "https://mcp.example.com/mcp".into(),
            issuer: "https://as.example.com".into(),
            token_endpoint: "https://as.example.com/token".into(),
            client_id: "c1".into(),
            client_secret: None,
            access_token: "at-s3cr3t".into(),
            refresh_token: Some("rt-s3cr3t".into()),
            expires_at: Some(1000),
            scope: None,
            wanted_scope: None,
        }
    }

    #[test]
    fn files_are_private_and_debug_hides_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let file = token_file(&dir.path().join("mcp-auth"), "tracker").unwrap();
        write(&file, &sample()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.path().join("mcp-auth")), 0o700);
        let back = read(&file).unwrap().unwrap();
        assert_eq!(back.access_token, "at-s3cr3t");
        let printed = format!("{back:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(remove_tokens(&file).unwrap());
        assert!(!remove_tokens(&file).unwrap());
        assert!(read(&file).unwrap().is_none());
    }

    #[test]
    fn names_must_be_file_names() {
        let dir = Path::new("/d");
        assert!(token_file(dir, "gh-1.x").is_ok());
        for bad in ["", "../x", ".hidden", "a/b"] {
            assert!(token_file(dir, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_due_within_the_margin() {
        let tokens = sample();
        assert!(!tokens.due(900));
        assert!(tokens.due(1000 - REFRESH_MARGIN.as_secs()));
        assert!(tokens.due(2000));
        let forever = StoredTokens {
            expires_at: None,
            ..sample()
        };
        assert!(!forever.due(u64::MAX));
    }
}
