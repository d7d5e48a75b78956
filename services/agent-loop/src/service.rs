//! Session operations and turn start-up, independent of the transport.

use std::sync::Arc;

use openheim_access::{Action, Decision, Principal, authorize};
use openheim_proto::agent_loop::v1::{
    ApprovalMode, ChildSession, ClientCapabilities, Compact, CreateSessionRequest,
    ForgetMemoryRequest, GetMcpPromptRequest, GetMcpPromptResponse, ListMemoryRequest,
    ListMemoryResponse, ListSessionsRequest, ListSessionsResponse, LoadSessionResponse, MemoryNote,
    ParentLink, SessionInfo, SetSessionModeRequest, StartTurn, TurnEnded, TurnEvent,
};
use openheim_proto::common::v1::{ToolDefinition, Usage};
use openheim_proto::mcp_broker::v1::{GetPromptRequest, McpPrompt, ServerSpec, ServerStatus};
use openheim_proto::tool_executor::v1::Workspace;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::AgentLoopConfig;
use crate::backends::Backends;
use crate::client::{ClientDelegation, PendingClientReplies};
use crate::error::AgentError;
use crate::hooks::HookRunner;
use crate::instructions;
use crate::memory::{AgentMemory, with_memory_tools};
use crate::owner::{owner_field, principal_of};
use crate::permission::{PendingQuestions, Remembered};
use crate::prompt::{self, PromptSources};
use crate::store::{
    Approval, ChildRef, Lease, Record, SessionMeta, SessionStore, SessionSummary, StoreError,
    StoredMessage, StoredSession, check_session_id, cursor_after, now_ms,
};
use crate::turn::delegate::{self, Delegation, TurnChildren};
use crate::turn::{Turn, TurnSettings};
use crate::workspace;

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 500;

/// Where the answers of a turn's caller are delivered while it runs.
#[derive(Default, Clone)]
pub struct TurnInbox {
    pub questions: Arc<PendingQuestions>,
    pub client_replies: Arc<PendingClientReplies>,
}

impl TurnInbox {
    /// Drops every waiting question and client request.
    pub fn clear(&self) {
        self.questions.clear();
        self.client_replies.clear();
    }
}

pub struct AgentService {
    config: AgentLoopConfig,
    sources: PromptSources,
    store: Arc<dyn SessionStore>,
    backends: Backends,
    /// Long-term memory, when it is on.
    memory: Option<Arc<AgentMemory>>,
    /// Sub-agents, when turns may start them.
    delegation: Option<Arc<Delegation>>,
}

impl AgentService {
    pub fn new(config: AgentLoopConfig, store: Arc<dyn SessionStore>, backends: Backends) -> Self {
        Self {
            sources: PromptSources::in_data_dir(&config.data_dir),
            config,
            store,
            backends,
            memory: None,
            delegation: None,
        }
    }

    /// Lets turns start sub-agents through `delegation`'s peer.
    pub fn with_delegation(mut self, delegation: Option<Arc<Delegation>>) -> Self {
        self.delegation = delegation;
        self
    }

    /// Offers long-term memory to turns and front ends.
    pub fn with_memory(mut self, memory: Option<Arc<AgentMemory>>) -> Self {
        self.memory = memory;
        self
    }

    pub async fn create_session(
        &self,
        request: CreateSessionRequest,
    ) -> Result<SessionInfo, AgentError> {
        let approval_mode = request.approval_mode();
        let principal = principal_of(request.caller.as_ref());
        let id = uuid::Uuid::new_v4().to_string();
        let place = workspace::new_session_dir(&self.config, &principal, &request.work_dir, &id)?;
        if let Some(dir) = &place.to_prepare {
            self.backends.prepare_workspace(dir).await?;
        }
        let work_dir = place.dir;
        let skills = prompt::merge_skills(&self.config.default_skills, &request.skills);
        prompt::check_skills(&self.sources, &skills).await?;
        let agent = request.agent.map(delegate::agent_run);
        let identity = agent.as_ref().map(|a| a.identity.as_str());
        // Fail now, not on the first prompt, when the identity is missing.
        prompt::assemble_as(&self.sources, identity, &[], "").await?;
        // A sub-agent's session belongs to its parent's owner.
        let (depth, owner) = match &request.parent {
            Some(parent) => {
                let parent = self
                    .owned(&parent.session_id, &principal, Action::UseSession)
                    .await?
                    .summary
                    .meta;
                (parent.depth.saturating_add(1), parent.owner)
            }
            None => (0, owner_field(&principal)),
        };
        let meta = SessionMeta {
            id,
            created_at_ms: now_ms(),
            work_dir: work_dir.display().to_string(),
            model: request.model,
            skills,
            approval: approval_from_wire(approval_mode),
            read_only: request.read_only,
            parent: request.parent.map(delegate::parent_ref),
            agent,
            depth,
            owner,
        };
        let servers = workspace::confine_servers(&self.config, &meta, request.mcp_servers)?;
        self.store.create(&meta).await?;
        self.backends.attach_mcp_servers(&meta.id, servers).await?;
        let summary = SessionSummary {
            title: String::new(),
            updated_at_ms: meta.created_at_ms,
            message_count: 0,
            usage: Usage::zero(),
            llm_calls: 0,
            meta,
        };
        Ok(session_info(&summary))
    }

    /// Session `session_id` when `principal` may do `action` with it;
    /// another user's is answered exactly as a missing one.
    pub(crate) async fn owned(
        &self,
        session_id: &str,
        principal: &Principal,
        action: Action,
    ) -> Result<StoredSession, AgentError> {
        check_session_id(session_id)?;
        let stored = self.store.load(session_id).await?;
        match authorize(principal, action, Some(&stored.summary.meta.owner)) {
            Decision::Allow => Ok(stored),
            Decision::NotFound | Decision::Forbidden => {
                Err(StoreError::NotFound(session_id.to_owned()).into())
            }
        }
    }

    /// Loads a session; attaching MCP servers (ACP `session/load`) is
    /// acting in it, so only its owner may.
    pub async fn load_session(
        &self,
        session_id: &str,
        mcp_servers: Vec<ServerSpec>,
        principal: &Principal,
    ) -> Result<LoadSessionResponse, AgentError> {
        let action = if mcp_servers.is_empty() {
            Action::ReadSession
        } else {
            Action::UseSession
        };
        let stored = self.owned(session_id, principal, action).await?;
        let servers = workspace::confine_servers(&self.config, &stored.summary.meta, mcp_servers)?;
        self.backends
            .attach_mcp_servers(session_id, servers)
            .await?;
        Ok(LoadSessionResponse {
            session: Some(session_info(&stored.summary)),
            messages: stored.messages.iter().map(StoredMessage::to_wire).collect(),
            children: stored.children.iter().map(child_session).collect(),
        })
    }

    /// Deletes a stored session: refused while one of its turns runs (the
    /// lease is held for the deletion, so none starts meanwhile).
    pub async fn delete_session(
        &self,
        session_id: &str,
        principal: &Principal,
    ) -> Result<(), AgentError> {
        self.owned(session_id, principal, Action::DeleteSession)
            .await?;
        let Some(lease) = self
            .store
            .try_lease(session_id, self.config.lease_ttl)
            .await?
        else {
            let retry_after = self.store.busy_for(session_id).await.ok().flatten();
            return Err(AgentError::Busy {
                session_id: session_id.to_owned(),
                retry_after,
            });
        };
        let deleted = self.store.delete(session_id).await;
        lease.release().await;
        deleted?;
        self.close_session(session_id).await
    }

    /// Stops the session's own MCP servers; its history stays.
    pub async fn close_session(&self, session_id: &str) -> Result<(), AgentError> {
        check_session_id(session_id)?;
        self.backends.detach_mcp_servers(session_id).await
    }

    pub async fn list_sessions(
        &self,
        request: ListSessionsRequest,
    ) -> Result<ListSessionsResponse, AgentError> {
        let limit = match request.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let principal = principal_of(request.caller.as_ref());
        let action = if request.all_users {
            Action::ListAllSessions
        } else {
            Action::ListOwnSessions
        };
        if authorize(&principal, action, None) != Decision::Allow {
            return Err(AgentError::Forbidden(
                "only an admin may list every user's sessions".into(),
            ));
        }
        let mut cursor = Some(request.cursor).filter(|c| !c.is_empty());
        let mut sessions: Vec<SessionSummary> = Vec::new();
        // Pages of the store until `limit` of the caller's are found; the
        // cursor then points after the last one returned.
        loop {
            let page = self.store.list(limit, cursor.as_deref()).await?;
            let next = page.next_cursor;
            let mut rest = page.sessions.into_iter();
            for summary in rest.by_ref() {
                if request.all_users || principal.owns(&summary.meta.owner) {
                    sessions.push(summary);
                    if sessions.len() == limit {
                        break;
                    }
                }
            }
            let more = rest.next().is_some() || next.is_some();
            let next = match sessions.last() {
                Some(last) if sessions.len() == limit && more => {
                    Some(cursor_after(last.updated_at_ms, &last.meta.id))
                }
                _ if sessions.len() < limit && next.is_some() => {
                    cursor = next;
                    continue;
                }
                _ => None,
            };
            return Ok(ListSessionsResponse {
                sessions: sessions.iter().map(session_info).collect(),
                next_cursor: next.unwrap_or_default(),
            });
        }
    }

    pub async fn set_model(
        &self,
        session_id: &str,
        model: String,
        principal: &Principal,
    ) -> Result<SessionInfo, AgentError> {
        self.owned(session_id, principal, Action::UseSession)
            .await?;
        let record = Record::Model {
            at_ms: now_ms(),
            model,
        };
        self.store.append(session_id, &record).await?;
        Ok(session_info(&self.store.load(session_id).await?.summary))
    }

    /// Switches the session's approval mode and/or read-only flag; the
    /// change is a record in its log, so it survives restarts, and applies
    /// from the session's next turn.
    pub async fn set_mode(
        &self,
        request: SetSessionModeRequest,
    ) -> Result<SessionInfo, AgentError> {
        let principal = principal_of(request.caller.as_ref());
        let mut summary = self
            .owned(&request.session_id, &principal, Action::UseSession)
            .await?
            .summary;
        if request.approval_mode() != ApprovalMode::Unspecified {
            summary.meta.approval = approval_from_wire(request.approval_mode());
        }
        if let Some(read_only) = request.read_only {
            summary.meta.read_only = read_only;
        }
        summary.updated_at_ms = now_ms();
        let record = Record::Mode {
            at_ms: summary.updated_at_ms,
            approval: summary.meta.approval,
            read_only: summary.meta.read_only,
        };
        self.store.append(&request.session_id, &record).await?;
        Ok(session_info(&summary))
    }

    /// Replaces the session's skills with `skills` (deduplicated, order
    /// kept), checked like those of a new session; a record in its log,
    /// applied from its next turn.
    pub async fn set_skills(
        &self,
        session_id: &str,
        skills: Vec<String>,
        principal: &Principal,
    ) -> Result<SessionInfo, AgentError> {
        let mut summary = self
            .owned(session_id, principal, Action::UseSession)
            .await?
            .summary;
        let skills = prompt::merge_skills(&[], &skills);
        prompt::check_skills(&self.sources, &skills).await?;
        summary.updated_at_ms = now_ms();
        let record = Record::Skills {
            at_ms: summary.updated_at_ms,
            skills: skills.clone(),
        };
        self.store.append(session_id, &record).await?;
        summary.meta.skills = skills;
        Ok(session_info(&summary))
    }

    /// The tools the session's next turn offers the model, as the turn
    /// lists them.
    pub async fn list_tools(
        &self,
        session_id: &str,
        principal: &Principal,
    ) -> Result<Vec<ToolDefinition>, AgentError> {
        let meta = self
            .owned(session_id, principal, Action::ReadSession)
            .await?
            .summary
            .meta;
        let workspace = workspace::of_session(&self.config, &meta)?;
        let tools = self
            .backends
            .list_tools(&workspace, &meta.id, meta.read_only)
            .await?
            .tools;
        let mut tools = with_memory_tools(tools, self.memory.is_some(), meta.read_only);
        crate::plan::offer(&mut tools);
        delegate::offer(self.delegation.as_deref(), &meta, &mut tools).await;
        Ok(tools
            .into_iter()
            .map(|(definition, _)| definition)
            .collect())
    }

    /// `ListMemory`: a search or a page of the notes a workspace sees.
    pub async fn list_memory(
        &self,
        request: ListMemoryRequest,
    ) -> Result<ListMemoryResponse, AgentError> {
        let memory = self.memory.as_ref().ok_or(AgentError::MemoryDisabled)?;
        memory.list(request).await
    }

    /// `ForgetMemory`: deletes one note of the owner.
    pub async fn forget_memory(
        &self,
        request: ForgetMemoryRequest,
    ) -> Result<MemoryNote, AgentError> {
        let memory = self.memory.as_ref().ok_or(AgentError::MemoryDisabled)?;
        memory.forget(request).await
    }

    /// Names of the skills sessions can use (`<data_dir>/skills/*.md`),
    /// sorted; none when the directory does not exist.
    pub async fn list_skills(&self) -> Vec<String> {
        prompt::available_skills(&self.sources.skills_dir).await
    }

    /// The MCP servers a session's turns use, with their statuses: the
    /// configured ones and, for a session, its own.
    pub async fn list_mcp_servers(
        &self,
        session_id: &str,
        principal: &Principal,
    ) -> Result<Vec<ServerStatus>, AgentError> {
        if !session_id.is_empty() {
            self.owned(session_id, principal, Action::ReadSession)
                .await?;
        }
        self.backends.list_mcp_servers(session_id).await
    }

    /// The MCP prompts a session can use as slash commands.
    pub async fn list_mcp_prompts(&self, session_id: &str) -> Result<Vec<McpPrompt>, AgentError> {
        if !session_id.is_empty() {
            check_session_id(session_id)?;
        }
        self.backends.list_mcp_prompts(session_id).await
    }

    /// Fills in the MCP prompt `request.command` names.
    pub async fn get_mcp_prompt(
        &self,
        request: GetMcpPromptRequest,
    ) -> Result<GetMcpPromptResponse, AgentError> {
        if !request.session_id.is_empty() {
            check_session_id(&request.session_id)?;
        }
        let filled = self
            .backends
            .get_mcp_prompt(GetPromptRequest {
                session_id: request.session_id,
                command: request.command,
                arguments: request.arguments,
                input: request.input,
            })
            .await?;
        Ok(GetMcpPromptResponse {
            text: filled.text,
            images: filled.images,
        })
    }

    /// Runs one turn to its end. Events go to `events`; answers to
    /// permission questions arrive through `inbox.questions`, answers to
    /// client requests through `inbox.client_replies`.
    ///
    /// The turn holds the session's lease from the store while it runs; if
    /// the store reports the lease lost (it could not be renewed in time,
    /// so another replica may take the session), the turn is cancelled.
    pub async fn run_turn(
        &self,
        start: StartTurn,
        events: mpsc::Sender<TurnEvent>,
        inbox: TurnInbox,
        cancel: CancellationToken,
    ) -> Result<TurnEnded, AgentError> {
        check_session_id(&start.session_id)?;
        if start.max_iterations == Some(0) {
            return Err(AgentError::InvalidInput(
                "max_iterations must be at least 1".into(),
            ));
        }
        let prompt = match &start.compact {
            Some(_) if !start.prompt.is_empty() => {
                let reason = "a compaction takes no prompt".to_owned();
                return Err(AgentError::InvalidInput(reason));
            }
            Some(_) => None,
            None => Some(
                StoredMessage::user_from_wire(&start.prompt)
                    .map_err(|e| AgentError::InvalidInput(e.to_string()))?,
            ),
        };
        let principal = principal_of(start.caller.as_ref());
        self.owned(&start.session_id, &principal, Action::UseSession)
            .await?;
        let Some(lease) = self
            .store
            .try_lease(&start.session_id, self.config.lease_ttl)
            .await?
        else {
            let retry_after = self.store.busy_for(&start.session_id).await.ok().flatten();
            return Err(AgentError::Busy {
                session_id: start.session_id,
                retry_after,
            });
        };
        let result = self
            .run_leased(start, prompt, events, inbox, cancel, &lease)
            .await;
        // Given back before the caller hears the turn ended, so its next
        // turn (on any replica) finds the session free.
        lease.release().await;
        result
    }

    async fn run_leased(
        &self,
        start: StartTurn,
        prompt: Option<StoredMessage>,
        events: mpsc::Sender<TurnEvent>,
        inbox: TurnInbox,
        cancel: CancellationToken,
        lease: &Lease,
    ) -> Result<TurnEnded, AgentError> {
        let stored = self.store.load(&start.session_id).await?;
        let meta = stored.summary.meta;
        let workspace = workspace::of_session(&self.config, &meta)?;
        let system_prompt = self.system_prompt(&meta, &workspace).await?;
        let remembered = Arc::new(Remembered::load(Arc::clone(&self.store), &meta.id).await?);
        let session_id = meta.id.clone();
        let meta_id = meta.id.clone();
        // The caller's cap, else the sub-agent profile's, else the
        // configured one.
        let max_iterations = start
            .max_iterations
            .or(meta.agent.as_ref().and_then(|a| a.max_iterations))
            .unwrap_or(self.config.max_iterations);
        let turn = Turn {
            remembered: Arc::clone(&remembered),
            meta,
            history: stored.messages,
            system_prompt,
            settings: TurnSettings {
                max_iterations,
                boundary: workspace.boundary.clone(),
                ..self.turn_settings()
            },
            store: Arc::clone(&self.store),
            backends: self.backends.clone(),
            events,
            questions: inbox.questions,
            client: ClientDelegation::new(
                start
                    .client_capabilities
                    .map(|caps| taken_up(caps, self.config.shell_delegation)),
                inbox.client_replies,
            ),
            cancel: cancel.clone(),
            memory: self.memory.clone(),
            hooks: self.hook_runner(&meta_id, workspace),
            session_usage: stored.summary.usage,
            compaction: stored.compaction,
            thinking: start.thinking,
            delegation: self.delegation.clone(),
            children: TurnChildren::default(),
        };
        let result = drive(turn, prompt, start.compact, lease, &cancel, &session_id).await;
        remembered.flush().await;
        result
    }

    /// The system prompt of a turn of the session `meta`: the agent's
    /// identity (a sub-agent profile's, or the configured one), its skills
    /// and the project instructions read from its workspace.
    async fn system_prompt(
        &self,
        meta: &SessionMeta,
        workspace: &Workspace,
    ) -> Result<String, AgentError> {
        let identity = meta.agent.as_ref().map(|a| a.identity.as_str());
        let mut system_prompt =
            prompt::assemble_as(&self.sources, identity, &meta.skills, &meta.work_dir).await?;
        let project =
            instructions::read(&self.backends, workspace, &self.config.project_instructions).await;
        prompt::push_project_instructions(&mut system_prompt, &project);
        Ok(system_prompt)
    }

    /// The hooks a turn of session `session_id` runs, in its workspace;
    /// `None` when none are configured.
    fn hook_runner(&self, session_id: &str, workspace: Workspace) -> Option<HookRunner> {
        (!self.config.hooks.is_empty()).then(|| HookRunner {
            config: Arc::new(self.config.hooks.clone()),
            backends: self.backends.clone(),
            workspace,
            session_id: session_id.to_owned(),
        })
    }

    fn turn_settings(&self) -> TurnSettings {
        TurnSettings {
            max_iterations: self.config.max_iterations,
            allow_shell: self.config.allow_shell,
            shell_timeout: self.config.shell_timeout,
            max_result_bytes: self.config.max_result_bytes,
            permissions: self.config.permissions.clone(),
            compact_at: self.config.compact_at,
            compaction_model: self.config.compaction_model.clone(),
            boundary: String::new(),
        }
    }
}

/// Runs `turn` — its prompt, or a compaction asked for without one —
/// while the session's lease holds; a lost lease cancels it.
async fn drive(
    turn: Turn,
    prompt: Option<StoredMessage>,
    compact: Option<Compact>,
    lease: &Lease,
    cancel: &CancellationToken,
    session_id: &str,
) -> Result<TurnEnded, AgentError> {
    let running = async move {
        match (prompt, compact) {
            (Some(prompt), _) => turn.run(prompt).await,
            (None, compact) => {
                let focus = compact.map(|c| c.focus).unwrap_or_default();
                turn.compact_now(&focus).await
            }
        }
    };
    tokio::pin!(running);
    tokio::select! {
        result = &mut running => result,
        () = lease.lost() => {
            tracing::warn!(session = %session_id, "lost the session's lease mid-turn; cancelling the turn");
            cancel.cancel();
            running.await
        }
    }
}

/// What a turn takes up of its caller's offer: commands stay in
/// tool-executor when the configuration requires their OS confinement
/// (`shell_delegation` false), which a caller's terminal does not give.
fn taken_up(caps: ClientCapabilities, shell_delegation: bool) -> ClientCapabilities {
    ClientCapabilities {
        terminal: caps.terminal && shell_delegation,
        ..caps
    }
}

fn approval_from_wire(mode: ApprovalMode) -> Approval {
    match mode {
        ApprovalMode::Auto => Approval::Auto,
        ApprovalMode::Deny => Approval::Deny,
        ApprovalMode::Ask | ApprovalMode::Unspecified => Approval::Ask,
    }
}

fn approval_to_wire(approval: Approval) -> ApprovalMode {
    match approval {
        Approval::Ask => ApprovalMode::Ask,
        Approval::Auto => ApprovalMode::Auto,
        Approval::Deny => ApprovalMode::Deny,
    }
}

fn session_info(summary: &SessionSummary) -> SessionInfo {
    let meta = &summary.meta;
    SessionInfo {
        id: meta.id.clone(),
        title: summary.title.clone(),
        work_dir: meta.work_dir.clone(),
        model: meta.model.clone(),
        skills: meta.skills.clone(),
        created_at_ms: meta.created_at_ms,
        updated_at_ms: summary.updated_at_ms,
        message_count: summary.message_count,
        approval_mode: approval_to_wire(meta.approval) as i32,
        read_only: meta.read_only,
        parent: meta.parent.as_ref().map(|p| ParentLink {
            session_id: p.session_id.clone(),
            tool_call_id: p.tool_call_id.clone(),
        }),
        agent: meta
            .agent
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or_default(),
        depth: meta.depth,
        usage: Some(summary.usage),
        llm_calls: summary.llm_calls,
        owner: meta.owner.clone(),
    }
}

fn child_session(child: &ChildRef) -> ChildSession {
    ChildSession {
        session_id: child.session_id.clone(),
        tool_call_id: child.tool_call_id.clone(),
        agent: child.agent.clone(),
        created_at_ms: child.created_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::store::FileStore;

    /// A service over a temporary data dir with skills `rust` and `tests`;
    /// its backends are never reached by the operations tested here.
    fn new_service(data_dir: &Path) -> AgentService {
        std::fs::write(data_dir.join("system.md"), "I am Ada.\n").unwrap();
        let config = AgentLoopConfig {
            max_iterations: 3,
            default_skills: vec!["rust".into()],
            project_instructions: Vec::new(),
            data_dir: data_dir.to_path_buf(),
            default_work_dir: data_dir.to_path_buf(),
            workspace_root: None,
            workspace_mode: openheim_access::WorkspaceMode::Shared,
            projects: Default::default(),
            allow_shell: false,
            shell_timeout: Duration::from_secs(5),
            shell_delegation: true,
            max_result_bytes: 4096,
            permissions: openheim_config::PermissionsConfig::default(),
            hooks: openheim_config::HooksConfig::default(),
            store_url: None,
            store_prefix: "openheim".into(),
            lease_ttl: Duration::from_secs(30),
            memory: None,
            compact_at: 0.8,
            compaction_model: None,
            agents: openheim_config::AgentsConfig::default(),
            agents_address: None,
        };
        let store = Arc::new(FileStore::new(data_dir.join("history")).unwrap());
        let unused = || openheim_proto::transport::remote("127.0.0.1:1").unwrap();
        let backends = Backends::new(unused(), unused(), unused());
        AgentService::new(config, store, backends)
    }

    fn add_skills(data_dir: &Path) {
        std::fs::create_dir_all(data_dir.join("skills")).unwrap();
        std::fs::write(data_dir.join("skills/rust.md"), "Use clippy.").unwrap();
        std::fs::write(data_dir.join("skills/tests.md"), "Test first.").unwrap();
        std::fs::write(data_dir.join("skills/notes.txt"), "not a skill").unwrap();
    }

    #[tokio::test]
    async fn a_server_keeps_sessions_inside_its_workspace() {
        let dir = tempfile::tempdir().unwrap();
        add_skills(dir.path());
        let root = dir.path().join("workspace");
        std::fs::create_dir_all(root.join("project")).unwrap();
        let mut service = new_service(dir.path());
        service.config.workspace_root = Some(root.clone());
        let create = |work_dir: &Path| CreateSessionRequest {
            work_dir: work_dir.display().to_string(),
            ..CreateSessionRequest::default()
        };
        for outside in [Path::new("/"), dir.path(), &root.join("project/../..")] {
            let error = service.create_session(create(outside)).await.unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("outside this server's workspace"),
                "{outside:?}: {error}"
            );
        }
        let inside = service.create_session(create(&root.join("project"))).await;
        assert!(inside.is_ok(), "{inside:?}");
    }

    #[tokio::test]
    async fn each_user_of_a_server_works_in_a_directory_of_their_own() {
        use openheim_proto::common::v1::Caller;
        let dir = tempfile::tempdir().unwrap();
        add_skills(dir.path());
        let root = dir.path().join("workspace");
        std::fs::create_dir_all(root.join(".projects/web")).unwrap();
        let mut service = new_service(dir.path());
        service.config.workspace_root = Some(root.clone());
        service.config.workspace_mode = openheim_access::WorkspaceMode::User;
        let web = openheim_config::ProjectConfig {
            path: ".projects/web".into(),
            members: vec!["alice".into()],
        };
        service.config.projects.insert("web".into(), web);
        let create = |user: &str, work_dir: &Path| CreateSessionRequest {
            work_dir: work_dir.display().to_string(),
            caller: Some(Caller {
                user: user.into(),
                admin: false,
            }),
            ..CreateSessionRequest::default()
        };
        let root = std::fs::canonicalize(&root).unwrap();
        // No cwd, or the root: the user's own directory, which
        // tool-executor is asked to make, confined to it.
        for asked in ["", root.to_str().unwrap()] {
            let alice = Principal::new("alice", openheim_access::Role::User);
            let place = workspace::new_session_dir(&service.config, &alice, asked, "s1").unwrap();
            let own = root.join("alice").display().to_string();
            assert_eq!(place.dir.display().to_string(), own);
            let prepare = place.to_prepare.unwrap();
            assert_eq!(
                (prepare.root.as_str(), prepare.boundary.as_str()),
                (own.as_str(), own.as_str())
            );
            assert!(prepare.create);
        }
        std::fs::create_dir(root.join("alice")).unwrap();
        // Not in another user's directory, nor a project Bob is no member of.
        for theirs in [root.join("alice"), root.join(".projects/web")] {
            let error = service
                .create_session(create("bob", &theirs))
                .await
                .unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("outside this server's workspace"),
                "{error}"
            );
        }
        let shared = service
            .create_session(create("alice", &root.join(".projects/web")))
            .await;
        assert!(shared.is_ok(), "{shared:?}");
        // A user id that is no directory name gets no directory.
        let error = service
            .create_session(create("..", Path::new("")))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("cannot name a directory"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn set_skills_replaces_the_list_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        add_skills(dir.path());
        let service = new_service(dir.path());
        let created = service
            .create_session(CreateSessionRequest::default())
            .await
            .unwrap();
        assert_eq!(created.skills, ["rust"]);
        let info = service
            .set_skills(
                &created.id,
                vec!["tests".into(), "rust".into(), "tests".into()],
                &Principal::local(),
            )
            .await
            .unwrap();
        assert_eq!(info.skills, ["tests", "rust"]);
        let loaded = service
            .load_session(&created.id, Vec::new(), &Principal::local())
            .await
            .unwrap();
        assert_eq!(loaded.session.unwrap().skills, ["tests", "rust"]);
        // A fresh service over the same directory reads it from the log.
        let again = new_service(dir.path());
        let loaded = again
            .load_session(&created.id, Vec::new(), &Principal::local())
            .await
            .unwrap();
        assert_eq!(loaded.session.unwrap().skills, ["tests", "rust"]);
        let info = service
            .set_skills(&created.id, Vec::new(), &Principal::local())
            .await
            .unwrap();
        assert!(info.skills.is_empty(), "{info:?}");
    }

    #[tokio::test]
    async fn set_skills_refuses_unknown_and_invalid_names_and_keeps_the_old_list() {
        let dir = tempfile::tempdir().unwrap();
        add_skills(dir.path());
        let service = new_service(dir.path());
        let id = service
            .create_session(CreateSessionRequest::default())
            .await
            .unwrap()
            .id;
        let err = service
            .set_skills(
                &id,
                vec!["tests".into(), "nope".into()],
                &Principal::local(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AgentError::Prompt(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("\"nope\"") && text.contains("available: rust, tests"),
            "{text}"
        );
        let err = service
            .set_skills(&id, vec!["../system".into()], &Principal::local())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid skill name"), "{err}");
        let err = service
            .set_skills("missing", vec!["rust".into()], &Principal::local())
            .await
            .unwrap_err();
        assert!(matches!(err, AgentError::Store(_)), "{err:?}");
        let loaded = service
            .load_session(&id, Vec::new(), &Principal::local())
            .await
            .unwrap();
        assert_eq!(loaded.session.unwrap().skills, ["rust"]);
    }

    #[tokio::test]
    async fn list_skills_names_the_markdown_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let service = new_service(dir.path());
        assert!(service.list_skills().await.is_empty());
        add_skills(dir.path());
        assert_eq!(service.list_skills().await, ["rust", "tests"]);
    }

    #[test]
    fn enforced_confinement_keeps_commands_out_of_the_callers_terminal() {
        let offer = ClientCapabilities {
            fs_read: true,
            fs_write: false,
            terminal: true,
            elicitation: false,
        };
        assert_eq!(taken_up(offer, true), offer);
        let kept = taken_up(offer, false);
        assert!(!kept.terminal && kept.fs_read, "{kept:?}");
    }
}
