//! The configuration schema: every key, its type and its default.
//!
//! Field names are the keys of `config.toml` and, upper-cased with `__`
//! between levels, of the `OPENHEIM_*` environment variables
//! (`OPENHEIM_PROVIDERS__OPENAI__API_BASE`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::Secret;
use crate::hooks::HooksConfig;
use crate::pricing::Price;
use crate::thinking::{Thinking, ThinkingStyle};

pub const DEFAULT_MAX_ITERATIONS: u32 = 10;
pub const DEFAULT_SERVER_PORT: u16 = 1217;
pub const DEFAULT_SHELL_TIMEOUT_SECS: u64 = 120;
/// Every tool result is capped to this many bytes before the model sees it.
pub const DEFAULT_MAX_TOOL_RESULT_BYTES: usize = 128 * 1024;
pub const DEFAULT_PROVIDER_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_MAX_RETRIES: u32 = 3;
pub const DEFAULT_RETRY_BASE_DELAY_MS: u64 = 500;
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 30_000;
/// `providers.NAME.cooldown_secs`: after a model of the provider failed
/// and its fallback took over, later calls go straight to the fallback for
/// this long.
pub const DEFAULT_COOLDOWN_SECS: u64 = 60;
pub const DEFAULT_MCP_CALL_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// `server.header_timeout_secs`: a client that has not sent a request's
/// headers by then is disconnected.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// `server.idle_timeout_secs`: an HTTP connection with nothing in flight.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// `server.max_pending_per_ip`: connections of one address still waiting
/// for their first request to complete.
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 64;
/// The longest one completion may take, every retry and fallback included.
pub const DEFAULT_COMPLETION_TIMEOUT_SECS: u64 = 30 * 60;

/// The whole configuration, after layering and validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub default_provider: Option<String>,
    pub max_iterations: u32,
    pub default_skills: Vec<String>,
    /// Files whose text joins the system prompt after the skills, relative
    /// to the session's workspace, read after its `AGENTS.md`
    /// (docs/configuration.md, "Project instructions").
    pub project_instructions: Vec<PathBuf>,
    /// Workspace root; the binary fills in the current directory when unset.
    pub work_dir: Option<PathBuf>,
    pub allow_shell: bool,
    /// Where `system.md`, `skills/` and `history/` live; the binary fills in
    /// `~/.openheim` when unset.
    pub data_dir: Option<PathBuf>,
    /// Total deadline of one LLM completion, retries and fallbacks included
    /// (each provider's `timeout_secs` bounds the silence between chunks).
    pub completion_timeout_secs: u64,
    pub tools: ToolsConfig,
    pub permissions: PermissionsConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
    pub server: ServerConfig,
    pub services: ServicesConfig,
    pub store: StoreConfig,
    pub memory: MemoryConfig,
    /// Sub-agents: `[agents]` limits and `[agents.NAME]` profiles, read key
    /// by key (`agents.rs`).
    #[serde(skip)]
    pub agents: crate::agents::AgentsConfig,
    pub telemetry: TelemetryConfig,
    pub ui: UiConfig,
    /// Fitting the conversation into the model's window: compaction.
    pub context: ContextConfig,
    /// Prices by `"provider/model"`, USD per million tokens.
    pub pricing: BTreeMap<String, Price>,
    /// Commands run at points of a session (`[[hooks.pre_tool_use]]`, ...).
    pub hooks: HooksConfig,
    /// What processes started for the model (shell commands, stdio MCP
    /// servers) may inherit: openheim's environment at start-up without the
    /// variables a deny rule matches (`[tools] env_deny`, provider keys,
    /// credentials by name). Filled by the binary, never read from a file;
    /// `[tools] env_allow` narrows it per command.
    #[serde(skip)]
    pub child_env: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_provider: None,
            max_iterations: DEFAULT_MAX_ITERATIONS,
            default_skills: Vec::new(),
            project_instructions: Vec::new(),
            work_dir: None,
            allow_shell: true,
            data_dir: None,
            completion_timeout_secs: DEFAULT_COMPLETION_TIMEOUT_SECS,
            tools: ToolsConfig::default(),
            permissions: PermissionsConfig::default(),
            providers: BTreeMap::new(),
            mcp_servers: BTreeMap::new(),
            server: ServerConfig::default(),
            services: ServicesConfig::default(),
            store: StoreConfig::default(),
            memory: MemoryConfig::default(),
            agents: crate::agents::AgentsConfig::default(),
            telemetry: TelemetryConfig::default(),
            ui: UiConfig::default(),
            context: ContextConfig::default(),
            pricing: BTreeMap::new(),
            hooks: HooksConfig::default(),
            child_env: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    pub shell_timeout_secs: u64,
    pub max_result_bytes: usize,
    /// OS-level confinement of shell commands (Landlock on Linux).
    pub sandbox: SandboxMode,
    /// Directories shell commands may write to besides the workspace and
    /// the temp directories (e.g. a build cache), when confined.
    pub writable_paths: Vec<PathBuf>,
    /// When non-empty, commands get only these variables (plus PATH, HOME,
    /// LANG-style basics). `NAME` or a `PREFIX*` pattern, case-insensitive.
    pub env_allow: Vec<String>,
    /// Variables never passed to commands (same patterns); wins over
    /// `env_allow`.
    pub env_deny: Vec<String>,
    /// Lets `web_fetch` reach loopback, private and link-local addresses.
    pub web_fetch_allow_private: bool,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            shell_timeout_secs: DEFAULT_SHELL_TIMEOUT_SECS,
            max_result_bytes: DEFAULT_MAX_TOOL_RESULT_BYTES,
            sandbox: SandboxMode::BestEffort,
            writable_paths: Vec::new(),
            env_allow: Vec::new(),
            env_deny: Vec::new(),
            web_fetch_allow_private: false,
        }
    }
}

/// `tools.sandbox`: how shell commands are confined by the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Refuse to run commands when confinement is unavailable.
    Enforce,
    /// Confine as far as the kernel allows and say what is missing.
    BestEffort,
    /// No OS confinement: the container is the sandbox.
    Off,
}

impl SandboxMode {
    /// The mode as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::BestEffort => "best_effort",
            Self::Off => "off",
        }
    }

    /// The mode written as `name` ([`Self::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Enforce, Self::BestEffort, Self::Off]
            .into_iter()
            .find(|mode| mode.name() == name)
    }
}

/// What the permission gate does with a tool call of some kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolPolicy {
    /// Run without asking.
    Auto,
    /// Ask the user (remembering "always" answers per session).
    Ask,
    /// Refuse without asking.
    Deny,
}

/// How `openheim run` treats calls that would need approval (nobody is there
/// to ask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunApproval {
    /// Allow every call (the workspace boundary and OS confinement still apply).
    Auto,
    /// Refuse calls that would need approval; `auto` kinds still run.
    Deny,
}

/// The permission gate's policy per tool kind, for interactive sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionsConfig {
    /// read_file, list_dir, search.
    pub read: ToolPolicy,
    /// write_file, edit_file, deletes and moves.
    pub edit: ToolPolicy,
    /// The shell.
    pub execute: ToolPolicy,
    /// web_fetch.
    pub fetch: ToolPolicy,
    /// Anything else, MCP tools included.
    pub other: ToolPolicy,
    /// Default of `openheim run` (flags `--yes` / `--deny` override it).
    pub run: RunApproval,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        Self {
            read: ToolPolicy::Auto,
            edit: ToolPolicy::Ask,
            execute: ToolPolicy::Ask,
            fetch: ToolPolicy::Ask,
            other: ToolPolicy::Ask,
            run: RunApproval::Auto,
        }
    }
}

/// The wire protocol of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    OpenaiCompatible,
    Anthropic,
    Gemini,
    /// Implemented by the application that embeds openheim and registered
    /// on its library builder (`docs/custom-llm-provider.md`): openheim
    /// knows no endpoint or key for it, only its policy settings.
    Custom,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::OpenaiCompatible => "openai_compatible",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Custom => "custom",
        }
    }

    /// The kind a provider has when its config does not say: inferred from
    /// its name, falling back to a generic OpenAI-compatible endpoint.
    pub fn infer(provider_name: &str) -> Self {
        let name = provider_name.to_ascii_lowercase();
        if name.contains("anthropic") || name.contains("claude") {
            Self::Anthropic
        } else if name.contains("gemini") || name.contains("google") {
            Self::Gemini
        } else if name == "openai" {
            Self::Openai
        } else {
            Self::OpenaiCompatible
        }
    }

    /// The environment variable a provider of this kind takes its key from
    /// when its config names none; `Some` exactly for the kinds whose API
    /// always needs a key.
    pub fn default_key_var(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("OPENAI_API_KEY"),
            Self::Anthropic => Some("ANTHROPIC_API_KEY"),
            Self::Gemini => Some("GEMINI_API_KEY"),
            Self::OpenaiCompatible | Self::Custom => None,
        }
    }

    /// Public API base of the kind, when it has one.
    pub fn default_api_base(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com/v1"),
            Self::Gemini => Some("https://generativelanguage.googleapis.com/v1beta"),
            Self::OpenaiCompatible | Self::Custom => None,
        }
    }
}

/// Which OpenAI API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireApi {
    #[default]
    Chat,
    Responses,
}

/// Which embeddings API a provider speaks (`providers.NAME.embeddings_api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingsApi {
    /// `POST {api_base}/embeddings` (OpenAI and compatible servers); Gemini
    /// providers always use `batchEmbedContents`.
    #[default]
    Openai,
    /// `POST {host}/api/embed`: Ollama's native API (a trailing `/v1` of
    /// `api_base` is dropped).
    Ollama,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Inferred from the provider's name when unset (see [`ProviderKind::infer`]).
    pub kind: Option<ProviderKind>,
    pub api_base: Option<String>,
    pub default_model: Option<String>,
    pub models: Vec<String>,
    /// Name of the environment variable that holds the API key.
    pub env_var: Option<String>,
    /// The API key itself; after loading, also holds the value read from `env_var`.
    pub api_key: Option<Secret>,
    pub timeout_secs: u64,
    pub max_tokens: Option<u32>,
    pub context_window: Option<u64>,
    pub max_retries: u32,
    pub retry_base_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    /// `provider/model` entries tried in order once retries are exhausted.
    pub fallbacks: Vec<String>,
    /// Seconds a model that failed over to a fallback is skipped by later
    /// calls (0: never skipped).
    pub cooldown_secs: u64,
    pub wire_api: WireApi,
    /// How an `openai_compatible` provider is asked for embeddings
    /// (`memory.embeddings`): its OpenAI-style `/embeddings` (default) or
    /// Ollama's own `/api/embed`.
    pub embeddings_api: EmbeddingsApi,
    /// How hard this provider's models reason unless a session says
    /// otherwise; unset = off.
    pub thinking: Option<Thinking>,
    /// Per-model settings that win over `thinking` (`{ "o3" = "high" }`).
    pub model_thinking: BTreeMap<String, Thinking>,
    /// How an Anthropic model is asked to think; unset = by model (adaptive
    /// for Claude 4.6 and later, a token budget before).
    pub thinking_style: Option<ThinkingStyle>,
    /// Prices of this provider's models (`{ "corp-large" = { input = 1.0,
    /// output = 4.0 } }`), USD per million tokens.
    pub pricing: BTreeMap<String, Price>,
    /// Whether this provider's models take images; unset = by provider kind
    /// and model name (see [`crate::vision`]).
    pub vision: Option<bool>,
    /// Per-model settings that win over `vision` (`{ "llava" = true }`).
    pub model_vision: BTreeMap<String, bool>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            kind: None,
            api_base: None,
            default_model: None,
            models: Vec::new(),
            env_var: None,
            api_key: None,
            timeout_secs: DEFAULT_PROVIDER_TIMEOUT_SECS,
            max_tokens: None,
            context_window: None,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_base_delay_ms: DEFAULT_RETRY_BASE_DELAY_MS,
            retry_max_delay_ms: DEFAULT_RETRY_MAX_DELAY_MS,
            fallbacks: Vec::new(),
            cooldown_secs: DEFAULT_COOLDOWN_SECS,
            wire_api: WireApi::Chat,
            embeddings_api: EmbeddingsApi::Openai,
            thinking: None,
            model_thinking: BTreeMap::new(),
            thinking_style: None,
            pricing: BTreeMap::new(),
            vision: None,
            model_vision: BTreeMap::new(),
        }
    }
}

impl ProviderConfig {
    /// How hard `model` reasons when the request says nothing: its own
    /// setting, else the provider's, else off.
    pub fn thinking_for(&self, model: &str) -> Thinking {
        self.model_thinking
            .get(model)
            .copied()
            .or(self.thinking)
            .unwrap_or_default()
    }

    /// Whether `model` of this provider (named `name`) takes images: the
    /// model's setting, else the provider's, else the default for its kind
    /// and name.
    pub fn vision_for(&self, name: &str, model: &str) -> bool {
        self.model_vision
            .get(model)
            .copied()
            .or(self.vision)
            .unwrap_or_else(|| crate::vision::default_vision(self.kind_for(name), model))
    }

    /// The provider's kind: explicit, or inferred from `name`.
    pub fn kind_for(&self, name: &str) -> ProviderKind {
        self.kind.unwrap_or_else(|| ProviderKind::infer(name))
    }

    /// The API base: explicit, or the kind's public default.
    pub fn api_base_for(&self, name: &str) -> Option<String> {
        self.api_base.clone().or_else(|| {
            self.kind_for(name)
                .default_api_base()
                .map(ToOwned::to_owned)
        })
    }
}

/// An MCP server: either a child process (`command`) or Streamable HTTP (`url`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub url: Option<String>,
    pub headers: BTreeMap<String, Secret>,
    pub call_timeout_secs: Option<u64>,
    /// OAuth 2.1 sign-in of a Streamable HTTP server (`openheim mcp login
    /// NAME`); servers that ask for it are found without this table, which
    /// only adds a registered client or scopes (docs/mcp.md#oauth).
    pub oauth: Option<McpOAuthConfig>,
}

/// `[mcp_servers.NAME.oauth]`: how openheim signs in to an MCP server whose
/// authorization server it cannot register with on its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpOAuthConfig {
    /// A client registered by hand; without it openheim registers itself
    /// (Dynamic Client Registration) when the authorization server offers it.
    pub client_id: Option<String>,
    /// The secret of `client_id`, for a confidential client.
    pub client_secret: Option<Secret>,
    /// Scopes to ask for; default: what the server's metadata names.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub auth_tokens: Vec<Secret>,
    /// Origins (`scheme://host[:port]`, or `*`) browsers may connect from.
    pub allowed_origins: Vec<String>,
    /// Host names clients may address the server by (the `Host` header),
    /// besides the loopback names and the bind address: the names a proxy
    /// or DNS gives it (`openheim.example.com`, `openheim:1217`). `*`
    /// accepts any (only sensible behind a proxy that checks it).
    pub allowed_hosts: Vec<String>,
    /// Whether ACP clients of the server may start stdio MCP servers
    /// (`mcpServers` with a `command`): a command on the server. Off by
    /// default; HTTP MCP servers are always accepted.
    pub allow_client_stdio_mcp: bool,
    /// Open WebSocket connections at once; more are answered 503. Each
    /// holds a file descriptor: keep it under the process's `ulimit -n`.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// A connection without a request in flight (and not upgraded to a
    /// WebSocket) is closed after this long.
    pub idle_timeout_secs: u64,
    /// Connections one client address may have open before its first
    /// request completes (slow or half-sent requests).
    pub max_pending_per_ip: usize,
    /// Users known by a static token (`[server.users.NAME]`).
    pub users: BTreeMap<String, crate::UserConfig>,
    /// Users known by JWTs of an OpenID Connect issuer.
    pub oidc: Option<crate::OidcConfig>,
    /// Every user's limits (`[server.limits]`); `[server.users.NAME.limits]`
    /// overrides them key by key.
    pub limits: crate::LimitsConfig,
    /// How `work_dir` is divided between users; unset: `user` when users
    /// are configured, else `shared` ([`ServerConfig::workspace_mode`]).
    #[serde(deserialize_with = "crate::users::empty_is_unset")]
    pub workspaces: Option<crate::WorkspacesConfig>,
    /// Directories shared on purpose by their members.
    pub projects: BTreeMap<String, crate::ProjectConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: DEFAULT_SERVER_PORT,
            auth_tokens: Vec::new(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            allow_client_stdio_mcp: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            max_pending_per_ip: DEFAULT_MAX_PENDING_PER_IP,
            users: BTreeMap::new(),
            oidc: None,
            limits: crate::LimitsConfig::default(),
            workspaces: None,
            projects: BTreeMap::new(),
        }
    }
}

/// Addresses of remote services; an absent entry means "run it in-process".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesConfig {
    pub agent_loop: Option<String>,
    pub llm_proxy: Option<String>,
    pub tool_executor: Option<String>,
    pub mcp_broker: Option<String>,
}

/// Every Redis key of the session store starts with this and `:`.
pub const DEFAULT_STORE_PREFIX: &str = "openheim";
/// How long a turn's session lease outlives its last renewal.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;
/// Bounds of `store.lease_ttl_secs`.
pub const LEASE_TTL_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;

/// Session store: files under `<data_dir>/history` unless `url` is `redis://…`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub url: Option<String>,
    /// Redis only: every key starts with `<prefix>:`, so several deployments
    /// can share one Redis.
    pub prefix: String,
    /// How long a session's turn lease lives without being renewed, which is
    /// how long a crashed agent-loop replica can block the sessions it was
    /// running turns of. A live holder renews it every fifth of that.
    pub lease_ttl_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            prefix: DEFAULT_STORE_PREFIX.to_owned(),
            lease_ttl_secs: DEFAULT_LEASE_TTL_SECS,
        }
    }
}

/// `memory.enabled` when unset, for the CLI's own sessions (`run`, the TUI,
/// `acp`): one person, one user scope.
pub const MEMORY_ENABLED_LOCALLY: bool = true;
/// `memory.enabled` when unset, for deployments that serve several people
/// (`openheim serve`, the `openheim-agent-loop` binary): sessions do not yet
/// know their user, so every caller would share one user scope.
pub const MEMORY_ENABLED_SERVING: bool = false;

/// Long-term memory (`docs/memory.md`): notes that outlive a session,
/// stored next to the sessions (SQLite under `data_dir`, or the Redis of
/// `store.url`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Whether the memory tools are offered. Unset: on for the CLI (`run`,
    /// the TUI, `acp`), off for server deployments (`serve`, the
    /// `openheim-agent-loop` binary), which do not yet tell their users
    /// apart; see [`MemoryConfig::enabled_or`].
    pub enabled: Option<bool>,
    /// The project key of project notes; unset = the session's workspace
    /// path.
    pub project: Option<String>,
    /// `provider/model` of an embeddings model: search then fuses BM25 with
    /// cosine similarity. Unset = full-text search only.
    pub embeddings: Option<String>,
}

impl MemoryConfig {
    /// `enabled`, or the binary's default when it is unset.
    pub fn enabled_or(&self, default: bool) -> bool {
        self.enabled.unwrap_or(default)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
}

/// Colour themes of the interactive terminal UI (`ui.theme`).
pub const THEMES: &[&str] = &["green", "blue", "red", "white", "cyan", "magenta", "yellow"];

/// `context.compact_at` when unset: summarise once the conversation would
/// take 80% of the model's window.
pub const DEFAULT_COMPACT_AT: f64 = 0.8;

/// How a long conversation is kept inside the model's context window
/// (docs/context.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextConfig {
    /// Fraction of the window (0 < x ≤ 1) past which the older part of the
    /// conversation is summarised before the next call.
    pub compact_at: f64,
    /// `model` or `provider/model` that writes the summaries; unset = the
    /// session's model.
    pub compaction_model: Option<String>,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            compact_at: DEFAULT_COMPACT_AT,
            compaction_model: None,
        }
    }
}

/// The interactive terminal UI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// One of [`THEMES`]; the TUI's `/theme` writes it back to the config file.
    pub theme: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            theme: THEMES[0].to_owned(),
        }
    }
}
