//! `session/prompt`: one agent-loop turn, streamed to the client as
//! `session/update`s, with the turn's questions (permissions) and client
//! requests (`fs/*`, commands in `terminal/*`) relayed to the client and
//! answered back.
//!
//! The turn runs on a task of its own: it sends requests to the client and
//! waits for their answers, which the connection's dispatch loop delivers
//! — awaiting them inside the handler would deadlock it. Client requests
//! run on tasks of their own too, so a long command in the client's
//! terminal does not hold up the updates of other tool calls; the turn
//! waits for them (bounded) before it answers, and releases the terminals
//! they left.

use std::sync::Arc;
use std::time::Duration;

use agent_client_protocol::v1::schema::{
    self as acp, PromptRequest, PromptResponse, ReadTextFileRequest, SessionNotification,
    SessionUpdate, WriteTextFileRequest,
};
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Client, Error as RpcError};
use openheim_proto::agent_loop::v1::{
    ClientRequest, ClientResponse, Compact, Compacted, NoticeKind, PermissionDecision,
    PermissionRequest, StartTurn, ToolCallStatus, ToolCallUpdate, TurnEvent, TurnInput,
    client_request::Operation, client_response, turn_event::Event, turn_input::Input,
};
use openheim_proto::common::v1::{Elicitation, ElicitationAnswer, Usage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::commands::Local;
use crate::convert::{prompt_blocks, stop_reason};
use crate::error::AcpError;
use crate::state::{Connection, SessionView, TurnSlot};
use crate::terminal::{Shell, Terminals};
use crate::updates;

/// How long a finished turn waits for its client requests to wind down
/// (they are cancelled first) before it answers the prompt.
const CLIENT_OPS_GRACE: Duration = Duration::from_secs(10);

/// Handles `session/prompt` without blocking the dispatch loop: checks the
/// request, takes the session's turn slot, and answers from a task.
pub fn start(
    conn: &Arc<Connection>,
    request: PromptRequest,
    responder: Responder<PromptResponse>,
    cx: ConnectionTo<Client>,
) -> Result<(), RpcError> {
    let session_id = request.session_id.0.to_string();
    let prepared = prompt_blocks(&request.prompt).and_then(|blocks| {
        let slot = conn.begin_turn(&session_id)?;
        Ok((blocks, slot))
    });
    let (blocks, slot) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return responder.respond_with_error(error.into()),
    };
    if let Some(command) = local_command(&blocks) {
        answer_command(conn, slot, command, responder, cx);
        return Ok(());
    }
    let conn = Arc::clone(conn);
    let tasks = conn.tasks.clone();
    // `$/cancel_request` for the prompt itself means the same as `session/cancel`.
    let cancellation = responder.cancellation();
    // In the connection's span: the turn joins the client's trace.
    let task = async move {
        let turn = Arc::new(TurnRelay::new(&conn, &slot, cx));
        let run = turn.run(blocks, slot.input_rx);
        tokio::pin!(run);
        let mut cancel_sent = false;
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                () = cancellation.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    conn.cancel(&session_id);
                }
            }
        };
        turn.finish().await;
        conn.end_turn(&session_id);
        let result = result.map(PromptResponse::new).map_err(RpcError::from);
        if let Err(error) = responder.respond_with_result(result) {
            tracing::debug!(%error, "the prompt's answer could not be sent");
        }
    };
    tasks.spawn(tracing::Instrument::in_current_span(task));
    Ok(())
}

/// The command a prompt of one text block is, when the adapter answers it
/// itself (`commands.rs`).
fn local_command(blocks: &[openheim_proto::common::v1::ContentBlock]) -> Option<Local> {
    use openheim_proto::common::v1::content_block::Block;
    match blocks {
        [only] => match &only.block {
            Some(Block::Text(text)) => crate::commands::parse(text),
            _ => None,
        },
        _ => None,
    }
}

/// Answers a local command from a task, holding the session's turn slot
/// meanwhile: its updates, then its text as an agent message, then
/// `end_turn`. Nothing reaches the model or the history.
fn answer_command(
    conn: &Arc<Connection>,
    slot: TurnSlot,
    command: Local,
    responder: Responder<PromptResponse>,
    cx: ConnectionTo<Client>,
) {
    let conn = Arc::clone(conn);
    let tasks = conn.tasks.clone();
    let task = async move {
        let id = slot.session.id.clone();
        let notify = |update| {
            if let Err(error) = cx.send_notification(SessionNotification::new(id.clone(), update)) {
                tracing::debug!(%error, "session update not delivered");
            }
        };
        if conn.commands_unsent(&id) {
            notify(crate::mcp_prompts::commands_update(&conn, &id).await);
        }
        let answered = crate::commands::run(&conn, &slot.session, command).await;
        let result = answered.map(|answer| {
            answer.updates.into_iter().for_each(&notify);
            notify(updates::text_chunk(answer.text));
            PromptResponse::new(acp::StopReason::EndTurn)
        });
        conn.end_turn(&id);
        if let Err(error) = responder.respond_with_result(result.map_err(RpcError::from)) {
            tracing::debug!(%error, "the command's answer could not be sent");
        }
    };
    tasks.spawn(tracing::Instrument::in_current_span(task));
}

/// A turn for `blocks`: the `/compact [focus]` command (see
/// `available_commands_update`) compacts instead of prompting.
fn compact_or_prompt(blocks: Vec<openheim_proto::common::v1::ContentBlock>) -> StartTurn {
    use openheim_proto::common::v1::content_block::Block;
    let focus = match blocks.as_slice() {
        [only] => match &only.block {
            Some(Block::Text(text)) => crate::thinking::compact_focus(text),
            _ => None,
        },
        _ => None,
    };
    match focus {
        Some(focus) => StartTurn {
            compact: Some(Compact { focus }),
            ..StartTurn::default()
        },
        None => StartTurn {
            prompt: blocks,
            ..StartTurn::default()
        },
    }
}

/// Relays one turn between the agent loop and the client.
struct TurnRelay {
    conn: Arc<Connection>,
    session: SessionView,
    inputs: mpsc::Sender<TurnInput>,
    /// Cancelled by `session/cancel` (the slot's token is its parent) and
    /// when the turn is over; aborts questions and client requests.
    cancel: CancellationToken,
    cx: ConnectionTo<Client>,
    /// The client requests in flight.
    client_ops: TaskTracker,
    /// Terminals of commands this turn ran in the client.
    terminals: Terminals,
    /// The session's running totals and the serving model's window, for
    /// `usage_update`.
    usage: std::sync::Mutex<(Usage, u64)>,
}

impl TurnRelay {
    fn new(conn: &Arc<Connection>, slot: &TurnSlot, cx: ConnectionTo<Client>) -> Self {
        Self {
            conn: Arc::clone(conn),
            session: slot.session.clone(),
            inputs: slot.inputs.clone(),
            cancel: slot.cancel.child_token(),
            cx,
            client_ops: TaskTracker::new(),
            terminals: Terminals::default(),
            usage: std::sync::Mutex::new((Usage::zero(), 0)),
        }
    }

    fn shell(&self) -> Shell<'_> {
        Shell {
            cx: &self.cx,
            session_id: &self.session.id,
            terminals: &self.terminals,
        }
    }

    /// After the turn's last event: stops the client requests still running,
    /// waits for them (bounded), and releases the terminals left open.
    async fn finish(&self) {
        self.cancel.cancel();
        self.client_ops.close();
        if tokio::time::timeout(CLIENT_OPS_GRACE, self.client_ops.wait())
            .await
            .is_err()
        {
            tracing::warn!(session = %self.session.id, "client requests still running after the turn");
        }
        self.shell().release_all().await;
    }

    async fn run(
        self: &Arc<Self>,
        blocks: Vec<openheim_proto::common::v1::ContentBlock>,
        input_rx: mpsc::Receiver<TurnInput>,
    ) -> Result<acp::StopReason, AcpError> {
        // A session's commands are offered with its first prompt on this
        // connection: an update sent right after `session/new` would race a
        // client that closes, and before it the client does not know the
        // session yet.
        if self.conn.commands_unsent(&self.session.id) {
            let commands = crate::mcp_prompts::commands_update(&self.conn, &self.session.id);
            self.notify(commands.await);
        } else if let Some(commands) =
            crate::mcp_prompts::refresh(&self.conn, &self.session.id).await
        {
            self.notify(commands);
        }
        let blocks = crate::mcp_prompts::expand(&self.conn, &self.session.id, blocks).await?;
        let start = StartTurn {
            session_id: self.session.id.clone(),
            client_capabilities: self.conn.client().for_turn(),
            thinking: self.session.thinking.map(crate::thinking::thinking_setting),
            caller: self.conn.options.caller.clone(),
            ..compact_or_prompt(blocks)
        };
        self.send(Input::Start(start)).await;
        let mut events = self
            .conn
            .agent_loop
            .clone()
            .turn(ReceiverStream::new(input_rx))
            .await
            .map_err(|s| AcpError::from_status(&self.session.id, &s))?
            .into_inner();
        loop {
            let event = match events.message().await {
                Ok(Some(TurnEvent { event: Some(event) })) => event,
                Ok(Some(TurnEvent { event: None })) => continue,
                Ok(None) => {
                    return Err(AcpError::AgentLoop(
                        "the agent loop ended the turn without a result".into(),
                    ));
                }
                // The turn had started: a broken stream means its agent
                // loop went away, which the client may retry.
                Err(status) => return Err(AcpError::lost_turn(&self.session.id, &status)),
            };
            if let Some(end) = self.relay(event).await {
                if let Some(commands) =
                    crate::mcp_prompts::refresh(&self.conn, &self.session.id).await
                {
                    self.notify(commands);
                }
                return end;
            }
        }
    }

    /// Relays one event; returns the turn's outcome once it is over.
    async fn relay(self: &Arc<Self>, event: Event) -> Option<Result<acp::StopReason, AcpError>> {
        match event {
            Event::TextDelta(text) => self.notify(updates::text_chunk(text)),
            Event::ThinkingDelta(text) => self.notify(updates::thought_chunk(text)),
            Event::ToolCall(call) => {
                self.notify(updates::tool_call(&call, &self.session.work_dir));
            }
            Event::ToolCallUpdate(update) => self.update_tool_call(&update).await,
            Event::PermissionRequest(request) => self.ask_permission(&request).await,
            Event::ClientRequest(request) => self.start_client_op(request),
            Event::Notice(notice) => {
                // A server still starting, or joining late: its prompts
                // are sent as commands once it is up.
                if notice.kind() == NoticeKind::Mcp {
                    self.conn.set_commands_stale(&self.session.id, true);
                }
                self.notice(notice.message);
            }
            Event::Compacted(compacted) => self.compacted(compacted),
            // A client cannot take chunks back: the restart is marked in the
            // message itself, and the redone reply follows in full.
            Event::Retracted(retracted) => {
                self.notify(updates::text_chunk(updates::restart_marker(
                    &retracted.reason,
                )));
            }
            Event::Ended(ended) => return Some(Ok(stop_reason(ended.stop_reason()))),
            Event::Error(error) => {
                return Some(Err(AcpError::from_turn_error(&self.session.id, &error)));
            }
            Event::Started(started) => {
                if !started.title.is_empty() {
                    let info = acp::SessionInfoUpdate::new().title(started.title.clone());
                    self.notify(SessionUpdate::SessionInfoUpdate(info));
                }
                if let (Ok(mut usage), Some(before)) = (self.usage.lock(), started.session_usage) {
                    usage.0 = before;
                }
            }
            Event::ModelSelected(selected) => {
                if let Ok(mut usage) = self.usage.lock() {
                    usage.1 = selected.context_window;
                }
            }
            Event::Usage(call) => {
                let update = self.usage.lock().ok().map(|mut usage| {
                    usage.0.add(&call);
                    updates::usage_update(&call, &usage.0, usage.1)
                });
                if let Some(update) = update {
                    self.notify(update);
                }
            }
            Event::PermissionDecided(_) => {}
            Event::Plan(plan) => self.notify(crate::plan::update(&plan)),
            // A sub-agent's progress also arrives as updates of the
            // delegation's tool call, which carry its summary.
            Event::Child(_) => {}
        }
        None
    }

    /// Relays a tool call update. A command that ran in the client's
    /// terminal keeps showing it; once its final update is out, the terminal
    /// is released.
    async fn update_tool_call(&self, update: &ToolCallUpdate) {
        let finished = matches!(
            update.status(),
            ToolCallStatus::Completed | ToolCallStatus::Failed
        );
        let terminal = finished.then(|| self.terminals.of(&update.id)).flatten();
        let Some(terminal) = terminal else {
            return self.notify(updates::tool_call_update(update));
        };
        self.notify(updates::finished_in_terminal(update, &terminal));
        if let Some(settled) = self.terminals.take_settled(&update.id) {
            self.shell().release(&settled).await;
        }
    }

    /// Performs a client request on a task of its own and answers it.
    fn start_client_op(self: &Arc<Self>, request: ClientRequest) {
        let relay = Arc::clone(self);
        let op = self.client_ops.track_future(async move {
            let result = match request.operation {
                Some(operation) => relay.perform(&request.tool_call_id, operation).await,
                None => client_response::Result::Error("empty client request".to_owned()),
            };
            relay.answer_client(request.request_id, result).await;
        });
        self.conn.tasks.spawn(op);
    }

    async fn send(&self, input: Input) {
        let input = TurnInput { input: Some(input) };
        // A closed input means the turn already ended; nothing to tell it.
        let _ = self.inputs.send(input).await;
    }

    fn notify(&self, update: SessionUpdate) {
        let notification = SessionNotification::new(self.session.id.clone(), update);
        if let Err(error) = self.cx.send_notification(notification) {
            // The client is gone; the turn is being cancelled by shutdown.
            tracing::debug!(%error, "session update not delivered");
        }
    }

    fn notice(&self, message: String) {
        if self.conn.client().notices {
            let notice = acp::Notice::new(acp::NoticeSeverity::Info, message);
            self.notify(SessionUpdate::Notice(notice));
        } else {
            tracing::info!(session = %self.session.id, "{message}");
        }
    }

    /// A compaction: an ACP `compaction_update` with the summary for a
    /// client that advertised `session.compaction`, else the notice.
    fn compacted(&self, compacted: Compacted) {
        if !self.conn.client().compaction {
            return self.notice(compacted.message);
        }
        let id = format!("compaction-{}", compacted.covers);
        let summary = vec![acp::ContentBlock::Text(acp::TextContent::new(
            compacted.summary,
        ))];
        let meta = serde_json::json!({ "openheim": {
            "message": compacted.message,
            "tokensBefore": compacted.tokens_before,
            "tokensAfter": compacted.tokens_after,
        }});
        let mut update =
            acp::CompactionUpdate::new(id, acp::CompactionStatus::Completed).summary(summary);
        if let serde_json::Value::Object(meta) = meta {
            update = update.meta(meta);
        }
        self.notify(SessionUpdate::CompactionUpdate(update));
    }

    /// Asks the client; a failed, cancelled or abandoned question rejects.
    async fn ask_permission(&self, request: &PermissionRequest) {
        let question =
            updates::permission_request(&self.session.id, request, &self.session.work_dir);
        let answer = tokio::select! {
            answer = self.cx.send_request(question).block_task() => answer.ok(),
            () = self.cancel.cancelled() => None,
        };
        let decision = updates::decision(answer.as_ref().map(|a| &a.outcome));
        let decision = PermissionDecision {
            request_id: request.request_id.clone(),
            decision: decision as i32,
        };
        self.send(Input::Permission(decision)).await;
    }

    /// Performs a client request: a file operation through the client's
    /// `fs/*` methods, or a command in one of its terminals.
    async fn perform(&self, tool_call_id: &str, operation: Operation) -> client_response::Result {
        let session_id = self.session.id.clone();
        let file_op = match operation {
            Operation::ReadTextFile(read) => {
                let request = ReadTextFileRequest::new(session_id, read.path)
                    .line(read.line)
                    .limit(read.limit);
                let response = self.cx.send_request(request).block_task();
                futures::future::Either::Left(async { response.await.map(|r| r.content) })
            }
            Operation::WriteTextFile(write) => {
                let request = WriteTextFileRequest::new(session_id, write.path, write.content);
                let response = self.cx.send_request(request).block_task();
                futures::future::Either::Right(async { response.await.map(|_| String::new()) })
            }
            Operation::Elicit(elicitation) => {
                let answer = self.elicit(tool_call_id, &elicitation).await;
                return client_response::Result::Elicitation(answer);
            }
            Operation::RunCommand(run) => {
                // Watches the cancellation itself: it must kill the command.
                let ran = self.shell().run(tool_call_id, run, &self.cancel).await;
                return ran.map_or_else(
                    |e| client_response::Result::Error(e.to_string()),
                    client_response::Result::Command,
                );
            }
        };
        let result = tokio::select! {
            result = file_op => result.map_err(|e| e.message),
            () = self.cancel.cancelled() => Err("cancelled".to_owned()),
        };
        result.map_or_else(
            client_response::Result::Error,
            client_response::Result::Text,
        )
    }

    /// Puts an MCP server's elicitation request to the client; a request
    /// ACP cannot carry is declined, a failed or cancelled one cancelled.
    async fn elicit(&self, tool_call_id: &str, elicitation: &Elicitation) -> ElicitationAnswer {
        let request = match crate::elicitation::request(&self.session.id, tool_call_id, elicitation)
        {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, server = %elicitation.server, "an elicitation request ACP cannot carry was declined");
                return ElicitationAnswer {
                    action: "decline".to_owned(),
                    content_json: String::new(),
                };
            }
        };
        let response = tokio::select! {
            response = self.cx.send_request(request).block_task() => response.ok(),
            () = self.cancel.cancelled() => None,
        };
        response.map_or_else(crate::elicitation::cancelled, |r| {
            crate::elicitation::answer(&r)
        })
    }

    async fn answer_client(&self, request_id: String, result: client_response::Result) {
        let response = ClientResponse {
            request_id,
            result: Some(result),
        };
        self.send(Input::ClientResponse(response)).await;
    }
}
