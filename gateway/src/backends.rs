//! The services behind the gateway, as gRPC channels (in-process or remote:
//! the gateway cannot tell), and their generated clients.

use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::agent_loop_client::AgentLoopClient;
use openheim_proto::llm_proxy::v1::llm_proxy_client::LlmProxyClient;
use openheim_proto::mcp_broker::v1::mcp_broker_client::McpBrokerClient;
use openheim_proto::tool_executor::v1::tool_executor_client::ToolExecutorClient;
use openheim_proto::transport::MAX_MESSAGE_BYTES;

use crate::error::{ApiError, Backend};

/// The services the gateway talks to. Only agent-loop is required; without
/// the others the routes that need them answer `backend_not_configured`.
#[derive(Clone)]
pub struct Backends {
    pub agent_loop: GrpcChannel,
    pub tool_executor: Option<GrpcChannel>,
    pub mcp_broker: Option<GrpcChannel>,
    pub llm_proxy: Option<GrpcChannel>,
}

impl Backends {
    /// A deployment that only has an agent-loop to offer.
    pub fn agent_loop_only(agent_loop: GrpcChannel) -> Self {
        Self {
            agent_loop,
            tool_executor: None,
            mcp_broker: None,
            llm_proxy: None,
        }
    }

    pub fn agent_loop(&self) -> AgentLoopClient<GrpcChannel> {
        AgentLoopClient::new(self.agent_loop.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub fn tool_executor(&self) -> Result<ToolExecutorClient<GrpcChannel>, ApiError> {
        let channel = configured(&self.tool_executor, Backend::ToolExecutor)?;
        Ok(ToolExecutorClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    pub fn mcp_broker(&self) -> Result<McpBrokerClient<GrpcChannel>, ApiError> {
        configured(&self.mcp_broker, Backend::McpBroker).map(McpBrokerClient::new)
    }

    pub fn llm_proxy(&self) -> Result<LlmProxyClient<GrpcChannel>, ApiError> {
        configured(&self.llm_proxy, Backend::LlmProxy).map(LlmProxyClient::new)
    }
}

fn configured(channel: &Option<GrpcChannel>, backend: Backend) -> Result<GrpcChannel, ApiError> {
    channel.clone().ok_or(ApiError::NotConfigured(backend))
}
