//! mcp-broker service: owns the connections to MCP servers (configured and
//! per-session) and exposes their tools as `{server}__{tool}`.
//!
//! This build knows the configured servers and reports them, but does not
//! connect to them yet: every server is reported `failed` with that reason,
//! no MCP tools are offered, and calls are refused with a clear error. The
//! rmcp-based connections replace [`registry`] internals without changing
//! the gRPC contract.

mod grpc;
mod registry;

use std::future::Future;

use openheim_proto::GrpcChannel;
use openheim_proto::mcp_broker::v1::mcp_broker_server::McpBrokerServer;
use openheim_proto::transport::{MAX_MESSAGE_BYTES, in_process as channel_in_process};
use tokio::net::TcpListener;

pub use registry::Registry;

/// What the broker needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct McpBrokerConfig {
    pub servers: std::collections::BTreeMap<String, openheim_config::McpServerConfig>,
}

impl McpBrokerConfig {
    pub fn from_config(config: &openheim_config::Config) -> Self {
        Self {
            servers: config.mcp_servers.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum McpBrokerError {
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

pub fn grpc_server(config: McpBrokerConfig) -> McpBrokerServer<grpc::McpBrokerGrpc> {
    McpBrokerServer::new(grpc::McpBrokerGrpc::new(Registry::new(config)))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub fn in_process(config: McpBrokerConfig) -> GrpcChannel {
    channel_in_process(grpc_server(config))
}

pub async fn serve(
    config: McpBrokerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), McpBrokerError> {
    tonic::transport::Server::builder()
        .layer(openheim_proto::transport::ServerPolicy)
        .add_service(grpc_server(config))
        .serve_with_incoming_shutdown(openheim_proto::transport::incoming(listener), shutdown)
        .await?;
    Ok(())
}
