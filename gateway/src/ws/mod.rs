//! The WebSocket endpoints: `/ws` (the multiplexed `agent` + `fs`
//! channels) and `/acp` (bare ACP JSON-RPC, one message per text frame).
//!
//! Each upgrade takes a permit of the socket limit and runs as a task of
//! the [`Drain`](crate::drain::Drain), so shutdown can wait for it.

mod agent;
pub mod fs;
mod socket;

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use openheim_access::Principal;
use openheim_acp::AcpOptions;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::AppState;
use crate::error::ApiError;
use crate::ws::agent::{AgentChannel, Framing};
use crate::ws::fs::FsChannel;
use crate::ws::socket::{Closed, Frames, Outbox};

pub use socket::CLOSE_HANDSHAKE;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ws", get(multiplexed))
        .route("/acp", get(acp))
}

async fn multiplexed(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    accept(state, upgrade, |state, socket, permit| async move {
        let limits = state.options.limits.clone();
        socket::run(socket, &limits, &state.drain, |outbox| {
            Multiplexed::new(&state, &principal, outbox)
        })
        .await;
        drop(permit);
    })
}

async fn acp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    accept(state, upgrade, |state, socket, permit| async move {
        let limits = state.options.limits.clone();
        socket::run(socket, &limits, &state.drain, |outbox| {
            Bare(AgentChannel::start(
                &state.backends,
                acp_options(&state, &principal),
                &state.drain,
                outbox,
                Framing::Bare,
            ))
        })
        .await;
        drop(permit);
    })
}

/// The ACP settings of a connection of `principal`: its requests are made
/// for that user.
fn acp_options(state: &AppState, principal: &Principal) -> AcpOptions {
    AcpOptions {
        caller: Some(crate::rest::caller(principal)),
        ..state.options.acp.clone()
    }
}

/// Upgrades when the server is not draining and a socket permit is free.
fn accept<F, Fut>(
    state: AppState,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    serve: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(AppState, WebSocket, OwnedSemaphorePermit) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if state.drain.is_stopping() {
        return Err(ApiError::ShuttingDown);
    }
    let permit = std::sync::Arc::clone(&state.sockets)
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyConnections)?;
    let limits = &state.options.limits;
    let drain = state.drain.clone();
    // axum runs the socket on a task of its own: keep it in the upgrade
    // request's span, so the socket's turns join the client's trace.
    let span = tracing::Span::current();
    Ok(upgrade
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        // tungstenite preallocates its read buffer (128 KiB by default) for
        // every socket; most sockets are idle, so read in small chunks and
        // write each message at once.
        .read_buffer_size(SOCKET_READ_BUFFER)
        .write_buffer_size(0)
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            drain.track(tracing::Instrument::instrument(
                serve(state, socket, permit),
                span,
            ))
        }))
}

/// Read chunk of every WebSocket; larger messages are read in several.
const SOCKET_READ_BUFFER: usize = 4 * 1024;

/// `/acp`: every text frame is one JSON-RPC message.
struct Bare(AgentChannel);

impl Frames for Bare {
    async fn text(&mut self, text: String) -> Result<(), Closed> {
        self.0.forward(text).await
    }

    /// Binary frames are read as (lossy) UTF-8 text, so they are answered
    /// like any other malformed message instead of closing the socket.
    async fn binary(&mut self, bytes: Vec<u8>) -> Result<(), Closed> {
        self.0
            .forward(String::from_utf8_lossy(&bytes).into_owned())
            .await
    }

    fn prompts(&self) -> Option<watch::Receiver<usize>> {
        Some(self.0.prompts())
    }
}

/// `/ws`: `{"channel": "agent" | "fs", "data": …}` frames. The ACP
/// connection starts with the first agent frame.
struct Multiplexed {
    state: AppState,
    /// The ACP settings of this socket's agent channel (its user's).
    acp: AcpOptions,
    outbox: Outbox,
    agent: Option<AgentChannel>,
    fs: FsChannel,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    channel: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl Multiplexed {
    fn new(state: &AppState, principal: &Principal, outbox: Outbox) -> Self {
        let workspace = state
            .options
            .workspace_of(principal)
            .map_err(|e| e.to_string());
        Self {
            fs: FsChannel::start(&state.backends, workspace, outbox.clone()),
            state: state.clone(),
            acp: acp_options(state, principal),
            outbox,
            agent: None,
        }
    }

    fn agent(&mut self) -> &AgentChannel {
        let state = &self.state;
        let acp = &self.acp;
        self.agent.get_or_insert_with(|| {
            AgentChannel::start(
                &state.backends,
                acp.clone(),
                &state.drain,
                self.outbox.clone(),
                Framing::Envelope,
            )
        })
    }

    /// A frame that is not an envelope is answered on the fs channel (it
    /// has a generic error reply; the agent channel speaks JSON-RPC only).
    async fn refuse(&self, message: String) -> Result<(), Closed> {
        let reply = fs::error_reply(None, "invalid_frame", &message);
        self.outbox.send_text(fs::frame(reply)).await
    }
}

impl Frames for Multiplexed {
    async fn text(&mut self, text: String) -> Result<(), Closed> {
        let envelope = match serde_json::from_str::<Envelope<'_>>(&text) {
            Ok(envelope) => envelope,
            Err(error) => {
                let message = format!(
                    "a frame must be {{\"channel\": \"agent\" | \"fs\", \"data\": …}}: {error}"
                );
                return self.refuse(message).await;
            }
        };
        match envelope.channel {
            "agent" => {
                let data = envelope.data.get();
                // Accept the JSON-RPC message as an object or as a string.
                let message =
                    serde_json::from_str::<String>(data).unwrap_or_else(|_| data.to_owned());
                self.agent().forward(message).await
            }
            "fs" => self.fs.submit(envelope.data.get()).await,
            other => {
                self.refuse(format!("unknown channel {other:?} (agent, fs)"))
                    .await
            }
        }
    }

    async fn binary(&mut self, _bytes: Vec<u8>) -> Result<(), Closed> {
        self.refuse("binary frames are not accepted; send JSON text frames".to_owned())
            .await
    }

    fn prompts(&self) -> Option<watch::Receiver<usize>> {
        self.agent.as_ref().map(AgentChannel::prompts)
    }
}
