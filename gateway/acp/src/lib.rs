//! openheim as an ACP agent: speaks the Agent Client Protocol (v1, the
//! `agent-client-protocol` crate) to a client such as Zed, and drives the
//! agent loop through its gRPC client only.
//!
//! The adapter is transport-agnostic: [`serve_acp`] runs one connection over
//! any `ConnectTo<Agent>` transport (newline-delimited JSON over stdio for
//! `openheim acp`, a WebSocket for the gateway's `/acp` and `/ws` agent
//! channel), and [`serve_stdio`] is the stdio entry point.
//!
//! Shutdown: when the client closes the connection (stdin EOF), every
//! running turn is cancelled and given [`AcpOptions::shutdown_grace`] to
//! record its cancellation, so the stored history stays valid.

mod commands;
mod convert;
mod elicitation;
mod error;
mod gate;
mod lifecycle;
mod line_writer;
mod lines;
mod mcp;
mod mcp_prompts;
mod models;
mod modes;
mod plan;
mod prompt;
mod sessions;
mod state;
mod terminal;
mod thinking;
mod updates;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    AgentCapabilities, CancelNotification, CloseSessionRequest, DeleteSessionRequest,
    Implementation, InitializeRequest, InitializeResponse, ListSessionsRequest, LoadSessionRequest,
    McpCapabilities, NewSessionRequest, PromptCapabilities, PromptRequest, PromptResponse,
    ResumeSessionRequest, SessionCapabilities, SessionCloseCapabilities, SessionDeleteCapabilities,
    SessionListCapabilities, SessionResumeCapabilities, SetSessionConfigOptionRequest,
    SetSessionModeRequest,
};
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Agent, Client, ConnectTo, Error as RpcError, JsonRpcResponse};
use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::agent_loop_client::AgentLoopClient;

pub use error::AcpError;
pub use gate::lines;
pub use lines::{MAX_LINE_BYTES, line_stream, transport as line_transport};
pub use mcp_prompts::{argument_hint as mcp_prompt_hint, split as split_mcp_prompt_command};
pub use models::ModelCatalog;
pub use sessions::{SetModelRequest, SetSessionModelResponse};
pub use thinking::thinking_setting;

use crate::state::{ClientFeatures, Connection};

/// The name this agent gives in `initialize`.
pub const AGENT_NAME: &str = "openheim";

/// How long running turns get to record their cancellation after the client
/// disconnected.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Settings of the ACP adapter.
#[derive(Debug, Clone)]
pub struct AcpOptions {
    /// Models offered by the `model` session config option.
    pub models: ModelCatalog,
    /// Reported as `agentInfo.version`.
    pub version: String,
    pub shutdown_grace: Duration,
    /// Whether the client may start stdio MCP servers (`mcpServers` with a
    /// `command`). True for `openheim acp` over stdio (the editor runs on
    /// this machine anyway); a server decides (`server.allow_client_stdio_mcp`).
    pub client_stdio_mcp: bool,
    /// Who the connection's requests are made for (a server's
    /// authenticated user); `None` = the local user.
    pub caller: Option<openheim_proto::common::v1::Caller>,
}

impl Default for AcpOptions {
    fn default() -> Self {
        Self {
            models: ModelCatalog::default(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            client_stdio_mcp: true,
            caller: None,
        }
    }
}

impl AcpOptions {
    /// Options for a deployment configured by `config` (its providers).
    pub fn from_config(config: &openheim_config::Config) -> Self {
        Self {
            models: ModelCatalog::from_config(config),
            ..Self::default()
        }
    }
}

/// Serves ACP on stdin/stdout until stdin closes. Nothing else may write to
/// stdout meanwhile: it carries the JSON-RPC stream.
pub async fn serve_stdio(
    agent_loop: AgentLoopClient<GrpcChannel>,
    options: AcpOptions,
) -> Result<(), AcpError> {
    let transport = line_transport(tokio::io::stdin(), tokio::io::stdout(), MAX_LINE_BYTES);
    serve_acp(agent_loop, options, transport).await
}

/// Serves one ACP connection over `transport` until the client closes it,
/// then cancels the turns still running and waits (bounded) for them.
pub async fn serve_acp(
    agent_loop: AgentLoopClient<GrpcChannel>,
    options: AcpOptions,
    transport: impl ConnectTo<Agent> + 'static,
) -> Result<(), AcpError> {
    let grace = options.shutdown_grace;
    let conn = Connection::new(agent_loop, options);
    let result = connect(&conn, transport).await;
    conn.shutdown(grace).await;
    result.map_err(|e| AcpError::Connection(e.message))
}

/// Runs `work` off the dispatch loop and answers the request with its result.
/// `$/cancel_request` for the request stops waiting on `work` and answers
/// -32800 at once; what the agent loop already did stays done (a session
/// being created may still be created).
fn respond_later<T, F>(conn: &Connection, responder: Responder<T>, work: F)
where
    T: JsonRpcResponse + Send + 'static,
    F: Future<Output = Result<T, AcpError>> + Send + 'static,
{
    let cancellation = responder.cancellation();
    let task = async move {
        let work = async move { work.await.map_err(RpcError::from) };
        let result = cancellation.run_until_cancelled(work).await;
        if let Err(error) = responder.respond_with_result(result) {
            tracing::debug!(%error, "an answer could not be sent");
        }
    };
    // In the connection's span: its calls join the client's trace.
    conn.tasks.spawn(tracing::Instrument::in_current_span(task));
}

/// A request handler that answers from a task with
/// `$work(&Connection, request, &ConnectionTo<Client>)`: session methods
/// wait on the agent loop, and the dispatch loop must keep running meanwhile.
macro_rules! deferred {
    ($conn:expr, $request:ty, $work:path) => {{
        let conn = Arc::clone(&$conn);
        async move |request: $request, responder, cx: ConnectionTo<Client>| {
            let task_conn = Arc::clone(&conn);
            respond_later(&conn, responder, async move {
                $work(&task_conn, request, &cx).await
            });
            Ok(())
        }
    }};
}

/// Registers every handler and runs the connection until the client closes
/// it. Methods not registered here are answered -32601 by the SDK, and
/// malformed lines with parse errors; neither ends the connection.
async fn connect(
    conn: &Arc<Connection>,
    transport: impl ConnectTo<Agent> + 'static,
) -> Result<(), RpcError> {
    let (prompts, cancels) = (Arc::clone(conn), Arc::clone(conn));
    Agent
        .v1()
        .name(AGENT_NAME)
        .on_receive_request(
            deferred!(conn, InitializeRequest, initialize),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(conn, NewSessionRequest, sessions::new_session),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(conn, LoadSessionRequest, sessions::load_session),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(conn, ListSessionsRequest, sessions::list_sessions),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(conn, ResumeSessionRequest, lifecycle::resume_session),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(conn, CloseSessionRequest, lifecycle::close_session),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(conn, DeleteSessionRequest, lifecycle::delete_session),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(
                conn,
                SetSessionConfigOptionRequest,
                sessions::set_config_option
            ),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(conn, SetModelRequest, sessions::set_model),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            deferred!(conn, SetSessionModeRequest, modes::set_mode),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: PromptRequest,
                        responder: Responder<PromptResponse>,
                        cx: ConnectionTo<Client>| {
                prompt::start(&prompts, request, responder, cx)
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |notification: CancelNotification, _cx: ConnectionTo<Client>| {
                cancels.cancel(&notification.session_id.0);
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_to(transport)
        .await
}

/// `initialize`: records what the client can do, and reports the configured
/// MCP servers' statuses in `_meta` (it never fails for want of them).
async fn initialize(
    conn: &Connection,
    request: InitializeRequest,
    _cx: &ConnectionTo<Client>,
) -> Result<InitializeResponse, AcpError> {
    conn.set_client(ClientFeatures::from_acp(&request.client_capabilities));
    let statuses = mcp::statuses(conn, "").await;
    Ok(initialize_response(&conn.options.version).meta(mcp::meta(statuses)))
}

fn initialize_response(version: &str) -> InitializeResponse {
    let capabilities = AgentCapabilities::new()
        .load_session(true)
        .prompt_capabilities(PromptCapabilities::new().image(true).embedded_context(true))
        .mcp_capabilities(McpCapabilities::new().http(true))
        .session_capabilities(
            SessionCapabilities::new()
                .list(SessionListCapabilities::new())
                .resume(SessionResumeCapabilities::new())
                .close(SessionCloseCapabilities::new())
                .delete(SessionDeleteCapabilities::new()),
        );
    // This agent speaks v1 only; a client asking for more gets v1 and decides.
    InitializeResponse::new(ProtocolVersion::V1)
        .agent_capabilities(capabilities)
        .agent_info(Implementation::new(AGENT_NAME, version).title("openheim".to_owned()))
}
