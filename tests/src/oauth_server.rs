//! A small OAuth 2.1 authorization server and an MCP server it protects,
//! for the sign-in scenarios (`tests/tests/e2e/mcp_oauth.rs`). Not a mock
//! of our client: a real server on a real socket that enforces what the
//! specifications ask of an authorization server, so a client that gets it
//! wrong fails.
//!
//! - `/.well-known/oauth-protected-resource/mcp` (RFC 9728) and
//!   `/.well-known/oauth-authorization-server` (RFC 8414, PKCE S256 only);
//! - `/register`: Dynamic Client Registration (RFC 7591), public clients;
//! - `/authorize`: approves the test user at once by redirecting, after
//!   checking the client, its registered `redirect_uri`, `state`, the PKCE
//!   S256 challenge and `resource`;
//! - `/token`: `authorization_code` (one use, verifier, redirect URI and
//!   resource checked) and `refresh_token` (rotated: each works once);
//!   access tokens expire after the configured lifetime;
//! - `/mcp`: an rmcp Streamable HTTP server with two tools, `secret_word`,
//!   answering 401 with `WWW-Authenticate: Bearer resource_metadata=…`
//!   without a valid access token, and `admin_word`, whose call answers 403
//!   `insufficient_scope` (scope `mcp:tools mcp:admin`) to a token granted
//!   without `mcp:admin`. Tokens carry the scope asked for at `/authorize`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What the protected tool answers.
pub const SECRET_WORD: &str = "swordfish";
/// What the tool that needs the `mcp:admin` scope answers.
pub const ADMIN_WORD: &str = "marlin";
/// The scope `admin_word` asks for when a token lacks `mcp:admin`.
pub const ADMIN_SCOPE: &str = "mcp:tools mcp:admin";

/// The running servers; stopped when dropped.
pub struct OAuthServer {
    base: String,
    state: Arc<AuthState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct AuthState {
    base: String,
    access_lifetime: Duration,
    grants: Mutex<Grants>,
}

#[derive(Default)]
struct Grants {
    /// client id → registered redirect URIs.
    clients: HashMap<String, Vec<String>>,
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, Instant>,
    /// access token → the scope granted with it.
    scopes: HashMap<String, String>,
    /// refresh token → client id and scope.
    refresh: HashMap<String, (String, String)>,
    refreshes: u32,
    /// Requests to `/mcp` whose token was refused (expired or unknown).
    rejected: u32,
    counter: u64,
}

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    resource: String,
    scope: String,
}

impl Grants {
    fn fresh(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!(
            "{kind}-{}-{:016x}",
            self.counter,
            fastrand_like(self.counter)
        )
    }
}

/// Unguessable enough for a test server, distinct per call.
fn fastrand_like(seed: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos.rotate_left(17) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl OAuthServer {
    /// Starts on a free loopback port; access tokens live `access_lifetime`.
    pub async fn start(access_lifetime: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(AuthState {
            base: base.clone(),
            access_lifetime,
            grants: Mutex::default(),
        });
        let router = router(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { base, state, task }
    }

    /// The protected MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Revokes every access token: the next request with one gets a 401.
    pub fn revoke_access_tokens(&self) {
        self.state.lock().access.clear();
    }

    /// Refresh grants served so far.
    pub fn refreshes(&self) -> u32 {
        self.state.lock().refreshes
    }

    /// Requests to the MCP server that presented a refused token.
    pub fn rejected_tokens(&self) -> u32 {
        self.state.lock().rejected
    }
}

impl AuthState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Grants> {
        self.grants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

fn router(state: Arc<AuthState>) -> axum::Router {
    let mcp: StreamableHttpService<Protected, LocalSessionManager> = StreamableHttpService::new(
        || Ok(Protected::new()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let guarded =
        axum::Router::new()
            .nest_service("/mcp", mcp)
            .layer(middleware::from_fn_with_state(
                Arc::clone(&state),
                require_token,
            ));
    axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(server_metadata),
        )
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(state)
        .merge(guarded)
}

async fn resource_metadata(State(state): State<Arc<AuthState>>) -> Json<Value> {
    Json(json!({
        "resource": state.resource(),
        "authorization_servers": [state.base],
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": ["header"],
    }))
}

async fn server_metadata(State(state): State<Arc<AuthState>>) -> Json<Value> {
    let base = &state.base;
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["mcp:tools"],
    }))
}

fn refuse(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (status, Json(body)).into_response()
}

async fn register(State(state): State<Arc<AuthState>>, Json(request): Json<Value>) -> Response {
    let redirect_uris: Vec<String> = request["redirect_uris"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "no redirect_uris",
        );
    }
    let mut grants = state.lock();
    let client_id = grants.fresh("client");
    grants
        .clients
        .insert(client_id.clone(), redirect_uris.clone());
    let body = json!({
        "client_id": client_id,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn authorize(
    State(state): State<Arc<AuthState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| q.get(name).cloned().unwrap_or_default();
    let (client_id, redirect_uri) = (field("client_id"), field("redirect_uri"));
    let mut grants = state.lock();
    let registered = grants
        .clients
        .get(&client_id)
        .is_some_and(|uris| uris.contains(&redirect_uri));
    // Without a known client and its registered redirect, never redirect.
    if !registered {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown client or redirect_uri",
        );
    }
    let problem = if field("response_type") != "code" {
        Some("response_type must be code")
    } else if field("code_challenge_method") != "S256" || field("code_challenge").len() != 43 {
        Some("a PKCE S256 code_challenge is required")
    } else if field("state").is_empty() {
        Some("state is required")
    } else if field("resource") != state.resource() {
        Some("resource must name the MCP server")
    } else {
        None
    };
    if let Some(problem) = problem {
        return refuse(StatusCode::BAD_REQUEST, "invalid_request", problem);
    }
    let code = grants.fresh("code");
    let grant = CodeGrant {
        client_id,
        redirect_uri: redirect_uri.clone(),
        challenge: field("code_challenge"),
        resource: field("resource"),
        scope: field("scope"),
    };
    grants.codes.insert(code.clone(), grant);
    let mut target = url::Url::parse(&redirect_uri).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"));
    Redirect::to(target.as_str()).into_response()
}

async fn token(State(state): State<Arc<AuthState>>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let mut grants = state.lock();
    let granted = match field("grant_type").as_str() {
        "authorization_code" => redeem_code(&mut grants, &field),
        "refresh_token" => redeem_refresh_token(&mut grants, &field),
        _ => {
            let reason = "unknown grant";
            return refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type", reason);
        }
    };
    let (client_id, scope) = match granted {
        Ok(granted) => granted,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, "invalid_grant", reason),
    };
    let access = grants.fresh("access");
    let refresh = grants.fresh("refresh");
    grants
        .access
        .insert(access.clone(), Instant::now() + state.access_lifetime);
    let scope = if scope.is_empty() {
        "mcp:tools".to_owned()
    } else {
        scope
    };
    grants.scopes.insert(access.clone(), scope.clone());
    grants
        .refresh
        .insert(refresh.clone(), (client_id, scope.clone()));
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": state.access_lifetime.as_secs(),
        "refresh_token": refresh,
        "scope": scope,
    }))
    .into_response()
}

/// An authorization code, used once, with its PKCE verifier, client,
/// redirect URI and resource checked; the client it was issued to and the
/// scope asked for.
fn redeem_code(
    grants: &mut Grants,
    field: &dyn Fn(&str) -> String,
) -> Result<(String, String), &'static str> {
    let grant = grants
        .codes
        .remove(&field("code"))
        .ok_or("unknown or used code")?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return Err("PKCE verification failed");
    }
    if field("client_id") != grant.client_id
        || field("redirect_uri") != grant.redirect_uri
        || field("resource") != grant.resource
    {
        return Err("client, redirect_uri or resource differ");
    }
    Ok((grant.client_id, grant.scope))
}

/// A refresh token, which works once (rotation); the client it was issued
/// to and its scope.
fn redeem_refresh_token(
    grants: &mut Grants,
    field: &dyn Fn(&str) -> String,
) -> Result<(String, String), &'static str> {
    let (client_id, scope) = grants
        .refresh
        .remove(&field("refresh_token"))
        .ok_or("unknown or used refresh token")?;
    if field("client_id") != client_id {
        return Err("another client's token");
    }
    grants.refreshes += 1;
    Ok((client_id, scope))
}

/// The resource server's check: a live access token, else 401 with the
/// challenge that starts discovery.
async fn require_token(
    State(state): State<Arc<AuthState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let valid = presented.as_ref().is_some_and(|token| {
        let mut grants = state.lock();
        let valid = grants
            .access
            .get(token)
            .is_some_and(|expires| *expires > Instant::now());
        if !valid {
            grants.rejected += 1;
        }
        valid
    });
    if let Some(token) = presented.filter(|_| valid) {
        return require_scope(&state, &token, request, next).await;
    }
    let challenge = format!(
        "Bearer error=\"invalid_token\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\"",
        state.base
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
    )
        .into_response()
}

/// A call of `admin_word` needs `mcp:admin`: without it, 403
/// `insufficient_scope` naming the scope to ask for.
async fn require_scope(state: &AuthState, token: &str, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let admin_call = text.contains("\"tools/call\"") && text.contains("\"admin_word\"");
    let granted = state.lock().scopes.get(token).cloned().unwrap_or_default();
    if admin_call && !granted.split_whitespace().any(|s| s == "mcp:admin") {
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{ADMIN_SCOPE}\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            state.base
        );
        return (
            StatusCode::FORBIDDEN,
            [(header::WWW_AUTHENTICATE, challenge)],
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The protected MCP server.
#[derive(Clone)]
struct Protected {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Protected {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Tells the secret word (only to signed-in clients)")]
    fn secret_word(&self) -> String {
        format!("the secret word is {SECRET_WORD}")
    }

    #[tool(description = "Tells the admin word (needs the mcp:admin scope)")]
    fn admin_word(&self) -> String {
        format!("the admin word is {ADMIN_WORD}")
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Protected {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}
