//! tool-executor: runs the model's tool calls (shell, file tools, custom
//! tools) and the gateway's file operations inside a sandboxed workspace,
//! behind the `openheim.tool_executor.v1` gRPC service.
//!
//! The same service runs in the CLI process ([`in_process`]) and in its own
//! container ([`serve`]). Every path is resolved by [`sandbox`]; every tool
//! result is capped by [`truncate`]; shell commands run in their own process
//! group, which is killed on timeout and when their call is cancelled, under
//! OS confinement ([`confinement`]) and with a scrubbed environment
//! ([`env`]). `web_fetch` reaches public addresses only ([`web`]). [`watch`]
//! streams change notifications for the gateway's fs channel.

pub mod error;
pub mod fileops;
mod grpc;
mod hook;
pub mod sandbox;
mod telemetry;
pub mod tools;
pub mod watch;
pub mod web;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openheim_config::{Config, SandboxMode};
use openheim_proto::GrpcChannel;
use openheim_proto::tool_executor::v1::tool_executor_server::ToolExecutorServer;
use openheim_proto::transport::MAX_MESSAGE_BYTES;

pub use error::ToolError;
pub use grpc::ToolExecutorService;
/// OS confinement and environment hygiene of shell commands, shared with
/// mcp-broker's stdio servers.
pub use openheim_sandbox::{confinement, env};
pub use sandbox::{Access, WorkspaceRoot};
pub use tools::{ToolContext, ToolHandler, ToolOutput, ToolRegistry, parse_args};

/// Settings of a tool-executor.
#[derive(Debug, Clone)]
pub struct ToolExecutorConfig {
    /// `None`: any existing absolute directory may be a session workspace
    /// (the local CLI, where the editor picks the directory). `Some(root)`:
    /// every request's workspace root must resolve inside `root` (containers,
    /// where it is the mounted `/workspace`).
    pub allowed_root: Option<PathBuf>,
    /// Default limit of a shell command; a request may override it.
    pub shell_timeout: Duration,
    /// Every tool result is capped to this many bytes.
    pub max_result_bytes: usize,
    /// OS confinement of shell commands.
    pub sandbox: SandboxMode,
    /// Where confined commands may write besides the workspace and temp.
    pub writable_paths: Vec<PathBuf>,
    /// What commands may inherit ([`openheim_config::Config::child_env`]).
    pub child_env: std::collections::BTreeMap<String, String>,
    /// Environment variables commands keep ([`env::EnvPolicy`]).
    pub env_allow: Vec<String>,
    /// Environment variables commands never see; from the configuration
    /// this includes every provider's `env_var`.
    pub env_deny: Vec<String>,
    /// Lets `web_fetch` reach non-public addresses (metadata endpoints
    /// stay refused).
    pub web_fetch_allow_private: bool,
}

impl ToolExecutorConfig {
    /// The executor's settings from the shared configuration.
    pub fn from_config(config: &Config, allowed_root: Option<PathBuf>) -> Self {
        let tools = &config.tools;
        let mut env_deny = tools.env_deny.clone();
        env_deny.extend(config.providers.values().filter_map(|p| p.env_var.clone()));
        Self {
            allowed_root,
            shell_timeout: Duration::from_secs(tools.shell_timeout_secs),
            max_result_bytes: tools.max_result_bytes,
            sandbox: tools.sandbox,
            writable_paths: tools.writable_paths.clone(),
            child_env: config.child_env.clone(),
            env_allow: tools.env_allow.clone(),
            env_deny,
            web_fetch_allow_private: tools.web_fetch_allow_private,
        }
    }
}

impl Default for ToolExecutorConfig {
    fn default() -> Self {
        Self::from_config(&Config::default(), None)
    }
}

/// The generated gRPC server around the executor, with openheim's message
/// size limits. `custom_tools` are offered next to the built-in ones.
pub fn grpc_server(
    config: ToolExecutorConfig,
    custom_tools: Vec<Arc<dyn ToolHandler>>,
) -> ToolExecutorServer<ToolExecutorService> {
    ToolExecutorServer::new(ToolExecutorService::new(config, custom_tools))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A channel to an executor running in this process (no socket).
pub fn in_process(
    config: ToolExecutorConfig,
    custom_tools: Vec<Arc<dyn ToolHandler>>,
) -> GrpcChannel {
    openheim_proto::transport::in_process(grpc_server(config, custom_tools))
}

/// Serves the executor on `listener` until `shutdown` resolves. Fails at
/// once when the configured workspace root is not a usable directory.
pub async fn serve(
    config: ToolExecutorConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ToolExecutorError> {
    if let Some(root) = &config.allowed_root {
        WorkspaceRoot::new(root).map_err(|source| ToolExecutorError::InvalidRoot {
            path: root.clone(),
            source,
        })?;
    }
    let server = grpc_server(config, Vec::new());
    tracing::info!("tool-executor ready");
    openheim_proto::transport::serve(server, listener, shutdown).await?;
    Ok(())
}

/// Why the service could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ToolExecutorError {
    #[error("workspace root {path:?} is not a usable directory: {source}")]
    InvalidRoot {
        path: PathBuf,
        #[source]
        source: ToolError,
    },

    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use openheim_config::ProviderConfig;

    use super::*;

    #[test]
    fn provider_key_variables_never_reach_commands() {
        let mut config = Config::default();
        config.tools.env_deny = vec!["KUBECONFIG".to_owned()];
        config.providers.insert(
            "corp".to_owned(),
            ProviderConfig {
                env_var: Some("CORP_LLM".to_owned()),
                ..ProviderConfig::default()
            },
        );
        let executor = ToolExecutorConfig::from_config(&config, None);
        assert_eq!(executor.env_deny, ["KUBECONFIG", "CORP_LLM"]);
        let env = env::EnvPolicy::new(&executor.env_allow, &executor.env_deny);
        assert!(!env.passes(OsStr::new("CORP_LLM")));
        assert_eq!(executor.sandbox, SandboxMode::BestEffort);
        assert!(!executor.web_fetch_allow_private);
    }
}
