//! The embeddable API: build a runtime in your program ([`Openheim::builder`]),
//! then create, load and list sessions and prompt them with streamed events.
//!
//! Like every openheim library, it never reads environment variables or the
//! current directory: pass a config file, or set everything on the builder.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use openheim_config::{Config, LoadOptions, McpServerConfig, ProviderConfig};
use openheim_llm_proxy::CustomProviders;
use openheim_llm_proxy::custom::LlmProvider;
use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::Compact;
use openheim_proto::agent_loop::v1::{
    ApprovalMode, CancelTurn, CreateSessionRequest, Decision, ForgetMemoryRequest,
    GetMcpPromptRequest, ListMcpPromptsRequest, ListMcpServersRequest, ListMemoryRequest,
    ListMemoryResponse, ListSessionsRequest, ListSkillsRequest, ListToolsRequest,
    LoadSessionRequest, MemoryNote, PermissionDecision, SessionInfo, SetSessionModeRequest,
    SetSessionModelRequest, SetSessionSkillsRequest, StartTurn, TurnEvent, TurnInput,
    agent_loop_client::AgentLoopClient, turn_input::Input,
};
use openheim_proto::common::v1::{Image, Message, ToolDefinition};
use openheim_proto::llm_proxy::v1::{
    ListModelsRequest, ProviderModels, ResolveModelRequest, ResolveModelResponse,
    llm_proxy_client::LlmProxyClient,
};
use openheim_proto::mcp_broker::v1::{McpPrompt, ServerStatus};
use openheim_proto::transport::MAX_MESSAGE_BYTES;
use openheim_tool_executor::ToolHandler;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{Extensions, Runtime, RuntimeError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] openheim_config::ConfigError),
    #[error("{0} must be set on the builder")]
    Missing(&'static str),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Agent(String),
    /// A custom LLM provider was registered under a name that cannot be
    /// selected as `name/model`.
    #[error("custom LLM provider name {name:?}: {reason}")]
    ProviderName { name: String, reason: &'static str },
}

fn agent(status: tonic::Status) -> Error {
    Error::Agent(status.message().to_owned())
}

/// Builds an [`Openheim`].
#[derive(Default)]
pub struct OpenheimBuilder {
    config_file: Option<PathBuf>,
    config: Option<Config>,
    providers: Vec<(String, ProviderConfig)>,
    mcp_servers: Vec<(String, McpServerConfig)>,
    default_provider: Option<String>,
    work_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    allow_shell: Option<bool>,
    max_iterations: Option<u32>,
    tools: Vec<Arc<dyn ToolHandler>>,
    llm_providers: CustomProviders,
}

impl OpenheimBuilder {
    /// Starts from this config file (same format as `~/.openheim/config.toml`).
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Self {
        self.config_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Starts from an already built configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds (or replaces) a provider.
    pub fn provider(mut self, name: impl Into<String>, provider: ProviderConfig) -> Self {
        self.providers.push((name.into(), provider));
        self
    }

    /// Provider used when no model is named.
    pub fn default_provider(mut self, name: impl Into<String>) -> Self {
        self.default_provider = Some(name.into());
        self
    }

    pub fn mcp_server(mut self, name: impl Into<String>, server: McpServerConfig) -> Self {
        self.mcp_servers.push((name.into(), server));
        self
    }

    /// Workspace the tools are confined to (required unless the config sets it).
    pub fn work_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.work_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Where `system.md`, `skills/` and `history/` live (required unless the
    /// config sets it).
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn allow_shell(mut self, allow: bool) -> Self {
        self.allow_shell = Some(allow);
        self
    }

    pub fn max_iterations(mut self, n: u32) -> Self {
        self.max_iterations = Some(n);
        self
    }

    /// Registers a custom tool, offered to the model next to the built-ins.
    pub fn tool(mut self, tool: impl ToolHandler + 'static) -> Self {
        self.tools.push(Arc::new(tool));
        self
    }

    /// Registers an LLM provider implemented by this application under
    /// `name` (replacing one of that name), selectable as `name/model` like
    /// any configured provider and served under the same retries,
    /// fallbacks, context-window fitting, usage accounting and telemetry
    /// (see `docs/custom-llm-provider.md`). Its policy settings (default
    /// model, context window, retries, fallbacks…) come from the provider
    /// entry of the same name, set with [`OpenheimBuilder::provider`] or in
    /// the config file, else the defaults. It needs the in-process
    /// llm-proxy: `build` fails when the config names a remote one.
    pub fn llm_provider(mut self, name: impl Into<String>, provider: impl LlmProvider) -> Self {
        self.llm_providers.insert(name.into(), Arc::new(provider));
        self
    }

    pub fn build(self) -> Result<Openheim, Error> {
        for name in self.llm_providers.keys() {
            check_provider_name(name)?;
        }
        let mut config = match (self.config, &self.config_file) {
            (Some(config), _) => config,
            (None, Some(path)) => openheim_config::load(&LoadOptions {
                file: Some(path.clone()),
                file_required: true,
                ..LoadOptions::default()
            })?,
            (None, None) => Config::default(),
        };
        config.providers.extend(self.providers);
        config.mcp_servers.extend(self.mcp_servers);
        if let Some(name) = self.default_provider {
            config.default_provider = Some(name);
        }
        if let Some(dir) = self.work_dir {
            config.work_dir = Some(dir);
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = Some(dir);
        }
        if let Some(allow) = self.allow_shell {
            config.allow_shell = allow;
        }
        if let Some(n) = self.max_iterations {
            config.max_iterations = n;
        }
        if config.work_dir.is_none() {
            return Err(Error::Missing("work_dir"));
        }
        if config.data_dir.is_none() {
            return Err(Error::Missing("data_dir"));
        }
        let extensions = Extensions {
            tools: self.tools,
            llm_providers: self.llm_providers,
        };
        let runtime = Runtime::start_with(&config, extensions)?;
        Ok(Openheim { runtime })
    }
}

/// A provider name must survive `name/model` resolution (split at the
/// first `/`) and show in messages as typed.
fn check_provider_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.contains('/') {
        "contains '/', which separates the provider from the model"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "contains whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(Error::ProviderName {
        name: name.to_owned(),
        reason,
    })
}

/// A running openheim: the agent loop and its services.
pub struct Openheim {
    runtime: Runtime,
}

/// Settings of a new session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `""`/`None` = the default model; `name` or `provider/name`.
    pub model: Option<String>,
    /// Added after the configured default skills.
    pub skills: Vec<String>,
    /// Defaults to the runtime's `work_dir`.
    pub work_dir: Option<PathBuf>,
    /// `Ask` makes turns emit permission requests that [`Turn::answer`] answers.
    pub approval: ApprovalMode,
    pub read_only: bool,
}

impl Openheim {
    pub fn builder() -> OpenheimBuilder {
        OpenheimBuilder::default()
    }

    /// Wraps services already started (or connected to) by the caller,
    /// e.g. a front end that also needs the runtime's other channels.
    pub fn from_runtime(runtime: Runtime) -> Self {
        Self { runtime }
    }

    fn client(&self) -> AgentLoopClient<GrpcChannel> {
        self.runtime.agent_loop()
    }

    pub async fn new_session(&self, options: SessionOptions) -> Result<Session, Error> {
        let request = CreateSessionRequest {
            caller: None,
            work_dir: options
                .work_dir
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            skills: options.skills,
            model: options.model.unwrap_or_default(),
            mcp_servers: Vec::new(),
            approval_mode: options.approval as i32,
            read_only: options.read_only,
            parent: None,
            agent: None,
        };
        let info = self
            .client()
            .create_session(request)
            .await
            .map_err(agent)?
            .into_inner();
        Ok(Session {
            info,
            client: self.client(),
            thinking: None,
        })
    }

    /// An existing session and its stored conversation.
    pub async fn load_session(&self, id: &str) -> Result<(Session, Vec<Message>), Error> {
        let request = LoadSessionRequest {
            caller: None,
            session_id: id.to_owned(),
            mcp_servers: Vec::new(),
        };
        let loaded = self
            .client()
            .load_session(request)
            .await
            .map_err(agent)?
            .into_inner();
        let info = loaded
            .session
            .ok_or_else(|| Error::Agent("the agent loop returned no session".into()))?;
        let session = Session {
            info,
            client: self.client(),
            thinking: None,
        };
        Ok((session, loaded.messages))
    }

    /// Sessions, newest first: `(page, next_cursor)`.
    pub async fn list_sessions(
        &self,
        page_size: u32,
        cursor: Option<String>,
    ) -> Result<(Vec<SessionInfo>, Option<String>), Error> {
        let request = ListSessionsRequest {
            all_users: false,
            caller: None,
            page_size,
            cursor: cursor.unwrap_or_default(),
        };
        let page = self
            .client()
            .list_sessions(request)
            .await
            .map_err(agent)?
            .into_inner();
        let next = Some(page.next_cursor).filter(|c| !c.is_empty());
        Ok((page.sessions, next))
    }

    /// Names of the skills sessions can use (`<data_dir>/skills/*.md`), sorted.
    pub async fn skills(&self) -> Result<Vec<String>, Error> {
        let response = self
            .client()
            .list_skills(ListSkillsRequest {})
            .await
            .map_err(agent)?;
        Ok(response.into_inner().names)
    }

    /// The configured MCP servers and their statuses.
    pub async fn mcp_servers(&self) -> Result<Vec<ServerStatus>, Error> {
        list_mcp_servers(self.client(), String::new()).await
    }

    /// Notes of the long-term memory (`docs/memory.md`): ranked by
    /// relevance when the request has a query, else newest first.
    pub async fn memory(&self, request: ListMemoryRequest) -> Result<ListMemoryResponse, Error> {
        let response = self.client().list_memory(request).await.map_err(agent)?;
        Ok(response.into_inner())
    }

    /// Deletes the note `id`; answers with it.
    pub async fn forget_memory(&self, id: &str) -> Result<MemoryNote, Error> {
        let request = ForgetMemoryRequest {
            id: id.to_owned(),
            owner: String::new(),
        };
        let response = self.client().forget_memory(request).await.map_err(agent)?;
        Ok(response.into_inner())
    }

    /// The configured providers and their models, from the llm-proxy;
    /// `None` when this runtime has no channel to it (a remote agent loop
    /// without a `services.llm_proxy` address).
    pub async fn models(&self) -> Result<Option<Vec<ProviderModels>>, Error> {
        let Some(channel) = self.runtime.llm_proxy_channel() else {
            return Ok(None);
        };
        let response = LlmProxyClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .list_models(ListModelsRequest {})
            .await
            .map_err(agent)?;
        Ok(Some(response.into_inner().providers))
    }

    /// Which provider and model a model name (`""`, `name` or
    /// `provider/name`) resolves to, with its known context window, as
    /// llm-proxy will resolve it. `None` as for [`Openheim::models`].
    pub async fn resolve_model(&self, model: &str) -> Result<Option<ResolveModelResponse>, Error> {
        let Some(channel) = self.runtime.llm_proxy_channel() else {
            return Ok(None);
        };
        let request = ResolveModelRequest {
            model: model.to_owned(),
        };
        let response = LlmProxyClient::new(channel)
            .resolve_model(request)
            .await
            .map_err(agent)?;
        Ok(Some(response.into_inner()))
    }
}

async fn list_mcp_servers(
    mut client: AgentLoopClient<GrpcChannel>,
    session_id: String,
) -> Result<Vec<ServerStatus>, Error> {
    let response = client
        .list_mcp_servers(ListMcpServersRequest {
            session_id,
            caller: None,
        })
        .await
        .map_err(agent)?;
    Ok(response.into_inner().servers)
}

/// A session handle.
pub struct Session {
    info: SessionInfo,
    client: AgentLoopClient<GrpcChannel>,
    /// Reasoning setting sent with every turn; `None` = as configured.
    thinking: Option<openheim_config::Thinking>,
}

impl Session {
    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// How hard the model reasons in this session's next turns (the
    /// session-level `--thinking` / `/thinking`); `None` = as configured
    /// for the model. Kept by this handle, sent with each turn.
    pub fn set_thinking(&mut self, thinking: Option<openheim_config::Thinking>) {
        self.thinking = thinking;
    }

    pub fn thinking(&self) -> Option<openheim_config::Thinking> {
        self.thinking
    }

    /// Sends a prompt; the returned [`Turn`] streams its events.
    pub async fn prompt(&mut self, text: impl Into<String>) -> Result<Turn, Error> {
        self.prompt_with_images(text, Vec::new()).await
    }

    /// Sends a prompt with images after its text (see
    /// [`crate::images::read_image`] to read them from files).
    pub async fn prompt_with_images(
        &mut self,
        text: impl Into<String>,
        images: Vec<Image>,
    ) -> Result<Turn, Error> {
        let start = StartTurn {
            caller: None,
            session_id: self.info.id.clone(),
            prompt: crate::images::prompt_blocks(text.into(), images),
            client_capabilities: None,
            thinking: self.thinking.map(openheim_acp::thinking_setting),
            compact: None,
            max_iterations: None,
        };
        self.start(start).await
    }

    /// Summarises the conversation so far (`/compact`): the turn streams a
    /// notice with the tokens before and after, and no answer. `focus`
    /// tells the summary what to keep above all ("" = nothing special).
    pub async fn compact(&mut self, focus: impl Into<String>) -> Result<Turn, Error> {
        let start = StartTurn {
            session_id: self.info.id.clone(),
            compact: Some(Compact {
                focus: focus.into(),
            }),
            ..StartTurn::default()
        };
        self.start(start).await
    }

    async fn start(&mut self, start: StartTurn) -> Result<Turn, Error> {
        let (inputs, rx) = mpsc::channel(8);
        let first = TurnInput {
            input: Some(Input::Start(start)),
        };
        inputs
            .send(first)
            .await
            .map_err(|_| Error::Agent("turn input closed".into()))?;
        let events = self
            .client
            .turn(ReceiverStream::new(rx))
            .await
            .map_err(agent)?
            .into_inner();
        Ok(Turn { inputs, events })
    }

    /// Switches the model for the following turns.
    pub async fn set_model(&mut self, model: impl Into<String>) -> Result<(), Error> {
        let request = SetSessionModelRequest {
            caller: None,
            session_id: self.info.id.clone(),
            model: model.into(),
        };
        self.info = self
            .client
            .set_session_model(request)
            .await
            .map_err(agent)?
            .into_inner();
        Ok(())
    }

    /// Replaces the session's skills (the configured defaults included)
    /// from its next turn. Unknown skill names are an error and change
    /// nothing.
    pub async fn set_skills(&mut self, skills: Vec<String>) -> Result<(), Error> {
        let request = SetSessionSkillsRequest {
            caller: None,
            session_id: self.info.id.clone(),
            skills,
        };
        self.info = self
            .client
            .set_session_skills(request)
            .await
            .map_err(agent)?
            .into_inner();
        Ok(())
    }

    /// Switches how tool calls are approved and, when `read_only` is
    /// `Some`, whether only read-only tools are offered, from the next turn.
    pub async fn set_mode(
        &mut self,
        approval: ApprovalMode,
        read_only: Option<bool>,
    ) -> Result<(), Error> {
        let request = SetSessionModeRequest {
            caller: None,
            session_id: self.info.id.clone(),
            approval_mode: approval as i32,
            read_only,
        };
        self.info = self
            .client
            .set_session_mode(request)
            .await
            .map_err(agent)?
            .into_inner();
        Ok(())
    }

    /// The tools the session's next turn offers the model.
    pub async fn tools(&self) -> Result<Vec<ToolDefinition>, Error> {
        let request = ListToolsRequest {
            caller: None,
            session_id: self.info.id.clone(),
        };
        let response = self
            .client
            .clone()
            .list_tools(request)
            .await
            .map_err(agent)?;
        Ok(response.into_inner().tools)
    }

    /// The MCP servers the session's turns use (configured and its own),
    /// with their statuses.
    pub async fn mcp_servers(&self) -> Result<Vec<ServerStatus>, Error> {
        list_mcp_servers(self.client.clone(), self.info.id.clone()).await
    }

    /// The prompts of the session's MCP servers; each is the slash command
    /// `/{server}:{prompt}` (`docs/mcp.md`).
    pub async fn mcp_prompts(&self) -> Result<Vec<McpPrompt>, Error> {
        let request = ListMcpPromptsRequest {
            session_id: self.info.id.clone(),
        };
        let listed = self
            .client
            .clone()
            .list_mcp_prompts(request)
            .await
            .map_err(agent)?;
        Ok(listed.into_inner().prompts)
    }

    /// An MCP prompt filled in by its server: `command` is
    /// `{server}:{prompt}`, `input` what the user typed after it
    /// (`name=value` pairs, or the first argument's value). `None` when no
    /// server of the session has that prompt.
    pub async fn mcp_prompt(
        &self,
        command: &str,
        input: &str,
    ) -> Result<Option<(String, Vec<Image>)>, Error> {
        let request = GetMcpPromptRequest {
            session_id: self.info.id.clone(),
            command: command.to_owned(),
            input: input.to_owned(),
            arguments: Default::default(),
        };
        match self.client.clone().get_mcp_prompt(request).await {
            Ok(filled) => {
                let filled = filled.into_inner();
                Ok(Some((filled.text, filled.images)))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(agent(status)),
        }
    }
}

/// A running turn: a stream of [`TurnEvent`]s ending with `ended` or
/// `error`. Dropping it cancels the turn.
pub struct Turn {
    inputs: mpsc::Sender<TurnInput>,
    events: tonic::Streaming<TurnEvent>,
}

impl Turn {
    /// Cancels the turn; its stream then ends with stop reason `cancelled`.
    pub async fn cancel(&self) {
        let cancel = TurnInput {
            input: Some(Input::Cancel(CancelTurn {})),
        };
        let _ = self.inputs.send(cancel).await;
    }

    /// Answers a `permission_request` event.
    pub async fn answer(&self, request_id: impl Into<String>, decision: Decision) {
        let answer = TurnInput {
            input: Some(Input::Permission(PermissionDecision {
                request_id: request_id.into(),
                decision: decision as i32,
            })),
        };
        let _ = self.inputs.send(answer).await;
    }
}

impl Stream for Turn {
    type Item = Result<TurnEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.events)
            .poll_next(cx)
            .map(|item| item.map(|r| r.map_err(agent)))
    }
}
