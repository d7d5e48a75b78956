//! Wiring of the services: in-process by default, remote where `[services]`
//! names an address. One wire either way (see `openheim_proto::transport`).

use std::sync::Arc;

use openheim_agent_loop::{AgentLoopConfig, Backends};
use openheim_config::Config;
use openheim_llm_proxy::{CustomProviders, LlmProxyConfig};
use openheim_mcp_broker::McpBrokerConfig;
use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::agent_loop_client::AgentLoopClient;
use openheim_proto::tool_executor::v1::GetSandboxInfoRequest;
use openheim_proto::tool_executor::v1::tool_executor_client::ToolExecutorClient;
use openheim_proto::transport::{MAX_MESSAGE_BYTES, TransportError, remote};
use openheim_tool_executor::{ToolExecutorConfig, ToolHandler};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    AgentLoop(#[from] openheim_agent_loop::StartError),
    #[error(transparent)]
    LlmProxy(#[from] openheim_llm_proxy::LlmProxyError),
    /// Custom LLM providers live in this process; a remote llm-proxy (or a
    /// remote agent loop, which uses its own) cannot call them.
    #[error(
        "custom LLM provider {providers} needs the in-process llm-proxy, but {key} = {address:?} \
         points at a remote service, which cannot call a provider implemented in this process; \
         remove {key} or serve the provider from there"
    )]
    RemoteLlmProxy {
        providers: String,
        key: &'static str,
        address: String,
    },
}

/// What the embedding application adds to the in-process services. Both
/// exist only in this process: a remote tool-executor offers its own tools,
/// and custom LLM providers refuse a remote llm-proxy.
#[derive(Default)]
#[non_exhaustive]
pub struct Extensions {
    /// Custom tools, offered next to the built-in ones.
    pub tools: Vec<Arc<dyn ToolHandler>>,
    /// Custom LLM providers by provider name.
    pub llm_providers: CustomProviders,
}

/// The running services, reachable through gRPC channels.
pub struct Runtime {
    agent_loop: GrpcChannel,
    /// Known unless only a remote agent-loop was configured (without a
    /// `services.tool_executor` address); likewise the two below.
    tool_executor: Option<GrpcChannel>,
    mcp_broker: Option<GrpcChannel>,
    llm_proxy: Option<GrpcChannel>,
}

/// Where sessions may have their workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workspaces {
    /// Any existing directory: a local user (or their editor) picks it.
    Anywhere,
    /// Only inside the configured `work_dir`: remote clients of a server.
    WithinWorkDir,
}

impl Runtime {
    /// Starts (or connects to) every service the configuration asks for.
    pub fn start(config: &Config) -> Result<Self, RuntimeError> {
        Self::start_with(config, Extensions::default())
    }

    /// Like [`Runtime::start`] for a server: sessions (their tools, shell
    /// commands and MCP servers) work inside the configured `work_dir` only.
    pub fn start_server(config: &Config) -> Result<Self, RuntimeError> {
        Self::start_for_clients(config, Workspaces::WithinWorkDir)
    }

    /// Like [`Runtime::start_within`] for front ends whose callers can
    /// answer MCP servers' elicitation requests (ACP, the gateway): MCP
    /// servers are told the client supports elicitation (docs/mcp.md,
    /// "Elicitation"). The other constructors do not tell them.
    pub fn start_for_clients(
        config: &Config,
        workspaces: Workspaces,
    ) -> Result<Self, RuntimeError> {
        Self::start_composed(config, Extensions::default(), workspaces, true)
    }

    /// Like [`Runtime::start`], with the application's custom tools and LLM
    /// providers registered in the in-process tool-executor and llm-proxy.
    pub fn start_with(config: &Config, extensions: Extensions) -> Result<Self, RuntimeError> {
        Self::start_within(config, extensions, Workspaces::Anywhere)
    }

    /// Starts (or connects to) the services with `extensions` and a rule
    /// for session workspaces.
    pub fn start_within(
        config: &Config,
        extensions: Extensions,
        workspaces: Workspaces,
    ) -> Result<Self, RuntimeError> {
        Self::start_composed(config, extensions, workspaces, false)
    }

    fn start_composed(
        config: &Config,
        extensions: Extensions,
        workspaces: Workspaces,
        elicitation: bool,
    ) -> Result<Self, RuntimeError> {
        let root = match workspaces {
            Workspaces::Anywhere => None,
            Workspaces::WithinWorkDir => config.work_dir.clone(),
        };
        let services = &config.services;
        check_custom_providers_are_local(config, &extensions.llm_providers)?;
        if let Some(address) = &services.agent_loop {
            let optional = |address: &Option<String>| address.as_deref().map(remote).transpose();
            return Ok(Self {
                // Every replica the address names gets turns.
                agent_loop: openheim_proto::balance::balanced(address)?,
                tool_executor: optional(&services.tool_executor)?,
                mcp_broker: optional(&services.mcp_broker)?,
                llm_proxy: optional(&services.llm_proxy)?,
            });
        }
        let llm = match &services.llm_proxy {
            Some(address) => remote(address)?,
            None => openheim_llm_proxy::in_process(
                LlmProxyConfig::from_config(config),
                &extensions.llm_providers,
            )?,
        };
        let tools = match &services.tool_executor {
            Some(address) => remote(address)?,
            None => openheim_tool_executor::in_process(
                ToolExecutorConfig::from_config(config, root.clone()),
                extensions.tools,
            ),
        };
        let mcp = match &services.mcp_broker {
            Some(address) => remote(address)?,
            None => {
                let mut broker = McpBrokerConfig::from_config(config);
                broker.processes.elicitation = elicitation;
                openheim_mcp_broker::in_process(broker)
            }
        };
        let agent_loop = openheim_agent_loop::in_process(
            AgentLoopConfig {
                workspace_root: root,
                ..AgentLoopConfig::from_config(config)?
            },
            Backends::new(llm.clone(), tools.clone(), mcp.clone()),
        )?;
        Ok(Self {
            agent_loop,
            tool_executor: Some(tools),
            mcp_broker: Some(mcp),
            llm_proxy: Some(llm),
        })
    }

    /// The sandbox of the tool-executor: `(confinement, detail)`, when reachable.
    pub async fn sandbox(&self) -> Option<(String, String)> {
        let channel = self.tool_executor.clone()?;
        let mut client = ToolExecutorClient::new(channel);
        let info = client
            .get_sandbox_info(GetSandboxInfoRequest {})
            .await
            .ok()?
            .into_inner();
        Some((info.confinement, info.detail))
    }

    /// A client of the agent loop (cheap; clone freely).
    pub fn agent_loop(&self) -> AgentLoopClient<GrpcChannel> {
        AgentLoopClient::new(self.agent_loop.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The channel to the agent loop (for front ends that build their own
    /// clients, such as the gateway).
    pub fn agent_loop_channel(&self) -> GrpcChannel {
        self.agent_loop.clone()
    }

    /// The channel to the tool-executor, when this runtime knows it.
    pub fn tool_executor_channel(&self) -> Option<GrpcChannel> {
        self.tool_executor.clone()
    }

    /// The channel to the mcp-broker, when this runtime knows it.
    pub fn mcp_broker_channel(&self) -> Option<GrpcChannel> {
        self.mcp_broker.clone()
    }

    /// The channel to the llm-proxy, when this runtime knows it.
    pub fn llm_proxy_channel(&self) -> Option<GrpcChannel> {
        self.llm_proxy.clone()
    }
}

/// Custom LLM providers need the llm-proxy of this process: say so at
/// start rather than with "unknown provider" at the first turn.
fn check_custom_providers_are_local(
    config: &Config,
    providers: &CustomProviders,
) -> Result<(), RuntimeError> {
    if providers.is_empty() {
        return Ok(());
    }
    let services = &config.services;
    let remote = [
        ("services.agent_loop", &services.agent_loop),
        ("services.llm_proxy", &services.llm_proxy),
    ];
    for (key, address) in remote {
        if let Some(address) = address {
            let names: Vec<&str> = providers.keys().map(String::as_str).collect();
            return Err(RuntimeError::RemoteLlmProxy {
                providers: names.join(", "),
                key,
                address: address.clone(),
            });
        }
    }
    Ok(())
}
