//! gateway: the front door of an openheim deployment. It terminates HTTP —
//! WebSocket `/ws` (multiplexed `agent` + `fs` channels) and `/acp` (bare
//! ACP), REST `/api/*`, `/healthz`, `/readyz`, and the web app at `/` —
//! and talks gRPC to
//! agent-loop, tool-executor, mcp-broker and llm-proxy. It is stateless and
//! never touches disk: `openheim serve` runs it over in-process channels,
//! `openheim-gateway` over remote ones.
//!
//! Code map: [`auth`] (tokens, origins: the guard layer), [`rest`] (the
//! API), `ws` (sockets, the ACP bridge and the fs channel), [`drain`]
//! (graceful shutdown of sockets), [`options`] (limits and settings),
//! [`error`] (the one error shape), [`web`] (the embedded web app). Wire
//! format: `docs/api.md`; the app: `docs/web.md`.

pub mod auth;
mod backends;
pub mod drain;
pub mod error;
pub mod jwt;
pub mod options;
pub mod rest;
mod server;
pub mod web;
mod ws;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use openheim_proto::agent_loop::v1::ListSessionsRequest;
use openheim_proto::llm_proxy::v1::ListModelsRequest;
use openheim_proto::mcp_broker::v1::ListServersRequest;
use openheim_proto::tool_executor::v1::GetSandboxInfoRequest;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

pub use auth::{AccessPolicy, Admission, AuthTokens};
pub use backends::Backends;
pub use drain::Drain;
pub use error::{ApiError, Backend, GatewayError};
pub use openheim_access::{Principal, Role};
pub use options::{BadHost, GatewayOptions, Limits, listen_address};

/// How long `/readyz` waits for each backend.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// What every handler shares.
pub(crate) struct Shared {
    pub backends: Backends,
    pub options: GatewayOptions,
    /// One permit per open WebSocket.
    pub sockets: Arc<Semaphore>,
    pub drain: Drain,
}

pub(crate) type AppState = Arc<Shared>;

/// A gateway: its routes and the sockets it has open.
pub struct Gateway {
    state: AppState,
}

impl Gateway {
    pub fn new(backends: Backends, options: GatewayOptions) -> Self {
        let sockets = Arc::new(Semaphore::new(options.limits.max_sockets));
        Self {
            state: Arc::new(Shared {
                backends,
                options,
                sockets,
                drain: Drain::default(),
            }),
        }
    }

    /// The routes with their layers, ready to serve or to test with
    /// `oneshot`.
    pub fn router(&self) -> Router {
        let state = &self.state;
        let limits = &state.options.limits;
        let access = Arc::new(state.options.access.clone());
        let api = rest::routes().layer(middleware::from_fn_with_state(
            limits.request_timeout,
            time_limit,
        ));
        let guarded = api
            .merge(ws::routes())
            .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
            .method_not_allowed_fallback(|method: axum::http::Method| async move {
                ApiError::MethodNotAllowed(method.to_string())
            })
            .layer(middleware::from_fn_with_state(access, auth::guard));
        Router::new()
            .route(
                "/healthz",
                get(|| async { Json(json!({ "status": "ok" })) }),
            )
            .route("/readyz", get(ready))
            // The app's files are public; the API they call is not.
            .merge(web::routes())
            .merge(guarded)
            .layer(DefaultBodyLimit::max(limits.max_body_bytes))
            .layer(middleware::from_fn_with_state(
                limits.max_body_bytes,
                body_limit,
            ))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(span)
                    .on_response(record_status),
            )
            .with_state(Arc::clone(state))
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting,
    /// lets running turns finish until the shutdown deadline, closes the
    /// remaining sockets (cancelling their turns) and waits for those turns
    /// to record the cancellation.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let stop = CancellationToken::new();
        // Loopback and IP names are this gateway's on the port it listens on.
        let port = listener.local_addr()?.port();
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.options.access.hosts.port = Some(port);
        }
        let limits = self.state.options.limits.clone();
        let server = server::serve(listener, self.router(), &limits, stop.clone());
        let mut server = std::pin::pin!(server);
        tokio::select! {
            result = &mut server => return result.map_err(GatewayError::Serve),
            () = shutdown => {}
        }
        tracing::info!("shutting down: no new connections, draining open sockets");
        stop.cancel();
        let drain = &self.state.drain;
        drain.stop();
        let deadline = self.state.options.shutdown_deadline;
        // The ACP connections' own grace, plus time for the sockets' closing
        // handshakes.
        let grace = self.state.options.acp.shutdown_grace + ws::CLOSE_HANDSHAKE;
        let (served, drained) = tokio::join!(server, drain.wait(deadline, grace));
        if !drained {
            tracing::warn!("some connections did not finish in time");
        }
        served.map_err(GatewayError::Serve)
    }
}

/// The gateway's routes (see [`Gateway::router`]).
pub fn app(backends: Backends, options: GatewayOptions) -> Router {
    Gateway::new(backends, options).router()
}

/// Serves a gateway on `listener` until `shutdown` resolves (see
/// [`Gateway::serve`]).
pub async fn serve(
    backends: Backends,
    options: GatewayOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    Gateway::new(backends, options)
        .serve(listener, shutdown)
        .await
}

/// Request spans name the method and path only: the query may hold a token.
/// A client's `traceparent` (on a REST call or a WebSocket upgrade) makes
/// the request, and everything it causes, part of the client's trace.
/// Health probes get no span: an orchestrator polls them every few seconds,
/// and a trace per probe would drown the ones that matter.
fn span(request: &Request) -> tracing::Span {
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return tracing::Span::none();
    }
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str());
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {}", route.unwrap_or("")),
        otel.kind = "server",
        http.request.method = method,
        url.path = request.uri().path(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    openheim_proto::trace::set_parent_from(&span, request.headers());
    span
}

fn record_status(response: &Response, _latency: Duration, span: &tracing::Span) {
    // Signed: the OpenTelemetry bridge exports unsigned values as text.
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
}

/// Refuses a declared body over the limit before anything reads it;
/// `DefaultBodyLimit` bounds bodies without a length as they are read.
async fn body_limit(State(max): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > max as u64 => ApiError::TooLarge(max).into_response(),
        _ => next.run(request).await,
    }
}

async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(limit).into_response(),
    }
}

/// Ready when every configured backend answers a cheap call.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let backends = &state.backends;
    let agent_loop = probe(Backend::AgentLoop, async {
        let probe = ListSessionsRequest {
            page_size: 1,
            cursor: String::new(),
            caller: None,
            all_users: false,
        };
        backends.agent_loop().list_sessions(probe).await.map(drop)
    });
    let tools = probe(Backend::ToolExecutor, async {
        let mut client = backends.tool_executor().ok()?;
        Some(
            client
                .get_sandbox_info(GetSandboxInfoRequest {})
                .await
                .map(drop),
        )
    });
    let mcp = probe(Backend::McpBroker, async {
        let mut client = backends.mcp_broker().ok()?;
        let request = ListServersRequest {
            session_id: String::new(),
        };
        Some(client.list_servers(request).await.map(drop))
    });
    let llm = probe(Backend::LlmProxy, async {
        let mut client = backends.llm_proxy().ok()?;
        Some(client.list_models(ListModelsRequest {}).await.map(drop))
    });
    let results = tokio::join!(agent_loop, tools, mcp, llm);
    let results = [results.0, results.1, results.2, results.3];
    let all_ok = results.iter().flatten().all(|(_, r)| r.is_ok());
    let report: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .flatten()
        .map(|(backend, result)| {
            let value = match result {
                Ok(()) => json!("ok"),
                Err(why) => json!(why.to_string()),
            };
            (backend.name().to_owned(), value)
        })
        .collect();
    let (status, word) = if all_ok {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (status, Json(json!({ "status": word, "backends": report })))
}

/// Why a backend is not ready, as `/readyz` reports it.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("no answer in time")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

/// One backend's readiness: `None` when it is not configured.
async fn probe<F, R>(backend: Backend, call: F) -> Option<(Backend, Result<(), NotReady>)>
where
    F: Future<Output = R>,
    R: IntoProbe,
{
    let result = match tokio::time::timeout(READY_TIMEOUT, call).await {
        Ok(result) => result.into_probe()?,
        Err(_) => Err(NotReady::Timeout),
    };
    Some((backend, result))
}

/// What a readiness call returns: a result, or `None` for "not configured".
trait IntoProbe {
    fn into_probe(self) -> Option<Result<(), NotReady>>;
}

impl IntoProbe for Result<(), tonic::Status> {
    fn into_probe(self) -> Option<Result<(), NotReady>> {
        Some(self.map_err(|s| NotReady::Failed(s.message().to_owned())))
    }
}

impl IntoProbe for Option<Result<(), tonic::Status>> {
    fn into_probe(self) -> Option<Result<(), NotReady>> {
        self.map(|r| r.map_err(|s| NotReady::Failed(s.message().to_owned())))
    }
}
