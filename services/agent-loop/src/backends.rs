//! Client-side adapter: the generated gRPC clients of llm-proxy,
//! tool-executor and mcp-broker, and the conversion of their transport errors
//! into [`AgentError`]. The loop never sees a `tonic::Status`.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::{
    CreateSessionRequest, SessionInfo, TurnEvent, TurnInput, agent_loop_client::AgentLoopClient,
};
use openheim_proto::common::v1::{Elicitation, ElicitationAnswer, ToolCall, ToolDefinition};
use openheim_proto::llm_proxy::v1::{
    CompleteRequest, CompletionEvent, EmbedPurpose, EmbedRequest, ResolveModelRequest,
    ResolveModelResponse, llm_proxy_client::LlmProxyClient,
};
use openheim_proto::mcp_broker::v1::{
    AttachSessionServersRequest, CallToolRequest, CallToolResponse, DetachSessionRequest,
    GetPromptRequest, GetPromptResponse, ListPromptsRequest, ListServersRequest, McpPrompt,
    ServerSpec, ServerStatus, mcp_broker_client::McpBrokerClient,
};
use openheim_proto::tool_executor::v1::{
    ExecuteRequest, ExecuteResponse, ListDirRequest, ListToolsRequest, ReadFileRequest,
    ReadFileResponse, RunHookRequest, RunHookResponse, Workspace,
    tool_executor_client::ToolExecutorClient,
};
use openheim_proto::transport::MAX_MESSAGE_BYTES;

use crate::error::AgentError;
use crate::peer_cache::{Expiring, PEER_CACHE_TTL};

/// Deadline of quick metadata calls (tool lists, attaching servers).
const METADATA_DEADLINE: Duration = Duration::from_secs(30);

fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(METADATA_DEADLINE);
    request
}

/// The services a turn talks to. Cheap to clone (one per concurrent call).
#[derive(Clone)]
pub struct Backends {
    llm: LlmProxyClient<GrpcChannel>,
    tools: ToolExecutorClient<GrpcChannel>,
    mcp: McpBrokerClient<GrpcChannel>,
    /// Shared by every clone: answers reused across turns.
    cache: Arc<PeerAnswers>,
}

/// What [`Backends`] remembers of its peers' answers (`peer_cache.rs`).
struct PeerAnswers {
    /// llm-proxy's resolution, by the model asked for.
    models: Expiring<String, ResolveModelResponse>,
    /// tool-executor's tools, by (workspace root, shell allowed, read-only).
    builtin_tools: Expiring<(String, bool, bool), Vec<ToolDefinition>>,
}

/// How much longer than a hook's timeout its `RunHook` call may take
/// (starting the sandbox, collecting output after the kill).
const HOOK_GRACE: Duration = Duration::from_secs(5);

/// Deadline of filling in an MCP prompt (its server may be slow).
const MCP_PROMPT_DEADLINE: Duration = Duration::from_secs(70);

/// Deadline of one embeddings call (llm-proxy retries inside it).
const EMBED_DEADLINE: Duration = Duration::from_secs(60);

/// The tools a turn starts with.
pub struct ToolList {
    pub tools: Vec<(ToolDefinition, ToolRoute)>,
    /// MCP servers still in their first connection attempt.
    pub pending_mcp: Vec<String>,
}

/// Where a tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolRoute {
    Executor,
    Mcp,
    /// The memory tools, answered by the agent loop itself (`memory.rs`).
    Memory,
    /// `delegate_task`, answered by the agent loop itself (`delegate.rs`).
    Delegate,
    /// `update_plan`, answered by the agent loop itself (`plan.rs`).
    Plan,
}

impl Backends {
    pub fn new(llm: GrpcChannel, tools: GrpcChannel, mcp: GrpcChannel) -> Self {
        Self {
            llm: LlmProxyClient::new(llm)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            tools: ToolExecutorClient::new(tools)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            mcp: McpBrokerClient::new(mcp)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            cache: Arc::new(PeerAnswers {
                models: Expiring::new(PEER_CACHE_TTL),
                builtin_tools: Expiring::new(PEER_CACHE_TTL),
            }),
        }
    }

    /// Starts a completion; the stream yields events until a terminal one.
    pub async fn complete(
        &self,
        request: CompleteRequest,
    ) -> Result<impl Stream<Item = Result<CompletionEvent, AgentError>> + use<>, AgentError> {
        let stream = self
            .llm
            .clone()
            .complete(request)
            .await
            .map_err(|s| backend("llm-proxy", &s))?
            .into_inner();
        Ok(stream.map(|item| item.map_err(|s| backend("llm-proxy", &s))))
    }

    /// The provider and model llm-proxy would call for `model`, with its
    /// context window and output cap (0 = unknown).
    /// Reused for [`PEER_CACHE_TTL`].
    pub async fn resolve_model(&self, model: &str) -> Result<ResolveModelResponse, AgentError> {
        if let Some(resolved) = self.cache.models.get(&model.to_owned()) {
            return Ok(resolved);
        }
        let request = with_deadline(ResolveModelRequest {
            model: model.to_owned(),
        });
        let resolved = self
            .llm
            .clone()
            .resolve_model(request)
            .await
            .map_err(|s| backend("llm-proxy", &s))?
            .into_inner();
        self.cache.models.put(model.to_owned(), resolved.clone());
        Ok(resolved)
    }

    /// One vector per text from the embeddings model `model`.
    pub async fn embed(
        &self,
        model: &str,
        inputs: Vec<String>,
        purpose: EmbedPurpose,
    ) -> Result<Vec<Vec<f32>>, AgentError> {
        let mut request = tonic::Request::new(EmbedRequest {
            model: model.to_owned(),
            inputs,
            purpose: purpose as i32,
        });
        request.set_timeout(EMBED_DEADLINE);
        let response = self
            .llm
            .clone()
            .embed(request)
            .await
            .map_err(|s| backend("llm-proxy", &s))?
            .into_inner();
        Ok(response.embeddings.into_iter().map(|e| e.values).collect())
    }

    /// Tool definitions of tool-executor and mcp-broker, with their routes,
    /// and the MCP servers still starting (their tools come later). A
    /// failing mcp-broker costs its tools, not the turn. tool-executor's are
    /// reused for [`PEER_CACHE_TTL`]; mcp-broker's are asked each time.
    pub async fn list_tools(
        &self,
        workspace: &Workspace,
        session_id: &str,
        read_only: bool,
    ) -> Result<ToolList, AgentError> {
        // Independent services: ask both at once.
        let (builtin, mcp) = tokio::join!(
            self.builtin_tools(workspace, read_only),
            self.mcp_tools(session_id, read_only)
        );
        let mut tools: Vec<_> = builtin?
            .into_iter()
            .map(|t| (t, ToolRoute::Executor))
            .collect();
        let pending_mcp = match mcp {
            Ok((mcp, pending)) => {
                tools.extend(mcp.into_iter().map(|t| (t, ToolRoute::Mcp)));
                pending
            }
            Err(error) => {
                tracing::warn!(%error, "mcp-broker unavailable; its tools are left out of this turn");
                Vec::new()
            }
        };
        Ok(ToolList { tools, pending_mcp })
    }

    /// mcp-broker's tools for `session_id` (only read-only ones for a
    /// read-only session) and the servers still starting.
    pub async fn mcp_tools(
        &self,
        session_id: &str,
        read_only: bool,
    ) -> Result<(Vec<ToolDefinition>, Vec<String>), AgentError> {
        let request = with_deadline(openheim_proto::mcp_broker::v1::ListToolsRequest {
            session_id: session_id.to_owned(),
        });
        let response = self
            .mcp
            .clone()
            .list_tools(request)
            .await
            .map_err(|s| backend("mcp-broker", &s))?
            .into_inner();
        let tools = response
            .tools
            .into_iter()
            .filter(|t| t.read_only || !read_only)
            .collect();
        Ok((tools, response.pending_servers))
    }

    async fn builtin_tools(
        &self,
        workspace: &Workspace,
        read_only: bool,
    ) -> Result<Vec<ToolDefinition>, AgentError> {
        let key = (workspace.root.clone(), workspace.allow_shell, read_only);
        if let Some(tools) = self.cache.builtin_tools.get(&key) {
            return Ok(tools);
        }
        let request = with_deadline(ListToolsRequest {
            workspace: Some(workspace.clone()),
            read_only,
        });
        let tools = self
            .tools
            .clone()
            .list_tools(request)
            .await
            .map_err(|s| backend("tool-executor", &s))?
            .into_inner()
            .tools;
        self.cache.builtin_tools.put(key, tools.clone());
        Ok(tools)
    }

    /// Makes a session's directory (0700, `workspace.create`) where
    /// tool-executor keeps the workspace: it owns the volume, which this
    /// process may see read-only or not at all. Opening the directory with
    /// a one-entry listing is what creates it.
    pub async fn prepare_workspace(&self, workspace: &Workspace) -> Result<(), AgentError> {
        let request = with_deadline(ListDirRequest {
            workspace: Some(Workspace {
                create: true,
                ..workspace.clone()
            }),
            path: String::new(),
            recursive: false,
            max_entries: 1,
        });
        self.tools
            .clone()
            .list_dir(request)
            .await
            .map_err(|s| backend("tool-executor", &s))?;
        Ok(())
    }

    pub async fn execute(
        &self,
        workspace: &Workspace,
        call: &ToolCall,
    ) -> Result<ExecuteResponse, AgentError> {
        let request = ExecuteRequest {
            workspace: Some(workspace.clone()),
            call: Some(call.clone()),
            timeout_secs: 0,
        };
        Ok(self
            .tools
            .clone()
            .execute(request)
            .await
            .map_err(|s| backend("tool-executor", &s))?
            .into_inner())
    }

    /// Runs a hook command in tool-executor. tool-executor kills it after
    /// `timeout`; this call gives up a little later in any case, so a hook
    /// never holds a turn longer than its timeout allows.
    pub async fn run_hook(
        &self,
        workspace: &Workspace,
        command: &str,
        input: String,
        timeout: Duration,
    ) -> Result<RunHookResponse, AgentError> {
        let secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX).max(1);
        let mut request = tonic::Request::new(RunHookRequest {
            workspace: Some(workspace.clone()),
            command: command.to_owned(),
            input,
            timeout_secs: secs,
        });
        let limit = timeout + HOOK_GRACE;
        request.set_timeout(limit);
        let mut tools = self.tools.clone();
        match tokio::time::timeout(limit, tools.run_hook(request)).await {
            Ok(answer) => Ok(answer
                .map_err(|s| backend("tool-executor", &s))?
                .into_inner()),
            Err(_) => Ok(RunHookResponse {
                timed_out: true,
                ..RunHookResponse::default()
            }),
        }
    }

    /// Reads at most `max_bytes` of a workspace file through tool-executor
    /// (which holds the workspace and confines the read to it); `None` when
    /// the file does not exist.
    pub async fn read_file(
        &self,
        workspace: &Workspace,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<ReadFileResponse>, AgentError> {
        let request = with_deadline(ReadFileRequest {
            workspace: Some(workspace.clone()),
            path: path.to_owned(),
            max_bytes,
        });
        match self.tools.clone().read_file(request).await {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(backend("tool-executor", &status)),
        }
    }

    /// Runs an MCP tool: its text, whether it failed, and its images.
    pub async fn call_mcp(
        &self,
        session_id: &str,
        call: &ToolCall,
    ) -> Result<CallToolResponse, AgentError> {
        let request = CallToolRequest {
            session_id: session_id.to_owned(),
            call: Some(call.clone()),
            timeout_ms: 0,
        };
        Ok(self
            .mcp
            .clone()
            .call_tool(request)
            .await
            .map_err(|s| backend("mcp-broker", &s))?
            .into_inner())
    }

    /// Runs an MCP tool whose server may ask the user for input while it
    /// runs: each question goes to `ask`, and its answer back.
    pub async fn call_mcp_asking<F, Fut>(
        &self,
        session_id: &str,
        call: &ToolCall,
        mut ask: F,
    ) -> Result<CallToolResponse, AgentError>
    where
        F: FnMut(Elicitation) -> Fut,
        Fut: std::future::Future<Output = ElicitationAnswer>,
    {
        use openheim_proto::mcp_broker::v1::{
            CallToolInput, ElicitationReply, call_tool_event, call_tool_input,
        };
        let (inputs, rx) = tokio::sync::mpsc::channel(4);
        let start = CallToolRequest {
            session_id: session_id.to_owned(),
            call: Some(call.clone()),
            timeout_ms: 0,
        };
        let start = CallToolInput {
            input: Some(call_tool_input::Input::Start(start)),
        };
        let _ = inputs.send(start).await;
        let broker = |s: tonic::Status| backend("mcp-broker", &s);
        let mut events = self
            .mcp
            .clone()
            .call_tool_interactive(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(broker)?
            .into_inner();
        while let Some(event) = events.message().await.map_err(broker)? {
            match event.event {
                Some(call_tool_event::Event::Question(question)) => {
                    let answer = ask(question.elicitation.unwrap_or_default()).await;
                    let reply = ElicitationReply {
                        id: question.id,
                        answer: Some(answer),
                    };
                    let reply = CallToolInput {
                        input: Some(call_tool_input::Input::Reply(reply)),
                    };
                    let _ = inputs.send(reply).await;
                }
                Some(call_tool_event::Event::Result(result)) => return Ok(result),
                None => {}
            }
        }
        Err(broker(tonic::Status::unavailable(
            "the call ended without a result",
        )))
    }

    /// Statuses of the configured MCP servers, plus `session_id`'s own.
    pub async fn list_mcp_servers(
        &self,
        session_id: &str,
    ) -> Result<Vec<ServerStatus>, AgentError> {
        let request = with_deadline(ListServersRequest {
            session_id: session_id.to_owned(),
        });
        Ok(self
            .mcp
            .clone()
            .list_servers(request)
            .await
            .map_err(|s| backend("mcp-broker", &s))?
            .into_inner()
            .servers)
    }

    /// The prompts of the MCP servers of `session_id`.
    pub async fn list_mcp_prompts(&self, session_id: &str) -> Result<Vec<McpPrompt>, AgentError> {
        let request = with_deadline(ListPromptsRequest {
            session_id: session_id.to_owned(),
        });
        Ok(self
            .mcp
            .clone()
            .list_prompts(request)
            .await
            .map_err(|s| backend("mcp-broker", &s))?
            .into_inner()
            .prompts)
    }

    /// A prompt filled in; an unknown command is `UnknownPrompt`, a missing
    /// argument `InvalidInput`, anything else the broker's failure.
    pub async fn get_mcp_prompt(
        &self,
        request: GetPromptRequest,
    ) -> Result<GetPromptResponse, AgentError> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(MCP_PROMPT_DEADLINE);
        match self.mcp.clone().get_prompt(request).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) if status.code() == tonic::Code::NotFound => {
                Err(AgentError::UnknownPrompt(status.message().to_owned()))
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                Err(AgentError::InvalidInput(status.message().to_owned()))
            }
            Err(status) => Err(backend("mcp-broker", &status)),
        }
    }

    pub async fn attach_mcp_servers(
        &self,
        session_id: &str,
        servers: Vec<ServerSpec>,
    ) -> Result<(), AgentError> {
        if servers.is_empty() {
            return Ok(());
        }
        self.mcp
            .clone()
            .attach_session_servers(with_deadline(AttachSessionServersRequest {
                session_id: session_id.to_owned(),
                servers,
            }))
            .await
            .map_err(|s| backend("mcp-broker", &s))?;
        Ok(())
    }

    /// Stops the session's own MCP servers (the configured ones stay).
    pub async fn detach_mcp_servers(&self, session_id: &str) -> Result<(), AgentError> {
        self.mcp
            .clone()
            .detach_session(with_deadline(DetachSessionRequest {
                session_id: session_id.to_owned(),
            }))
            .await
            .map_err(|s| backend("mcp-broker", &s))?;
        Ok(())
    }
}

/// How a turn reaches an agent loop for its sub-agents: their sessions are
/// created and their turns run through the `AgentLoop` RPCs like any
/// caller's — in this process over an in-process channel, or over a remote
/// one (a deployment's agent-loop address, where any replica may serve it).
#[derive(Clone)]
pub struct AgentLoopPeer {
    connect: Arc<dyn Fn() -> Option<GrpcChannel> + Send + Sync>,
}

impl AgentLoopPeer {
    /// `connect` gives a channel per use; `None` when the agent loop is
    /// shutting down.
    pub fn new(connect: impl Fn() -> Option<GrpcChannel> + Send + Sync + 'static) -> Self {
        Self {
            connect: Arc::new(connect),
        }
    }

    fn client(&self) -> Result<AgentLoopClient<GrpcChannel>, AgentError> {
        let channel = (self.connect)().ok_or_else(|| AgentError::Backend {
            service: "agent-loop",
            message: "the agent loop is shutting down".to_owned(),
        })?;
        Ok(AgentLoopClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    pub async fn create_session(
        &self,
        request: CreateSessionRequest,
    ) -> Result<SessionInfo, AgentError> {
        let info = self
            .client()?
            .create_session(with_deadline(request))
            .await
            .map_err(|s| match s.code() {
                tonic::Code::InvalidArgument | tonic::Code::NotFound => {
                    AgentError::InvalidInput(s.message().to_owned())
                }
                _ => backend("agent-loop", &s),
            })?;
        Ok(info.into_inner())
    }

    /// Opens a turn: `inputs` must start with `start`; dropping the
    /// returned stream cancels the turn.
    pub async fn turn(
        &self,
        inputs: tokio::sync::mpsc::Receiver<TurnInput>,
    ) -> Result<BoxStream<'static, Result<TurnEvent, AgentError>>, AgentError> {
        let stream = self
            .client()?
            .turn(tokio_stream::wrappers::ReceiverStream::new(inputs))
            .await
            .map_err(|s| backend("agent-loop", &s))?
            .into_inner();
        Ok(stream
            .map(|item| item.map_err(|s| backend("agent-loop", &s)))
            .boxed())
    }
}

fn backend(service: &'static str, status: &tonic::Status) -> AgentError {
    AgentError::Backend {
        service,
        message: status.message().to_owned(),
    }
}
