//! One turn of the agent loop: prompt → {LLM call → tool calls → results}
//! until the model answers without tool calls, the iteration cap, a
//! cancellation or an error.
//!
//! Invariants kept here:
//! - every message is persisted as soon as it is complete, in order;
//! - every tool call the model issued gets exactly one result, also when the
//!   turn is cancelled (`Cancelled by user.`), so the history stays valid;
//! - results go back in call order, whatever order the calls finish in;
//! - output of an interrupted LLM attempt is never persisted;
//! - each LLM call sends the history as the latest summary left it
//!   (`compaction.rs`), compacted first when it passes the threshold
//!   (`summarise.rs`), and then the suffix of whole turns that fits the
//!   model's context window (`context.rs`); the stored history stays whole.

mod calls;
pub(crate) mod delegate;
mod hooks;
mod late_mcp;
mod llm;
mod plan;
mod summarise;

pub(crate) use llm::ContextFit;

use std::sync::Arc;

use openheim_proto::agent_loop::v1::{
    DecisionSource, Notice, NoticeKind, NoticeLevel, PermissionDecided, PermissionRequest,
    ToolCallStatus, ToolCallUpdate, TurnEnded, TurnEvent, TurnStarted, turn_event::Event,
};
use openheim_proto::common::v1::{StopReason, ToolCall, ToolDefinition, ToolKind, Usage};
use openheim_proto::llm_proxy::v1::{ResolveModelResponse, ThinkingSetting};
use openheim_proto::tool_executor::v1::Workspace;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::backends::{Backends, ToolRoute};
use crate::client::{self, ClientDelegation};
use crate::error::AgentError;
use crate::events::EventSink;
use crate::hooks::{HookDecision, HookRunner};
use crate::memory::AgentMemory;
use crate::memory::with_memory_tools;
use crate::outcome::Outcome;
use crate::permission::{
    PendingQuestions, Remembered, Verdict, approval_key, decided_by, kind_policy, verdict,
};
use crate::reply::Reply;
use crate::store::{
    Approval, Compaction, Record, SessionMeta, SessionStore, StoredImage, StoredMessage,
    StoredUsage, now_ms,
};
use calls::{describe, parse_args, tool_names};
use delegate::{Delegation, TurnChildren};
use late_mcp::LateServers;
use openheim_tool_rules::truncate::cap_output;

pub const CANCELLED_RESULT: &str = "Cancelled by user.";
pub const REJECTED_RESULT: &str = "Permission denied: this tool call was not approved.";
/// How often one LLM call is retried with a shrunk history after the
/// provider said the conversation is too long.
pub const MAX_CONTEXT_RETRIES: u32 = 3;

/// Settings a turn runs under.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub max_iterations: u32,
    pub allow_shell: bool,
    /// Default timeout of a shell command run by the turn's caller.
    pub shell_timeout: std::time::Duration,
    pub max_result_bytes: usize,
    /// Policy of the permission gate per tool kind.
    pub permissions: openheim_config::PermissionsConfig,
    /// Fraction of the window past which the conversation is compacted.
    pub compact_at: f64,
    /// Who writes summaries; `None` = the session's model.
    pub compaction_model: Option<String>,
    /// The directory the session's tool calls must stay in on a server
    /// (its owner's or a project's; "" = only tool-executor's root).
    pub boundary: String,
}

/// Everything one running turn needs.
pub struct Turn {
    pub meta: SessionMeta,
    pub history: Vec<StoredMessage>,
    pub system_prompt: String,
    pub settings: TurnSettings,
    pub remembered: Arc<Remembered>,
    pub store: Arc<dyn SessionStore>,
    pub backends: Backends,
    pub events: mpsc::Sender<TurnEvent>,
    pub questions: Arc<PendingQuestions>,
    /// What this turn's caller performs itself (file tools, the shell).
    pub client: ClientDelegation,
    /// Cancelled by the caller (cancel input, closed stream) or when the
    /// caller stops reading events.
    pub cancel: CancellationToken,
    /// Long-term memory, when it is on: its tools are offered and answered
    /// here (`ToolRoute::Memory`).
    pub memory: Option<Arc<AgentMemory>>,
    /// The latest summary of the session's older messages, if any.
    pub compaction: Option<Compaction>,
    /// The caller's reasoning setting for this turn; `None` = as configured.
    pub thinking: Option<ThinkingSetting>,
    /// Sub-agents, when this agent loop can start them: `delegate_task` is
    /// offered and answered here (`ToolRoute::Delegate`) below the depth
    /// limit.
    pub delegation: Option<Arc<Delegation>>,
    /// The delegations of this turn.
    pub children: TurnChildren,
    /// The configured hooks; `None` when there are none.
    pub hooks: Option<HookRunner>,
    /// The session's usage totals before this turn (for `TurnStarted`).
    pub session_usage: Usage,
}

impl Turn {
    /// Runs the turn after its user message was accepted: the prompt's
    /// hooks, the loop, then the `stop` hooks.
    pub async fn run(mut self, prompt: StoredMessage) -> Result<TurnEnded, AgentError> {
        let prompt = self.prompt_hooks(prompt).await?;
        let ended = self.run_loop(prompt).await?;
        self.stop_hooks(&ended).await;
        Ok(ended)
    }

    async fn run_loop(&mut self, prompt: StoredMessage) -> Result<TurnEnded, AgentError> {
        let workspace = Workspace {
            root: self.meta.work_dir.clone(),
            allow_shell: self.settings.allow_shell,
            boundary: self.settings.boundary.clone(),
            create: false,
        };
        let (tools, resolved) = tokio::join!(
            self.backends
                .list_tools(&workspace, &self.meta.id, self.meta.read_only),
            self.backends.resolve_model(&self.meta.model)
        );
        self.announce_start(&resolved, &prompt).await;
        let listed = tools?;
        let mut late = LateServers::new(listed.pending_mcp);
        self.announce_pending(&late).await;
        let mut tools = with_memory_tools(listed.tools, self.memory.is_some(), self.meta.read_only);
        crate::plan::offer(&mut tools);
        self.add_delegation(&mut tools).await;
        let mut definitions: Vec<ToolDefinition> = tools.iter().map(|(d, _)| d.clone()).collect();
        let mut fit = self.context_fit(resolved, &definitions);
        self.persist(prompt).await?;
        let mut total = Usage::zero();
        let mut llm_calls = 0;
        for iteration in 0..self.settings.max_iterations {
            if iteration > 0 && self.add_late_tools(&mut late, &mut tools).await {
                definitions = tools.iter().map(|(d, _)| d.clone()).collect();
            }
            if let Some(usage) = self.compact_if_needed(&mut fit).await {
                total.add(&usage);
                llm_calls += 1;
            }
            let mut reply = self.call_fitting(&definitions, &mut fit).await?;
            llm_calls += 1;
            total.add(&reply.usage);
            self.record_usage(&reply).await?;
            let calls = std::mem::take(&mut reply.calls);
            let (cancelled, stop) = (reply.cancelled, reply.stop);
            let has_calls = !calls.is_empty() && !cancelled;
            reply.calls = if cancelled { Vec::new() } else { calls.clone() };
            if let Some(message) = reply.into_message() {
                self.persist(message).await?;
            }
            if cancelled {
                return Ok(ended(StopReason::Cancelled, total, llm_calls));
            }
            if !has_calls {
                let stop = match stop {
                    StopReason::Unspecified | StopReason::ToolUse => StopReason::EndTurn,
                    other => other,
                };
                return Ok(ended(stop, total, llm_calls));
            }
            let results = self.run_tools(&calls, &tools, &workspace).await;
            total.add(&self.children.take_usage());
            for result in results {
                self.persist(result).await?;
            }
            if self.cancel.is_cancelled() {
                return Ok(ended(StopReason::Cancelled, total, llm_calls));
            }
        }
        Ok(ended(StopReason::MaxTurnRequests, total, llm_calls))
    }

    /// Offers `delegate_task` and applies the session's tool allow-list
    /// (`delegate::offer`), keeping the profiles it listed.
    async fn add_delegation(&mut self, tools: &mut Vec<(ToolDefinition, ToolRoute)>) {
        self.children.profiles =
            delegate::offer(self.delegation.as_deref(), &self.meta, tools).await;
    }

    /// The first event of a turn: its session and the model that serves
    /// it, resolved (a session on the default model names the default).
    /// It names the session's title when this prompt gives it one.
    async fn announce_start(
        &self,
        resolved: &Result<ResolveModelResponse, AgentError>,
        prompt: &StoredMessage,
    ) {
        let title = match crate::store::title_of(&self.history).is_empty() {
            true => crate::store::title_of(std::slice::from_ref(prompt)),
            false => String::new(),
        };
        let (provider, model) = match resolved {
            Ok(r) => (r.provider.clone(), r.model.clone()),
            Err(_) => (String::new(), self.meta.model.clone()),
        };
        let started = TurnStarted {
            session_id: self.meta.id.clone(),
            provider,
            model,
            session_usage: Some(self.session_usage),
            title,
        };
        self.emit(Event::Started(started)).await;
    }

    async fn persist(&mut self, message: StoredMessage) -> Result<(), AgentError> {
        let record = Record::Message {
            at_ms: now_ms(),
            message,
        };
        self.store.append(&self.meta.id, &record).await?;
        if let Record::Message { message, .. } = record {
            self.history.push(message);
        }
        Ok(())
    }

    /// Stores what one LLM call used, so sessions report their totals.
    async fn record_usage(&mut self, reply: &Reply) -> Result<(), AgentError> {
        let record = Record::Usage {
            at_ms: now_ms(),
            provider: reply.served.0.clone(),
            model: reply.served.1.clone(),
            usage: StoredUsage::from_wire(&reply.usage),
        };
        self.store.append(&self.meta.id, &record).await?;
        Ok(())
    }

    /// Sends an event; a caller that stopped listening cancels the turn.
    pub(crate) async fn emit(&self, event: Event) {
        self.sink().emit(event).await;
    }

    fn sink(&self) -> EventSink<'_> {
        EventSink {
            events: &self.events,
            cancel: &self.cancel,
        }
    }

    pub(super) async fn emit_all(&self, events: Vec<Event>) {
        for event in events {
            self.emit(event).await;
        }
    }

    pub(crate) async fn notice(&self, level: NoticeLevel, kind: NoticeKind, message: String) {
        let notice = Notice {
            level: level as i32,
            message,
            kind: kind as i32,
        };
        self.emit(Event::Notice(notice)).await;
    }

    /// Announces, gates and runs the calls of one reply; returns one result
    /// message per call, in call order.
    async fn run_tools(
        &self,
        calls: &[ToolCall],
        tools: &[(ToolDefinition, ToolRoute)],
        workspace: &Workspace,
    ) -> Vec<StoredMessage> {
        let found: Vec<Option<&(ToolDefinition, ToolRoute)>> = calls
            .iter()
            .map(|c| tools.iter().find(|(d, _)| d.name == c.name))
            .collect();
        for (call, tool) in calls.iter().zip(&found) {
            let kind = tool.map_or(ToolKind::Other, |(d, _)| d.kind());
            self.emit(Event::ToolCall(describe(call, kind))).await;
        }
        let mut gated = Vec::with_capacity(calls.len());
        for (call, tool) in calls.iter().zip(&found) {
            gated.push(match tool {
                Some((def, _)) => self.gate(call, def).await,
                None => Gated::refused(call),
            });
        }
        // Mutating calls run one at a time, in call order; reads run freely.
        let write_lock = Mutex::new(());
        let runs = found
            .into_iter()
            .zip(gated)
            .map(|(tool, g)| self.run_one(g, tool, workspace, &write_lock, tools));
        futures::future::join_all(runs).await
    }

    /// Decides whether one call runs — its `pre_tool_use` hooks, then the
    /// permission gate — and tells the caller who decided.
    async fn gate(&self, call: &ToolCall, def: &ToolDefinition) -> Gated {
        let hooked = self.pre_tool_hooks(call).await;
        let mut call = call.clone();
        let mut hook = String::new();
        if let Some((by, arguments)) = &hooked.arguments {
            call.arguments_json = arguments.to_string();
            hook.clone_from(by);
        }
        let mut reason = String::new();
        let (verdict, source) = match hooked.decision {
            None => self.decide(&call, def).await,
            Some(decision) => {
                hook.clone_from(&hooked.hook);
                reason.clone_from(&hooked.reason);
                match decision {
                    HookDecision::Allow => (Verdict::Allow, DecisionSource::Hook),
                    HookDecision::Deny => (Verdict::Reject, DecisionSource::Hook),
                    HookDecision::Ask if self.meta.approval == Approval::Ask => {
                        (self.ask_caller(&call, def).await, DecisionSource::User)
                    }
                    HookDecision::Ask => {
                        reason = format!(
                            "{reason} (the hook asked for a confirmation nobody can give in this session)"
                        );
                        (Verdict::Reject, DecisionSource::Hook)
                    }
                }
            }
        };
        let refusal = (source == DecisionSource::Hook && verdict == Verdict::Reject)
            .then(|| hook_refusal(&hook, &reason));
        let decided = PermissionDecided {
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            allowed: verdict == Verdict::Allow,
            source: source as i32,
            reason: reason.trim().to_owned(),
            hook,
        };
        self.emit(Event::PermissionDecided(decided)).await;
        Gated {
            verdict,
            call,
            refusal,
        }
    }

    /// The permission gate: session mode, policy, remembered answers, then
    /// the caller.
    async fn decide(&self, call: &ToolCall, def: &ToolDefinition) -> (Verdict, DecisionSource) {
        let args = parse_args(&call.arguments_json);
        let key = approval_key(&call.name, &args);
        let policy = kind_policy(&self.settings.permissions, def.kind());
        let v = verdict(self.meta.approval, policy, self.remembered.get(&key));
        if v != Verdict::Ask {
            return (v, decided_by(self.meta.approval, policy));
        }
        (self.ask_caller(call, def).await, DecisionSource::User)
    }

    /// Asks the caller about one call and waits for the answer.
    async fn ask_caller(&self, call: &ToolCall, def: &ToolDefinition) -> Verdict {
        if self.cancel.is_cancelled() {
            return Verdict::Reject;
        }
        let key = approval_key(&call.name, &parse_args(&call.arguments_json));
        let request_id = format!("perm-{}", call.id);
        let answer = self.questions.ask(request_id.clone());
        let started = describe(call, def.kind());
        let request = PermissionRequest {
            request_id,
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            title: started.title,
            kind: def.kind,
            raw_input_json: call.arguments_json.clone(),
            agent: String::new(),
        };
        self.emit(Event::PermissionRequest(request)).await;
        let decision = tokio::select! {
            () = self.cancel.cancelled() => None,
            d = answer => d.ok(),
        };
        use openheim_proto::agent_loop::v1::Decision as D;
        match decision {
            Some(D::AllowOnce) => Verdict::Allow,
            Some(D::AllowAlways) => {
                self.remembered.remember(key, true);
                Verdict::Allow
            }
            Some(D::RejectAlways) => {
                self.remembered.remember(key, false);
                Verdict::Reject
            }
            Some(D::RejectOnce | D::Unspecified) | None => Verdict::Reject,
        }
    }

    async fn run_one(
        &self,
        gated: Gated,
        tool: Option<&(ToolDefinition, ToolRoute)>,
        workspace: &Workspace,
        write_lock: &Mutex<()>,
        tools: &[(ToolDefinition, ToolRoute)],
    ) -> StoredMessage {
        let call = &gated.call;
        let outcome = match (tool, gated.verdict) {
            _ if self.cancel.is_cancelled() => Outcome::error(CANCELLED_RESULT),
            (None, _) => match &self.delegation {
                Some(d) if call.name == delegate::DELEGATE_TASK => Outcome::error(
                    delegate::unavailable(d, self.meta.depth, &self.children.profiles),
                ),
                _ => Outcome::error(format!(
                    "Tool {:?} is not available in this session. Available tools: {}.",
                    call.name,
                    tool_names(tools)
                )),
            },
            (Some(_), Verdict::Reject | Verdict::Ask) => {
                Outcome::error(gated.refusal.as_deref().unwrap_or(REJECTED_RESULT))
            }
            (Some((def, route)), Verdict::Allow) => {
                self.run_allowed(call, def, *route, workspace, write_lock)
                    .await
            }
        };
        self.finish(call, outcome).await
    }

    /// Runs a call the gate allowed, then its `post_tool_use` hooks.
    /// Mutating calls hold `write_lock`, so they run one at a time.
    async fn run_allowed(
        &self,
        call: &ToolCall,
        def: &ToolDefinition,
        route: ToolRoute,
        workspace: &Workspace,
        write_lock: &Mutex<()>,
    ) -> Outcome {
        self.update(call, ToolCallStatus::InProgress, None).await;
        let _serialised = match def.read_only {
            true => None,
            false => Some(write_lock.lock().await),
        };
        // A delegation watches the cancellation itself, so its child
        // records the cancellation before the call is answered.
        let traced = crate::spans::traced_tool(call, route, self.execute(call, route, workspace));
        if route == ToolRoute::Delegate {
            let outcome = traced.await;
            self.post_tool_hooks(call, outcome).await
        } else {
            tokio::select! {
                () = self.cancel.cancelled() => Outcome::error(CANCELLED_RESULT),
                outcome = traced => self.post_tool_hooks(call, outcome).await,
            }
        }
    }

    /// Caps a call's outcome, tells the caller how it ended and makes its
    /// result message.
    async fn finish(&self, call: &ToolCall, outcome: Outcome) -> StoredMessage {
        let content = cap_output(&outcome.text, self.settings.max_result_bytes).into_owned();
        let status = match outcome.is_error {
            true => ToolCallStatus::Failed,
            false => ToolCallStatus::Completed,
        };
        let mut done = outcome;
        done.text.clone_from(&content);
        let images = std::mem::take(&mut done.images)
            .iter()
            .map(StoredImage::from_wire)
            .collect();
        self.update(call, status, Some(done)).await;
        StoredMessage::Tool {
            tool_call_id: call.id.clone(),
            content,
            is_error: status == ToolCallStatus::Failed,
            images,
        }
    }

    async fn execute(&self, call: &ToolCall, route: ToolRoute, workspace: &Workspace) -> Outcome {
        // Built-in file tools go through a caller that offers them (editor
        // buffers, undo); everything else runs where it is routed.
        if route == ToolRoute::Executor && self.client.takes(call) {
            let scope = client::Scope {
                work_dir: &self.meta.work_dir,
                allow_shell: self.settings.allow_shell,
                shell_timeout: self.settings.shell_timeout,
                max_result_bytes: self.settings.max_result_bytes,
                sink: self.sink(),
            };
            return self.client.run(call, &scope).await;
        }
        let result = match route {
            ToolRoute::Executor => self
                .backends
                .execute(workspace, call)
                .await
                .map(|r| Outcome {
                    text: r.output,
                    is_error: r.is_error,
                    raw_output_json: r.raw_output_json,
                    diffs: r.diffs,
                    images: r.images,
                }),
            ToolRoute::Mcp => self.call_mcp(call).await,
            ToolRoute::Memory => match &self.memory {
                Some(memory) => Ok(memory.call(call, &self.meta).await),
                None => Ok(Outcome::error("long-term memory is off")),
            },
            ToolRoute::Plan => Ok(self.update_plan(call).await),
            ToolRoute::Delegate => match &self.delegation {
                Some(delegation) => Ok(self.delegate(call, delegation).await),
                None => Ok(Outcome::error("sub-agents are not available here")),
            },
        };
        result.unwrap_or_else(|e| Outcome::error(format!("Tool call failed: {e}")))
    }

    /// An MCP tool; its server's elicitation requests go to the caller
    /// when it answers them, else the broker declines them and the
    /// notices say so.
    async fn call_mcp(&self, call: &ToolCall) -> Result<Outcome, AgentError> {
        let response = match self.client.elicits() {
            true => {
                let ask = |elicitation| self.client.elicit(call, self.sink(), elicitation);
                self.backends
                    .call_mcp_asking(&self.meta.id, call, ask)
                    .await?
            }
            false => self.backends.call_mcp(&self.meta.id, call).await?,
        };
        for message in response.notices {
            let notice = Notice {
                level: NoticeLevel::Info as i32,
                message,
                kind: NoticeKind::Mcp as i32,
            };
            self.emit(Event::Notice(notice)).await;
        }
        Ok(Outcome {
            text: response.output,
            is_error: response.is_error,
            images: response.images,
            ..Outcome::default()
        })
    }

    async fn update(&self, call: &ToolCall, status: ToolCallStatus, outcome: Option<Outcome>) {
        let outcome = outcome.unwrap_or_default();
        let update = ToolCallUpdate {
            id: call.id.clone(),
            status: status as i32,
            content: outcome.text,
            raw_output_json: outcome.raw_output_json,
            diffs: outcome.diffs,
        };
        self.emit(Event::ToolCallUpdate(update)).await;
    }
}

/// A call after the gate: whether it runs, with which arguments (a hook
/// may have replaced them), and what the model is told when it does not.
struct Gated {
    verdict: Verdict,
    call: ToolCall,
    /// The result text of a call a hook refused.
    refusal: Option<String>,
}

impl Gated {
    fn refused(call: &ToolCall) -> Self {
        Self {
            verdict: Verdict::Reject,
            call: call.clone(),
            refusal: None,
        }
    }
}

/// What the model reads when a hook refused its call.
fn hook_refusal(hook: &str, reason: &str) -> String {
    match reason.trim() {
        "" => format!("Denied by hook {hook:?}."),
        reason => format!("Denied by hook {hook:?}: {reason}"),
    }
}

fn ended(stop: StopReason, usage: Usage, llm_calls: u32) -> TurnEnded {
    TurnEnded {
        stop_reason: stop as i32,
        usage: Some(usage),
        llm_calls,
    }
}
