//! `openheim mcp login NAME`: discovery, client registration (Dynamic
//! Client Registration, RFC 7591, or a configured `client_id`), the
//! authorization code flow with PKCE S256 and `resource` (RFC 8707) on a
//! loopback redirect (`http://127.0.0.1:PORT/callback`, random port, state
//! checked), and the code exchanged for tokens, which are stored.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use super::discovery::{self, Challenge, ResourceMetadata, ServerMetadata};
use super::store::TokenStore;
use super::tokens::{self, StoredTokens, TokenAnswer};
use super::{ClientSettings, OAuthError, require_secure};

/// Limit of each request to the servers during sign-in.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes read of the browser's request to the loopback redirect.
const MAX_CALLBACK_REQUEST: usize = 16 * 1024;

/// What to sign in to.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// The server's name (`[mcp_servers.NAME]`), which names the token file.
    pub server: String,
    /// Its Streamable HTTP URL.
    pub url: String,
    pub client: ClientSettings,
    /// Where the tokens go (files or the deployment's Redis).
    pub store: TokenStore,
}

/// A sign-in waiting for the browser: open [`Self::authorize_url`], then
/// [`Self::finish`].
pub struct PendingLogin {
    pub authorize_url: String,
    listener: TcpListener,
    redirect_uri: String,
    state: String,
    verifier: String,
    client_id: String,
    client_secret: Option<String>,
    resource: String,
    metadata: ServerMetadata,
    http: reqwest::Client,
    store: TokenStore,
    server: String,
    server_url: String,
}

/// Discovers where to sign in, registers a client and prepares the
/// authorization URL; listens on the loopback redirect already.
pub async fn prepare_login(options: LoginOptions) -> Result<PendingLogin, OAuthError> {
    // The name must be able to name the tokens before anything is asked.
    options.store.location(&options.server)?;
    require_secure(&options.url)?;
    let mcp_url = Url::parse(&options.url).map_err(|e| OAuthError::Metadata {
        what: "the server's URL".into(),
        reason: e.to_string(),
    })?;
    let http = http_client()?;
    let challenge = probe(&http, &options.url).await?;
    let resource = resource_metadata(&http, &mcp_url, challenge.as_ref()).await?;
    let issuer = resource
        .authorization_servers
        .first()
        .ok_or_else(|| OAuthError::Metadata {
            what: "the protected resource metadata".into(),
            reason: "it names no authorization server".into(),
        })?;
    let metadata = discovery::server_metadata(&http, issuer).await?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| OAuthError::io("listening for the sign-in answer", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| OAuthError::io("listening for the sign-in answer", e))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let (client_id, client_secret) = register(&http, &metadata, &options, &redirect_uri).await?;
    // Step-up: what was granted before and what a server's 403 asked for
    // since (`StoredTokens::wanted_scope`) are asked for again.
    let before = options.store.read(&options.server).await?;
    let scope = union_of_scopes([
        scope(&options.client, challenge.as_ref(), &resource, &metadata).as_deref(),
        before.as_ref().and_then(|t| t.scope.as_deref()),
        before.as_ref().and_then(|t| t.wanted_scope.as_deref()),
    ]);
    let verifier = random_text()?;
    let state = random_text()?;
    let authorize_url = authorize_url(
        &metadata,
        &AuthorizeParams {
            client_id: &client_id,
            redirect_uri: &redirect_uri,
            challenge: &pkce_challenge(&verifier),
            state: &state,
            resource: &resource.resource,
            scope: scope.as_deref(),
        },
    )?;
    Ok(PendingLogin {
        authorize_url,
        listener,
        redirect_uri,
        state,
        verifier,
        client_id,
        client_secret,
        resource: resource.resource,
        metadata,
        http,
        store: options.store,
        server: options.server,
        server_url: options.url,
    })
}

impl PendingLogin {
    /// The loopback redirect's address (`http://127.0.0.1:PORT/callback`).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits (at most `timeout`) for the browser to come back with a code,
    /// exchanges it and stores the tokens.
    pub async fn finish(self, timeout: Duration) -> Result<StoredTokens, OAuthError> {
        let code = tokio::time::timeout(timeout, wait_for_code(&self.listener, &self.state))
            .await
            .map_err(|_| OAuthError::CallbackTimeout(timeout))??;
        let secret = self.client_secret.clone().unwrap_or_default();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("code_verifier", self.verifier.as_str()),
            ("resource", self.resource.as_str()),
        ];
        let endpoint = &self.metadata.token_endpoint;
        let answer: TokenAnswer =
            tokens::token_request(&self.http, endpoint, &form, "exchanging the code").await?;
        let mut stored = StoredTokens {
            server_url: self.server_url,
            resource: self.resource,
            issuer: self.metadata.issuer,
            token_endpoint: self.metadata.token_endpoint,
            client_id: self.client_id,
            client_secret: self.client_secret,
            access_token: String::new(),
            refresh_token: None,
            expires_at: None,
            scope: None,
            wanted_scope: None,
        };
        stored.absorb(answer);
        self.store.write(&self.server, &stored).await?;
        Ok(stored)
    }
}

fn http_client() -> Result<reqwest::Client, OAuthError> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| OAuthError::http("starting the HTTP client", &e))
}

/// Sends an MCP `initialize` without a token: a protected server answers
/// 401 with a Bearer challenge. `None` when it did not.
async fn probe(http: &reqwest::Client, url: &str) -> Result<Option<Challenge>, OAuthError> {
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "openheim", "version": env!("CARGO_PKG_VERSION") }
        }
    });
    let response = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .map_err(|e| OAuthError::http("asking the MCP server", &e))?;
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(None);
    }
    Ok(response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(discovery::parse_challenge))
}

/// The server's RFC 9728 metadata, checked to be about this server.
async fn resource_metadata(
    http: &reqwest::Client,
    mcp_url: &Url,
    challenge: Option<&Challenge>,
) -> Result<ResourceMetadata, OAuthError> {
    let urls =
        discovery::resource_metadata_urls(mcp_url, challenge.unwrap_or(&Challenge::default()));
    let metadata: ResourceMetadata =
        discovery::fetch_first(http, "protected resource metadata", &urls)
            .await
            .map_err(|e| match challenge {
                None => OAuthError::NotProtected {
                    url: openheim_config::redact_url(mcp_url.as_str()).into_owned(),
                },
                Some(_) => e,
            })?;
    // The resource must be this server (or a prefix of its URL): tokens for
    // another audience would be sent to the wrong place.
    if !covers(&metadata.resource, mcp_url.as_str()) {
        return Err(OAuthError::Metadata {
            what: "the protected resource metadata".into(),
            reason: format!("it is about `{}`, not this server", metadata.resource),
        });
    }
    Ok(metadata)
}

/// Whether `resource` is `url` or a path prefix of it (at a `/`), so
/// `https://a.example` covers `https://a.example/mcp` but not
/// `https://a.example.evil/mcp`.
fn covers(resource: &str, url: &str) -> bool {
    let resource = resource.trim_end_matches('/');
    let url = url.trim_end_matches('/');
    !resource.is_empty()
        && (url == resource
            || url
                .strip_prefix(resource)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// A DCR answer (RFC 7591 3.2.1).
#[derive(Deserialize)]
struct Registration {
    client_id: String,
    client_secret: Option<String>,
}

/// The configured client, else one registered now.
async fn register(
    http: &reqwest::Client,
    metadata: &ServerMetadata,
    options: &LoginOptions,
    redirect_uri: &str,
) -> Result<(String, Option<String>), OAuthError> {
    if let Some(id) = &options.client.client_id {
        return Ok((id.clone(), options.client.client_secret.clone()));
    }
    let Some(endpoint) = &metadata.registration_endpoint else {
        return Err(OAuthError::NoClient {
            issuer: metadata.issuer.clone(),
            server: options.server.clone(),
        });
    };
    require_secure(endpoint)?;
    let request = serde_json::json!({
        "client_name": "openheim",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    let what = "registering openheim with the authorization server";
    let response = http
        .post(endpoint)
        .json(&request)
        .send()
        .await
        .map_err(|e| OAuthError::http(what, &e))?;
    if !response.status().is_success() {
        return Err(OAuthError::Status {
            what: what.into(),
            status: response.status().as_u16(),
            error: None,
        });
    }
    let registration: Registration = response.json().await.map_err(|e| OAuthError::Metadata {
        what: what.into(),
        reason: e.to_string(),
    })?;
    Ok((registration.client_id, registration.client_secret))
}

/// Configured scopes, else the challenge's, else the resource's, else the
/// authorization server's; none when nobody names any.
fn scope(
    client: &ClientSettings,
    challenge: Option<&Challenge>,
    resource: &ResourceMetadata,
    metadata: &ServerMetadata,
) -> Option<String> {
    if !client.scopes.is_empty() {
        return Some(client.scopes.join(" "));
    }
    if let Some(scope) = challenge.and_then(|c| c.scope.clone()) {
        return Some(scope);
    }
    [&resource.scopes_supported, &metadata.scopes_supported]
        .into_iter()
        .find(|s| !s.is_empty())
        .map(|s| s.join(" "))
}

/// The scopes of all of `scopes` (space-separated lists), each once, in
/// order of first mention; `None` when there are none.
pub(super) fn union_of_scopes<'a>(
    scopes: impl IntoIterator<Item = Option<&'a str>>,
) -> Option<String> {
    let mut all: Vec<&str> = Vec::new();
    for scope in scopes.into_iter().flatten().flat_map(str::split_whitespace) {
        if !all.contains(&scope) {
            all.push(scope);
        }
    }
    (!all.is_empty()).then(|| all.join(" "))
}

struct AuthorizeParams<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    challenge: &'a str,
    state: &'a str,
    resource: &'a str,
    scope: Option<&'a str>,
}

fn authorize_url(metadata: &ServerMetadata, p: &AuthorizeParams<'_>) -> Result<String, OAuthError> {
    let mut url =
        Url::parse(&metadata.authorization_endpoint).map_err(|e| OAuthError::Metadata {
            what: "the authorization endpoint".into(),
            reason: e.to_string(),
        })?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", p.client_id)
            .append_pair("redirect_uri", p.redirect_uri)
            .append_pair("code_challenge", p.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", p.state)
            .append_pair("resource", p.resource);
        if let Some(scope) = p.scope {
            query.append_pair("scope", scope);
        }
    }
    Ok(url.into())
}

/// 32 random bytes as base64url: a PKCE verifier (43 characters) or a state.
pub(super) fn random_text() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        OAuthError::io("drawing random bytes", std::io::Error::other(e.to_string()))
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 4.2).
pub(super) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Serves the loopback redirect until a request to `/callback` arrives:
/// its code when the state matches, an error otherwise.
async fn wait_for_code(listener: &TcpListener, state: &str) -> Result<String, OAuthError> {
    loop {
        let (mut stream, _) = listener
            .accept()
            .await
            .map_err(|e| OAuthError::io("waiting for the sign-in answer", e))?;
        let Some(target) = request_target(&mut stream).await else {
            continue;
        };
        let Some(query) = target.strip_prefix("/callback") else {
            respond(&mut stream, "404 Not Found", "Not the sign-in address.").await;
            continue;
        };
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let outcome = if get("state").as_deref() != Some(state) {
            Err(OAuthError::StateMismatch)
        } else if let Some(error) = get("error") {
            let description = get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            Err(OAuthError::Denied(format!("{error}{description}")))
        } else {
            get("code").ok_or_else(|| OAuthError::Denied("the answer has no code".into()))
        };
        match &outcome {
            Ok(_) => {
                respond(
                    &mut stream,
                    "200 OK",
                    "Signed in. You can close this tab and go back to openheim.",
                )
                .await
            }
            Err(e) => respond(&mut stream, "400 Bad Request", &e.to_string()).await,
        }
        return outcome;
    }
}

/// The target of an HTTP request line (`GET /callback?… HTTP/1.1`).
async fn request_target(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") && buffer.len() < MAX_CALLBACK_REQUEST {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buffer);
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET").then(|| target.to_owned())
}

async fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!(
        "<!doctype html><title>openheim</title><p>{}</p>\n",
        html_escape(text)
    );
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B.
    #[test]
    fn a_new_sign_in_asks_for_old_and_wanted_scopes_too() {
        assert_eq!(
            union_of_scopes([Some("a b"), Some("b c"), None, Some(" c  d ")]).as_deref(),
            Some("a b c d")
        );
        assert_eq!(union_of_scopes([None, Some("  ")]), None);
    }

    #[test]
    fn the_pkce_challenge_is_s256() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = random_text().unwrap();
        assert_eq!(verifier.len(), 43);
        assert_ne!(verifier, random_text().unwrap());
    }

    #[test]
    fn a_resource_covers_its_own_urls_only() {
        assert!(covers("https://a.example/mcp", "https://a.example/mcp"));
        assert!(covers("https://a.example/", "https://a.example/mcp"));
        assert!(!covers("https://a.example", "https://a.example.evil/mcp"));
        assert!(!covers("https://a.example/mcp", "https://a.example/mcpx"));
        assert!(!covers("", "https://a.example/mcp"));
    }

    #[tokio::test]
    async fn the_redirect_refuses_a_foreign_state() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let waiting = tokio::spawn(async move { wait_for_code(&listener, "good").await });
        let get = |path: String| async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        };
        assert!(get("/favicon.ico".into()).await.starts_with("HTTP/1.1 404"));
        let refused = get("/callback?code=c&state=evil".into()).await;
        assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
        assert!(matches!(
            waiting.await.unwrap(),
            Err(OAuthError::StateMismatch)
        ));
    }
}
