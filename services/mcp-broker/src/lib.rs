//! mcp-broker service: owns the connections to MCP servers (configured and
//! per-session) and exposes their tools as `{server}__{tool}`.
//!
//! Code map: `registry` holds the servers and a session's view of their
//! tools; `server` supervises one connection (background connect, status,
//! reconnect with `backoff`, calls with timeout and one retry);
//! `connection` opens stdio or Streamable HTTP connections with rmcp;
//! `extras` serves resources (and the `read_mcp_resource` tool) and prompts;
//! `naming` and `mapping` translate names and results; `secrets` is the only
//! reader of secret header values; `oauth` signs in to servers that require
//! OAuth 2.1 (`openheim mcp login`) and keeps their tokens fresh; `grpc` is
//! the adapter.

mod backoff;
mod connection;
mod definition;
mod elicitation;
mod extras;
mod grpc;
mod mapping;
mod naming;
pub mod oauth;
mod registry;
mod secrets;
mod server;
mod telemetry;
mod wording;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use openheim_proto::GrpcChannel;
use openheim_proto::mcp_broker::v1::mcp_broker_server::McpBrokerServer;
use openheim_proto::transport::{MAX_MESSAGE_BYTES, in_process as channel_in_process};
use tokio::net::TcpListener;

pub use backoff::ReconnectPolicy;
pub use connection::ProcessSettings;
pub use registry::Registry;

/// Per-call limit when neither the request nor `call_timeout_secs` sets one.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Limit of the `initialize` handshake; a server exceeding it is `failed`.
pub const DEFAULT_INITIALIZE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a tool listing waits for a server's first connection attempt,
/// counted from the server's start. Lets the very first turn after startup
/// see fast local servers; a slower one is listed as pending, and the agent
/// loop adds its tools at a later model call once it is ready.
pub const DEFAULT_STARTUP_GRACE: Duration = Duration::from_secs(1);

/// What the broker needs from the configuration.
#[derive(Debug, Clone)]
pub struct McpBrokerConfig {
    pub servers: BTreeMap<String, openheim_config::McpServerConfig>,
    /// How stdio servers are started: confined and with an environment of
    /// their own, like shell commands.
    pub processes: connection::ProcessSettings,
    pub initialize_timeout: Duration,
    pub default_call_timeout: Duration,
    pub startup_grace: Duration,
    pub reconnect: ReconnectPolicy,
    /// Where OAuth tokens of configured servers live (`<data_dir>/mcp-auth`,
    /// or the Redis of `[store] url`); `None`: no OAuth sign-in.
    pub tokens: Option<oauth::TokenStore>,
}

impl Default for McpBrokerConfig {
    fn default() -> Self {
        Self {
            servers: BTreeMap::new(),
            processes: connection::ProcessSettings::default(),
            initialize_timeout: DEFAULT_INITIALIZE_TIMEOUT,
            default_call_timeout: DEFAULT_CALL_TIMEOUT,
            startup_grace: DEFAULT_STARTUP_GRACE,
            reconnect: ReconnectPolicy::default(),
            tokens: None,
        }
    }
}

impl McpBrokerConfig {
    pub fn from_config(config: &openheim_config::Config) -> Self {
        Self {
            servers: config.mcp_servers.clone(),
            processes: connection::ProcessSettings::from_config(config),
            tokens: oauth::TokenStore::from_config(config),
            ..Self::default()
        }
    }
}

/// Where OAuth tokens live under a data directory (docs/security.md).
pub fn auth_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("mcp-auth")
}

/// Everything that goes wrong in the broker. Connection and call failures
/// reach the model as tool errors (their `Display` text), and a server's
/// status shows the error that took it down.
#[derive(Debug, thiserror::Error)]
pub enum McpBrokerError {
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("invalid server definition: {0}")]
    InvalidServer(String),
    #[error("refusing to send headers over plain http to a non-loopback host ({url}); use https")]
    InsecureHeaders { url: String },
    #[error("invalid header `{name}`: {reason}")]
    InvalidHeader { name: String, reason: String },
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out during initialize (after {})", seconds(after))]
    InitializeTimeout { after: Duration },
    #[error("initialize failed: {reason}{}", stderr_hint(stderr))]
    Initialize {
        reason: String,
        /// The child's last stderr lines, which usually say why.
        stderr: Option<String>,
    },
    // rmcp's error is large; boxed so every `Result` of the crate stays small.
    #[error("listing tools failed: {}", wording::service(.0))]
    ListTools(#[source] Box<rmcp::ServiceError>),
    #[error("listing tools timed out (after {})", seconds(after))]
    ListToolsTimeout { after: Duration },
    #[error("MCP server `{server}` is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("MCP tool `{tool}` timed out after {}", seconds(after))]
    CallTimeout { tool: String, after: Duration },
    #[error("MCP tool `{tool}` failed: {}", wording::service(.source))]
    Call {
        tool: String,
        #[source]
        source: Box<rmcp::ServiceError>,
    },
    #[error("sign-in needed: run `openheim mcp login {server}`")]
    LoginNeeded { server: String },
    #[error("OAuth sign-in: {0}")]
    OAuth(#[from] oauth::OAuthError),
    #[error("unknown MCP tool `{0}`")]
    UnknownTool(String),
    #[error("{what} failed: {}", wording::service(.source))]
    Request {
        /// What was asked, in words (`reading resource \`uri\``).
        what: String,
        #[source]
        source: Box<rmcp::ServiceError>,
    },
    #[error("{what} timed out after {}", seconds(after))]
    RequestTimeout { what: String, after: Duration },
    #[error("no MCP server `{0}` here")]
    UnknownServer(String),
    #[error("no MCP prompt `{0}` here (prompts are named server:prompt)")]
    UnknownPrompt(String),
    #[error("MCP prompt `{prompt}` needs the argument `{argument}`")]
    MissingArgument { prompt: String, argument: String },
    #[error("arguments of `{tool}` must be a JSON object: {reason}")]
    BadArguments { tool: String, reason: String },
}

impl McpBrokerError {
    /// A definition problem no reconnect can fix: the server stays failed
    /// and is not retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::InvalidServer(_) | Self::InsecureHeaders { .. } | Self::InvalidHeader { .. } => {
                true
            }
            Self::Serve(_)
            | Self::Spawn { .. }
            | Self::InitializeTimeout { .. }
            | Self::Initialize { .. }
            | Self::ListTools(_)
            | Self::ListToolsTimeout { .. }
            | Self::Unavailable { .. }
            | Self::CallTimeout { .. }
            | Self::Call { .. }
            | Self::UnknownTool(_)
            | Self::LoginNeeded { .. }
            | Self::OAuth(_)
            | Self::Request { .. }
            | Self::RequestTimeout { .. }
            | Self::UnknownServer(_)
            | Self::UnknownPrompt(_)
            | Self::MissingArgument { .. }
            | Self::BadArguments { .. } => false,
        }
    }
}

fn seconds(duration: &Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

fn stderr_hint(stderr: &Option<String>) -> String {
    stderr
        .as_deref()
        .map(|s| format!(" (stderr: {s})"))
        .unwrap_or_default()
}

impl McpBrokerError {
    /// The error as shown anywhere — statuses, logs, tool results — with
    /// every URL's query values and user information redacted: an MCP
    /// server's `url` may carry a key (`?key=…`), and the transport's errors
    /// quote it.
    pub fn shown(&self) -> String {
        openheim_config::redact_urls_in(&self.to_string()).into_owned()
    }
}

pub fn grpc_server(config: McpBrokerConfig) -> McpBrokerServer<grpc::McpBrokerGrpc> {
    McpBrokerServer::new(grpc::McpBrokerGrpc::new(Registry::new(config)))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The broker in this process. Call it inside a Tokio runtime so servers
/// start connecting at once; outside one they connect on first use.
pub fn in_process(config: McpBrokerConfig) -> GrpcChannel {
    channel_in_process(grpc_server(config))
}

pub async fn serve(
    config: McpBrokerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), McpBrokerError> {
    openheim_proto::transport::serve(grpc_server(config), listener, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    /// Container probes (Kubernetes `grpc:` probes) ask `grpc.health.v1`.
    #[tokio::test]
    async fn serves_the_grpc_health_service() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = McpBrokerConfig::from_config(&openheim_config::Config::default());
        let server = tokio::spawn(serve(config, listener, async {
            let _ = stopped.await;
        }));
        let channel = openheim_proto::transport::remote(&format!("http://{address}")).unwrap();
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
