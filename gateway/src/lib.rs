//! gateway: the front door of an openheim deployment. It terminates HTTP
//! (WebSocket `/ws` and `/acp`, REST `/api/*`) and talks gRPC to agent-loop,
//! tool-executor and mcp-broker. It is stateless and never touches disk.
//!
//! This build serves the health endpoints: `/healthz` (the process is up)
//! and `/readyz` (agent-loop answers). The WebSocket and REST surfaces arrive
//! with the gateway issue on top of the same [`Backends`].

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::ListSessionsRequest;
use openheim_proto::agent_loop::v1::agent_loop_client::AgentLoopClient;
use tokio::net::TcpListener;

/// The services the gateway talks to.
#[derive(Clone)]
pub struct Backends {
    pub agent_loop: GrpcChannel,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("HTTP server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// The gateway's routes, ready to serve or to test with `oneshot`.
pub fn app(backends: Backends) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(backends)
}

async fn ready(State(backends): State<Backends>) -> (StatusCode, String) {
    let mut client = AgentLoopClient::new(backends.agent_loop);
    let probe = ListSessionsRequest {
        page_size: 1,
        cursor: String::new(),
    };
    match client.list_sessions(probe).await {
        Ok(_) => (StatusCode::OK, "ready".to_owned()),
        Err(status) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("agent-loop unavailable: {}", status.message()),
        ),
    }
}

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn serve(
    backends: Backends,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    axum::serve(listener, app(backends))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
