//! agent-loop service: owns sessions and turns. It runs the agent loop
//! (LLM call → tool calls → results, repeated), gates tool calls on
//! permission, assembles the system prompt and persists every message.
//!
//! It reaches llm-proxy, tool-executor and mcp-broker only through their
//! generated gRPC clients ([`Backends`]), in-process or remote alike.

mod backends;
mod client;
mod compaction;
mod context;
mod error;
mod events;
mod grpc;
mod hooks;
mod instructions;
mod memory;
mod outcome;
mod owner;
mod peer_cache;
mod permission;
mod plan;
pub mod prompt;
mod reply;
mod service;
mod shown;
mod spans;
pub mod store;
mod turn;
mod workspace;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::agent_loop_server::AgentLoopServer;
use openheim_proto::transport::{MAX_MESSAGE_BYTES, in_process as channel_in_process};
use tokio::net::TcpListener;

pub use backends::Backends;
pub use error::AgentError;
pub use memory::MemorySettings;
pub use turn::{CANCELLED_RESULT, REJECTED_RESULT};

/// What the agent loop needs from the configuration.
#[derive(Debug, Clone)]
pub struct AgentLoopConfig {
    pub max_iterations: u32,
    pub default_skills: Vec<String>,
    /// Files read after the workspace's `AGENTS.md` into the system prompt,
    /// relative to the workspace.
    pub project_instructions: Vec<PathBuf>,
    /// Holds `system.md`, `skills/` and (file store) `history/`.
    pub data_dir: PathBuf,
    /// Workspace of sessions created without one.
    pub default_work_dir: PathBuf,
    /// When set, every session's workspace must lie inside it (a server:
    /// remote clients work inside its workspace only).
    pub workspace_root: Option<PathBuf>,
    /// How `workspace_root` is divided between users (`server.workspaces`).
    pub workspace_mode: openheim_access::WorkspaceMode,
    /// Directories shared on purpose (`[server.projects]`), relative to
    /// `workspace_root`.
    pub projects: std::collections::BTreeMap<String, openheim_config::ProjectConfig>,
    pub allow_shell: bool,
    /// Default timeout of `execute_command`, also when a turn's caller runs
    /// it (ACP `terminal/*`).
    pub shell_timeout: Duration,
    /// Whether a caller offering a terminal may run `execute_command`
    /// itself. False when the configuration requires OS confinement of
    /// commands (`tools.sandbox = "enforce"`), which only tool-executor gives.
    pub shell_delegation: bool,
    pub max_result_bytes: usize,
    pub permissions: openheim_config::PermissionsConfig,
    /// `None` or `"files"`: files under `<data_dir>/history`;
    /// `redis://…` / `rediss://…`: Redis, shared by replicas.
    pub store_url: Option<String>,
    /// Redis store: every key starts with `<store_prefix>:`.
    pub store_prefix: String,
    /// How long a turn's session lease outlives its last renewal: the
    /// longest a crashed replica blocks a session of the Redis store.
    pub lease_ttl: Duration,
    /// Long-term memory; `None` = off. Its notes live next to the sessions:
    /// `<data_dir>/memory.db`, or the store's Redis.
    pub memory: Option<MemorySettings>,
    /// `context.compact_at`: fraction of the window past which the
    /// conversation is summarised.
    pub compact_at: f64,
    /// `context.compaction_model`; `None` = each session's model.
    pub compaction_model: Option<String>,
    /// Sub-agents: limits and configured profiles (`[agents]`).
    pub agents: openheim_config::AgentsConfig,
    /// Where sub-agents' sessions and turns go: an agent-loop address (a
    /// deployment's, so any replica may run them); `None` = this process.
    pub agents_address: Option<String>,
    /// Commands run at points of each session (docs/automation.md, "Hooks"),
    /// through tool-executor.
    pub hooks: openheim_config::HooksConfig,
}

impl AgentLoopConfig {
    /// Takes the agent-loop's keys from a loaded configuration. `work_dir`
    /// and `data_dir` must have been filled in by the binary.
    pub fn from_config(config: &openheim_config::Config) -> Result<Self, StartError> {
        let missing = |key: &'static str| StartError::Config(format!("`{key}` is not set"));
        Ok(Self {
            max_iterations: config.max_iterations,
            default_skills: config.default_skills.clone(),
            project_instructions: config.project_instructions.clone(),
            data_dir: config.data_dir.clone().ok_or_else(|| missing("data_dir"))?,
            default_work_dir: config.work_dir.clone().ok_or_else(|| missing("work_dir"))?,
            workspace_root: None,
            workspace_mode: config.server.workspace_mode(),
            projects: config.server.projects.clone(),
            allow_shell: config.allow_shell,
            shell_timeout: Duration::from_secs(config.tools.shell_timeout_secs),
            shell_delegation: config.tools.sandbox != openheim_config::SandboxMode::Enforce,
            max_result_bytes: config.tools.max_result_bytes,
            permissions: config.permissions.clone(),
            hooks: config.hooks.clone(),
            store_url: config.store.url.clone(),
            store_prefix: config.store.prefix.clone(),
            lease_ttl: Duration::from_secs(config.store.lease_ttl_secs),
            // Binaries that serve several people set `memory.enabled` to
            // MEMORY_ENABLED_SERVING before calling this when it is unset.
            memory: config
                .memory
                .enabled_or(openheim_config::MEMORY_ENABLED_LOCALLY)
                .then(|| MemorySettings {
                    project: config.memory.project.clone(),
                    embeddings: config.memory.embeddings.clone(),
                }),
            compact_at: config.context.compact_at,
            compaction_model: config.context.compaction_model.clone(),
            agents: config.agents.clone(),
            agents_address: None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("agent-loop configuration: {0}")]
    Config(String),
    #[error("cannot open the session store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot set up long-term memory: {0}")]
    Memory(#[from] openheim_memory::MemoryError),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Opens the configured session store. A Redis store connects on first
/// use (this must run inside a Tokio runtime); [`serve`] checks it before
/// serving, so an unreachable Redis fails the service at startup.
pub fn open_store(config: &AgentLoopConfig) -> Result<Arc<dyn store::SessionStore>, StartError> {
    match config.store_url.as_deref() {
        None | Some("files") => Ok(Arc::new(store::FileStore::new(
            config.data_dir.join("history"),
        )?)),
        Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
            // A write retried longer than the lease lives could land after
            // another replica took the session over.
            let options = store::RedisStoreOptions {
                retry_window: (config.lease_ttl * 4 / 5).min(store::DEFAULT_RETRY_WINDOW),
                ..store::RedisStoreOptions::new(url, config.store_prefix.clone())
            };
            Ok(Arc::new(store::RedisStore::open(&options)?))
        }
        Some(_) => Err(StartError::Config(
            "`store.url` must be \"files\" or a redis:// or rediss:// URL".to_owned(),
        )),
    }
}

/// The long-term memory of this configuration, when it is on: the store's
/// Redis, or a SQLite file in the data directory. Opens nothing yet.
fn open_memory(
    config: &AgentLoopConfig,
    backends: &Backends,
) -> Result<Option<Arc<memory::AgentMemory>>, StartError> {
    let Some(settings) = &config.memory else {
        return Ok(None);
    };
    let backend = match config.store_url.as_deref() {
        Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
            memory::MemoryBackend::Redis {
                url,
                prefix: &config.store_prefix,
            }
        }
        _ => memory::MemoryBackend::Sqlite(config.data_dir.join(memory::DATABASE_FILE)),
    };
    let default_work_dir = config.default_work_dir.display().to_string();
    let memory = memory::AgentMemory::new(backend, settings, backends, default_work_dir)?;
    Ok(Some(Arc::new(memory)))
}

/// The gRPC service, ready for a tonic server or [`in_process`].
pub fn grpc_server(
    config: AgentLoopConfig,
    backends: Backends,
) -> Result<AgentLoopServer<grpc::AgentLoopGrpc>, StartError> {
    let store = open_store(&config)?;
    server_over(config, store, backends)
}

fn server_over(
    config: AgentLoopConfig,
    store: Arc<dyn store::SessionStore>,
    backends: Backends,
) -> Result<AgentLoopServer<grpc::AgentLoopGrpc>, StartError> {
    let memory = open_memory(&config, &backends)?;
    let remote_peer = match &config.agents_address {
        Some(address) => Some(
            // Balanced like every caller of the agent loop: a child may run
            // on any replica the address resolves to.
            openheim_proto::balance::balanced(address)
                .map_err(|e| StartError::Config(format!("`services.agent_loop`: {e}")))?,
        ),
        None => None,
    };
    let service = Arc::new_cyclic(|this: &std::sync::Weak<service::AgentService>| {
        let peer = match remote_peer {
            Some(channel) => backends::AgentLoopPeer::new(move || Some(channel.clone())),
            // This process: a fresh in-process channel per delegation,
            // holding the service only while it is used.
            None => {
                let this = this.clone();
                backends::AgentLoopPeer::new(move || {
                    let service = this.upgrade()?;
                    Some(channel_in_process(agent_loop_server(service)))
                })
            }
        };
        let delegation = Arc::new(turn::delegate::Delegation {
            max_depth: config.agents.max_depth,
            max_children: config.agents.max_children,
            configured: config.agents.profiles.clone(),
            dir: config.data_dir.join("agents"),
            peer,
        });
        service::AgentService::new(config, store, backends)
            .with_memory(memory)
            .with_delegation(Some(delegation))
    });
    Ok(agent_loop_server(service))
}

fn agent_loop_server(service: Arc<service::AgentService>) -> AgentLoopServer<grpc::AgentLoopGrpc> {
    AgentLoopServer::new(grpc::AgentLoopGrpc::new(service))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A channel to an agent loop running in this process.
pub fn in_process(config: AgentLoopConfig, backends: Backends) -> Result<GrpcChannel, StartError> {
    Ok(channel_in_process(grpc_server(config, backends)?))
}

/// Serves the agent loop on `listener` until `shutdown` resolves.
pub async fn serve(
    config: AgentLoopConfig,
    backends: Backends,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let store = open_store(&config)?;
    store.check().await?;
    let server = server_over(config, store, backends)?;
    openheim_proto::transport::serve(server, listener, shutdown).await?;
    Ok(())
}
