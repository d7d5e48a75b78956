//! Sub-agents (`docs/agents.md`): the `delegate_task` tool a turn answers
//! itself (`ToolRoute::Delegate`). A delegation creates the child's session
//! and runs its turn through the `AgentLoop` RPCs ([`AgentLoopPeer`]), the
//! same path as any caller's turn, so the child may run on another replica
//! and its records live in the same store. This module relays what the
//! child does to the parent's caller (its tool calls, summarised; its
//! permission questions, labelled with the child) and returns its answer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use openheim_config::{AgentProfile, check_agent_name, parse_profile_file};
use openheim_proto::agent_loop::v1::{
    AgentSpec, ChildActivity, CreateSessionRequest, PermissionDecision, PermissionRequest,
    StartTurn, ToolCallStarted, ToolCallStatus, ToolCallUpdate, TurnEvent, TurnInput,
    child_activity::Activity, turn_event::Event, turn_input::Input,
};
use openheim_proto::common::v1::{
    ContentBlock, StopReason, ToolCall, ToolDefinition, ToolKind, Usage, content_block::Block,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{CANCELLED_RESULT, Turn};
use crate::backends::{AgentLoopPeer, ToolRoute};
use crate::outcome::Outcome;
use crate::store::{AgentRun, ChildRef, ParentRef, Record, SessionMeta, now_ms};

pub const DELEGATE_TASK: &str = "delegate_task";
/// How a general-purpose sub-agent is named to the user.
const GENERAL_AGENT: &str = "agent";
/// How long a cancelled child gets to record its cancellation.
const CANCEL_GRACE: Duration = Duration::from_secs(10);
/// Lines of a child's tool calls kept in the delegation's progress.
const MAX_SUMMARY_LINES: usize = 40;

/// What the agent loop knows about delegation: limits, profiles and how to
/// reach an agent loop for the children.
pub struct Delegation {
    pub max_depth: u32,
    pub max_children: u32,
    /// `[agents.NAME]` of the configuration.
    pub configured: BTreeMap<String, AgentProfile>,
    /// `<data_dir>/agents`: `NAME.md` files, read at the start of each turn.
    pub dir: PathBuf,
    pub peer: AgentLoopPeer,
}

impl Delegation {
    /// Every profile: the configured ones, then the files (a file wins over
    /// a configured profile of the same name). A file that does not parse
    /// is left out with a warning in the log.
    pub async fn profiles(&self) -> BTreeMap<String, AgentProfile> {
        let mut profiles = self.configured.clone();
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return profiles;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".md"))
            else {
                continue;
            };
            if check_agent_name(name).is_err() {
                tracing::warn!(path = %path.display(), "agent profile file name is not a valid agent name; ignored");
                continue;
            }
            let text = match tokio::fs::read_to_string(&path).await {
                Ok(text) => text,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "agent profile ignored");
                    continue;
                }
            };
            match parse_profile_file(&text) {
                Ok(profile) => {
                    profiles.insert(name.to_owned(), profile);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "agent profile ignored")
                }
            }
        }
        profiles
    }
}

/// Why a `delegate_task` call starts no child; the text is its result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotAdmitted {
    #[error("delegate_task needs a non-empty `task`.")]
    NoTask,
    /// The depth limit is reached: [`unavailable`]'s text.
    #[error("{0}")]
    Unavailable(String),
    #[error("Unknown agent profile {name:?}. Valid profiles: {valid}.")]
    UnknownProfile { name: String, valid: String },
    #[error(
        "Sub-agent limit reached: this turn already started {0} (agents.max_children = {0}). Do the rest yourself."
    )]
    Limit(u32),
}

/// What one turn keeps about its delegations.
pub struct TurnChildren {
    /// The profiles as the turn's tool description listed them.
    pub profiles: BTreeMap<String, AgentProfile>,
    started: AtomicU32,
    /// Usage of the children, added to the turn's.
    usage: Mutex<Usage>,
}

impl Default for TurnChildren {
    fn default() -> Self {
        Self {
            profiles: BTreeMap::new(),
            started: AtomicU32::new(0),
            usage: Mutex::new(Usage::zero()),
        }
    }
}

impl TurnChildren {
    /// The children's usage since the last call.
    pub fn take_usage(&self) -> Usage {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *usage, Usage::zero())
    }

    fn add_usage(&self, more: &Usage) {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.add(more);
    }
}

/// The `delegate_task` definition, listing the profiles (one short line
/// each: it is paid on every request).
pub fn definition(profiles: &BTreeMap<String, AgentProfile>) -> ToolDefinition {
    let mut description = String::from(
        "Give a self-contained task to a sub-agent with its own context; returns its answer. Calls in one reply run concurrently.",
    );
    if !profiles.is_empty() {
        description.push_str(" agent (omit for a general one):");
        for (name, profile) in profiles {
            description.push_str(&format!(" {name}: {};", profile.description.trim()));
        }
        description.pop();
        description.push('.');
    }
    let schema = match profiles.is_empty() {
        true => serde_json::json!({
            "type": "object",
            "properties": {"task": {"type": "string"}},
            "required": ["task"]
        }),
        false => serde_json::json!({
            "type": "object",
            "properties": {"task": {"type": "string"}, "agent": {"type": "string"}},
            "required": ["task"]
        }),
    };
    // Read-only: several run at once; a child's own writes are serialised
    // in it.
    ToolDefinition::builtin(
        DELEGATE_TASK,
        description,
        schema.to_string(),
        ToolKind::Think,
        true,
    )
}

/// A title for the delegation's tool call.
pub fn title(args: &serde_json::Value) -> String {
    let agent = args
        .get("agent")
        .and_then(|a| a.as_str())
        .unwrap_or(GENERAL_AGENT);
    let task = args.get("task").and_then(|t| t.as_str()).unwrap_or("");
    let line = task.lines().next().unwrap_or("").trim();
    let short: String = line.chars().take(60).collect();
    match short.len() < line.len() {
        true => format!("{agent}: {short}…"),
        false => format!("{agent}: {short}"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegateArgs {
    task: String,
    #[serde(default)]
    agent: Option<String>,
}

/// Profile names for an error message.
fn valid_profiles(profiles: &BTreeMap<String, AgentProfile>) -> String {
    match profiles.is_empty() {
        true => "none are defined (omit `agent` for a general-purpose sub-agent)".to_owned(),
        false => format!(
            "{} (or omit `agent` for a general-purpose sub-agent)",
            profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Why `delegate_task` is not offered to a session, for the model.
pub fn unavailable(
    delegation: &Delegation,
    depth: u32,
    profiles: &BTreeMap<String, AgentProfile>,
) -> String {
    let reason = match depth {
        d if d < delegation.max_depth => {
            "this agent profile's `tools` list leaves it out".to_owned()
        }
        0 => "delegation is off (agents.max_depth = 0)".to_owned(),
        d => format!(
            "this session is a sub-agent at depth {d} and agents.max_depth is {}, so it cannot delegate further",
            delegation.max_depth
        ),
    };
    format!(
        "delegate_task is not available: {reason}. Valid profiles: {}. Do the task yourself.",
        valid_profiles(profiles)
    )
}

/// One child's tool calls as the delegation's progress text.
#[derive(Default)]
struct Summary {
    lines: Vec<(String, String)>,
}

impl Summary {
    fn started(&mut self, call: &ToolCallStarted) {
        if self.lines.len() < MAX_SUMMARY_LINES {
            self.lines
                .push((call.id.clone(), format!("▸ {}", call.title)));
        }
    }

    fn finished(&mut self, update: &ToolCallUpdate) {
        let mark = match update.status() {
            ToolCallStatus::Completed => "✓",
            ToolCallStatus::Failed => "✗",
            _ => return,
        };
        if let Some((_, line)) = self.lines.iter_mut().find(|(id, _)| *id == update.id)
            && let Some(rest) = line.strip_prefix("▸ ")
        {
            *line = format!("{mark} {rest}");
        }
    }

    fn text(&self) -> String {
        let lines: Vec<&str> = self.lines.iter().map(|(_, l)| l.as_str()).collect();
        lines.join("\n")
    }
}

/// What a running child turn has told so far.
struct ChildRun<'a> {
    call: &'a ToolCall,
    agent: String,
    session_id: String,
    inputs: mpsc::Sender<TurnInput>,
    summary: Summary,
    /// Text of the child's latest LLM call: its answer once it ends.
    answer: String,
}

impl Turn {
    /// Answers one `delegate_task` call: checks, creates the child's
    /// session, runs its turn and returns its answer.
    pub(crate) async fn delegate(&self, call: &ToolCall, delegation: &Delegation) -> Outcome {
        let args: DelegateArgs = match serde_json::from_str(&call.arguments_json) {
            Ok(args) => args,
            Err(error) => {
                return Outcome::error(format!(
                    "Invalid arguments for delegate_task: {error}. Expected {{\"task\": string, \"agent\"?: string}}."
                ));
            }
        };
        let profile = match self.admit(&args, delegation) {
            Ok(profile) => profile,
            Err(refusal) => return Outcome::error(refusal.to_string()),
        };
        let agent = profile
            .as_ref()
            .map_or_else(|| GENERAL_AGENT.to_owned(), |(n, _)| n.clone());
        let request = self.child_session_request(call, profile);
        let info = match delegation.peer.create_session(request).await {
            Ok(info) => info,
            Err(error) => {
                return Outcome::error(format!("Could not start the sub-agent: {error}"));
            }
        };
        let child = ChildRef {
            session_id: info.id.clone(),
            tool_call_id: call.id.clone(),
            agent: args.agent.clone().unwrap_or_default(),
            created_at_ms: now_ms(),
        };
        if let Err(error) = self
            .store
            .append(&self.meta.id, &Record::Child(child))
            .await
        {
            tracing::warn!(%error, child = %info.id, "could not link the sub-agent's session to its parent");
        }
        self.run_child(call, &delegation.peer, agent, info.id, args.task)
            .await
    }

    /// The checks before a child starts: a task, the depth limit, a known
    /// profile, the per-turn cap. The profile to run, or why not.
    fn admit(
        &self,
        args: &DelegateArgs,
        delegation: &Delegation,
    ) -> Result<Option<(String, AgentProfile)>, NotAdmitted> {
        let profiles = &self.children.profiles;
        if args.task.trim().is_empty() {
            return Err(NotAdmitted::NoTask);
        }
        if self.meta.depth >= delegation.max_depth {
            return Err(NotAdmitted::Unavailable(unavailable(
                delegation,
                self.meta.depth,
                profiles,
            )));
        }
        let profile = match args.agent.as_deref() {
            None | Some("") => None,
            Some(name) => match profiles.get(name) {
                Some(profile) => Some((name.to_owned(), profile.clone())),
                None => {
                    return Err(NotAdmitted::UnknownProfile {
                        name: name.to_owned(),
                        valid: valid_profiles(profiles),
                    });
                }
            },
        };
        let started = self.children.started.fetch_add(1, Ordering::SeqCst);
        if started >= delegation.max_children {
            return Err(NotAdmitted::Limit(delegation.max_children));
        }
        Ok(profile)
    }

    /// The child's session: the parent's workspace, approval mode and (for
    /// a general-purpose child) model and skills; a profile's settings
    /// otherwise. A read-only parent has read-only children.
    fn child_session_request(
        &self,
        call: &ToolCall,
        profile: Option<(String, AgentProfile)>,
    ) -> CreateSessionRequest {
        let meta = &self.meta;
        let approval = match meta.approval {
            crate::store::Approval::Ask => openheim_proto::agent_loop::v1::ApprovalMode::Ask,
            crate::store::Approval::Auto => openheim_proto::agent_loop::v1::ApprovalMode::Auto,
            crate::store::Approval::Deny => openheim_proto::agent_loop::v1::ApprovalMode::Deny,
        };
        let parent = openheim_proto::agent_loop::v1::ParentLink {
            session_id: meta.id.clone(),
            tool_call_id: call.id.clone(),
        };
        let mut request = CreateSessionRequest {
            work_dir: meta.work_dir.clone(),
            skills: meta.skills.clone(),
            model: meta.model.clone(),
            mcp_servers: Vec::new(),
            approval_mode: approval as i32,
            read_only: meta.read_only,
            parent: Some(parent),
            agent: None,
            caller: Some(crate::owner::owner_caller(&meta.owner)),
        };
        if let Some((name, profile)) = profile {
            request.skills = profile.skills;
            if let Some(model) = profile.model {
                request.model = model;
            }
            request.read_only |= profile.read_only;
            request.agent = Some(AgentSpec {
                name,
                identity: profile.prompt,
                restrict_tools: profile.tools.is_some(),
                tools: profile.tools.unwrap_or_default(),
                max_iterations: profile.max_iterations.unwrap_or(0),
            });
        }
        request
    }

    async fn run_child(
        &self,
        call: &ToolCall,
        peer: &AgentLoopPeer,
        agent: String,
        session_id: String,
        task: String,
    ) -> Outcome {
        let (inputs, rx) = mpsc::channel(16);
        let start = StartTurn {
            session_id: session_id.clone(),
            prompt: vec![ContentBlock {
                block: Some(Block::Text(task)),
            }],
            client_capabilities: None,
            caller: Some(crate::owner::owner_caller(&self.meta.owner)),
            ..StartTurn::default()
        };
        let _ = inputs
            .send(TurnInput {
                input: Some(Input::Start(start)),
            })
            .await;
        let mut events = match peer.turn(rx).await {
            Ok(events) => events,
            Err(error) => return Outcome::error(format!("Could not run the sub-agent: {error}")),
        };
        let mut run = ChildRun {
            call,
            agent,
            session_id,
            inputs,
            summary: Summary::default(),
            answer: String::new(),
        };
        loop {
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => None,
                next = events.next() => Some(next),
            };
            let Some(next) = next else {
                run.cancel(&mut events).await;
                return Outcome::error(CANCELLED_RESULT);
            };
            let event = match next {
                Some(Ok(TurnEvent { event: Some(event) })) => event,
                Some(Ok(TurnEvent { event: None })) => continue,
                Some(Err(error)) => {
                    return Outcome::error(format!("The sub-agent failed: {error}"));
                }
                None => return Outcome::error("The sub-agent stopped without an answer."),
            };
            if let Some(outcome) = self.child_event(&mut run, event).await {
                return outcome;
            }
        }
    }

    /// Handles one event of a child's turn; the outcome once it is over.
    async fn child_event(&self, run: &mut ChildRun<'_>, event: Event) -> Option<Outcome> {
        match event {
            Event::ModelSelected(_) | Event::Retracted(_) => run.answer.clear(),
            Event::TextDelta(text) => run.answer.push_str(&text),
            Event::ToolCall(started) => {
                run.summary.started(&started);
                self.relay_activity(run, Activity::ToolCall(started)).await;
            }
            Event::ToolCallUpdate(update) => {
                let finished = matches!(
                    update.status(),
                    ToolCallStatus::Completed | ToolCallStatus::Failed
                );
                if finished {
                    run.summary.finished(&update);
                    self.relay_activity(run, Activity::ToolCallUpdate(update))
                        .await;
                }
            }
            Event::PermissionRequest(request) => self.relay_question(run, request).await,
            Event::Ended(ended) => {
                if let Some(usage) = &ended.usage {
                    self.children.add_usage(usage);
                }
                return Some(child_result(run, ended.stop_reason()));
            }
            Event::Error(error) => {
                return Some(Outcome::error(format!(
                    "The sub-agent failed: {}",
                    error.message
                )));
            }
            // Children are offered no client capabilities; their own
            // events (notices, thinking, usage) stay in their session.
            Event::ClientRequest(_)
            | Event::Started(_)
            | Event::ThinkingDelta(_)
            | Event::Notice(_)
            | Event::Usage(_)
            | Event::Compacted(_)
            | Event::PermissionDecided(_)
            | Event::Plan(_)
            | Event::Child(_) => {}
        }
        None
    }

    /// Tells the caller what the child did: the activity itself, and the
    /// delegation's progress with every child tool call so far.
    async fn relay_activity(&self, run: &ChildRun<'_>, activity: Activity) {
        let child = ChildActivity {
            tool_call_id: run.call.id.clone(),
            agent: run.agent.clone(),
            session_id: run.session_id.clone(),
            activity: Some(activity),
        };
        self.emit(Event::Child(child)).await;
        let progress = ToolCallUpdate {
            id: run.call.id.clone(),
            status: ToolCallStatus::InProgress as i32,
            content: run.summary.text(),
            raw_output_json: String::new(),
            diffs: Vec::new(),
        };
        self.emit(Event::ToolCallUpdate(progress)).await;
    }

    /// Puts a child's permission question to this turn's caller, labelled
    /// with the child and attached to the delegation's call, and gives the
    /// answer back to the child. Cancelling the parent rejects it.
    async fn relay_question(&self, run: &ChildRun<'_>, request: PermissionRequest) {
        let request_id = format!("{}>{}", run.call.id, request.request_id);
        let answer = self.questions.ask(request_id.clone());
        let labelled = PermissionRequest {
            request_id,
            tool_call_id: run.call.id.clone(),
            title: format!("[{}] {}", run.agent, request.title),
            agent: run.agent.clone(),
            ..request.clone()
        };
        self.emit(Event::PermissionRequest(labelled)).await;
        let decision = tokio::select! {
            () = self.cancel.cancelled() => None,
            d = answer => d.ok(),
        };
        let decision = PermissionDecision {
            request_id: request.request_id,
            decision: decision.unwrap_or(openheim_proto::agent_loop::v1::Decision::RejectOnce)
                as i32,
        };
        let _ = run
            .inputs
            .send(TurnInput {
                input: Some(Input::Permission(decision)),
            })
            .await;
    }
}

impl ChildRun<'_> {
    /// Cancels the child's turn and waits (bounded) until it has recorded
    /// the cancellation; dropping its stream then stops whatever is left.
    async fn cancel(
        &self,
        events: &mut futures::stream::BoxStream<'static, Result<TurnEvent, crate::AgentError>>,
    ) {
        let cancel = TurnInput {
            input: Some(Input::Cancel(Default::default())),
        };
        let _ = self.inputs.send(cancel).await;
        let ended = async {
            while let Some(Ok(event)) = events.next().await {
                if matches!(event.event, Some(Event::Ended(_) | Event::Error(_))) {
                    return;
                }
            }
        };
        if tokio::time::timeout(CANCEL_GRACE, ended).await.is_err() {
            tracing::warn!(child = %self.session_id, "sub-agent did not end in time after cancellation");
        }
    }
}

/// The tool result of a child that ended: its answer, with a note when it
/// did not finish normally.
fn child_result(run: &ChildRun<'_>, stop: StopReason) -> Outcome {
    let answer = run.answer.trim();
    let raw = serde_json::json!({"session_id": run.session_id, "agent": run.agent}).to_string();
    let text = match stop {
        StopReason::Cancelled => return Outcome::error(CANCELLED_RESULT),
        StopReason::MaxTurnRequests => {
            format!("{answer}\n(The sub-agent reached its iteration limit before finishing.)")
        }
        _ if answer.is_empty() => "(The sub-agent finished without an answer.)".to_owned(),
        _ => answer.to_owned(),
    };
    Outcome {
        text,
        raw_output_json: raw,
        ..Outcome::default()
    }
}

/// The tools of a session's turn, completed: `delegate_task` (listing the
/// profiles) below the depth limit, then the session profile's allow-list.
/// Returns the profiles it listed. A peer's tool of the same name is left
/// out, so a call always reaches the tool the model was shown.
pub async fn offer(
    delegation: Option<&Delegation>,
    meta: &SessionMeta,
    tools: &mut Vec<(ToolDefinition, ToolRoute)>,
) -> BTreeMap<String, AgentProfile> {
    tools.retain(|(definition, _)| definition.name != DELEGATE_TASK);
    let mut profiles = BTreeMap::new();
    if let Some(delegation) = delegation {
        profiles = delegation.profiles().await;
        if meta.depth < delegation.max_depth {
            tools.push((definition(&profiles), ToolRoute::Delegate));
        }
    }
    if let Some(names) = meta.agent.as_ref().and_then(|run| run.tools.as_ref()) {
        tools.retain(|(definition, _)| names.contains(&definition.name));
    }
    profiles
}

/// The stored profile copy of a session from its creation request.
pub fn agent_run(spec: AgentSpec) -> AgentRun {
    AgentRun {
        name: spec.name,
        identity: spec.identity,
        tools: spec.restrict_tools.then_some(spec.tools),
        max_iterations: (spec.max_iterations > 0).then_some(spec.max_iterations),
    }
}

/// The parent link of a session from its creation request.
pub fn parent_ref(link: openheim_proto::agent_loop::v1::ParentLink) -> ParentRef {
    ParentRef {
        session_id: link.session_id,
        tool_call_id: link.tool_call_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(description: &str) -> AgentProfile {
        AgentProfile {
            description: description.to_owned(),
            ..AgentProfile::default()
        }
    }

    #[test]
    fn the_tool_lists_profiles_in_one_short_line_each() {
        let mut profiles = BTreeMap::new();
        let none = definition(&profiles);
        assert!(!none.input_schema_json.contains("agent"));
        profiles.insert("reviewer".to_owned(), profile("Reviews diffs"));
        profiles.insert("scout".to_owned(), profile("Finds files"));
        let two = definition(&profiles);
        assert!(
            two.description
                .ends_with("reviewer: Reviews diffs; scout: Finds files."),
            "{}",
            two.description
        );
        assert!(two.description.len() < 240, "{}", two.description.len());
    }

    #[test]
    fn titles_name_the_agent_and_the_task() {
        let args = serde_json::json!({"task": "Count the files\nthen stop", "agent": "scout"});
        assert_eq!(title(&args), "scout: Count the files");
        let args = serde_json::json!({"task": "x".repeat(70)});
        assert_eq!(title(&args), format!("agent: {}…", "x".repeat(60)));
    }
}
