//! `session/prompt`: one agent-loop turn, streamed to the client as
//! `session/update`s, with the turn's questions (permissions) and client
//! requests (`fs/*`) relayed to the client and answered back.
//!
//! The turn runs on a task of its own: it sends requests to the client and
//! waits for their answers, which the connection's dispatch loop delivers
//! — awaiting them inside the handler would deadlock it.

use std::sync::Arc;

use agent_client_protocol::v1::schema::{
    self as acp, PromptRequest, PromptResponse, ReadTextFileRequest, SessionNotification,
    SessionUpdate, WriteTextFileRequest,
};
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Client, Error as RpcError};
use openheim_proto::agent_loop::v1::{
    ClientResponse, PermissionDecision, PermissionRequest, StartTurn, TurnEvent, TurnInput,
    client_request::Operation, client_response, turn_event::Event, turn_input::Input,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::convert::{prompt_blocks, stop_reason};
use crate::error::AcpError;
use crate::state::{Connection, SessionView, TurnSlot};
use crate::updates;

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
    let conn = Arc::clone(conn);
    // `$/cancel_request` for the prompt itself means the same as `session/cancel`.
    let cancellation = responder.cancellation();
    conn.tasks.clone().spawn(async move {
        let turn = TurnRelay::new(&conn, &slot, cx);
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
        conn.end_turn(&session_id);
        let result = result.map(PromptResponse::new).map_err(RpcError::from);
        if let Err(error) = responder.respond_with_result(result) {
            tracing::debug!(%error, "the prompt's answer could not be sent");
        }
    });
    Ok(())
}

/// Relays one turn between the agent loop and the client.
struct TurnRelay {
    conn: Arc<Connection>,
    session: SessionView,
    inputs: mpsc::Sender<TurnInput>,
    cancel: CancellationToken,
    cx: ConnectionTo<Client>,
}

impl TurnRelay {
    fn new(conn: &Arc<Connection>, slot: &TurnSlot, cx: ConnectionTo<Client>) -> Self {
        Self {
            conn: Arc::clone(conn),
            session: slot.session.clone(),
            inputs: slot.inputs.clone(),
            cancel: slot.cancel.clone(),
            cx,
        }
    }

    async fn run(
        &self,
        blocks: Vec<openheim_proto::common::v1::ContentBlock>,
        input_rx: mpsc::Receiver<TurnInput>,
    ) -> Result<acp::StopReason, AcpError> {
        let start = StartTurn {
            session_id: self.session.id.clone(),
            prompt: blocks,
            client_capabilities: self.conn.client().for_turn(),
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
                Err(status) => return Err(AcpError::from_status(&self.session.id, &status)),
            };
            if let Some(end) = self.relay(event).await {
                return end;
            }
        }
    }

    /// Relays one event; returns the turn's outcome once it is over.
    async fn relay(&self, event: Event) -> Option<Result<acp::StopReason, AcpError>> {
        match event {
            Event::TextDelta(text) => self.notify(updates::text_chunk(text)),
            Event::ThinkingDelta(text) => self.notify(updates::thought_chunk(text)),
            Event::ToolCall(call) => {
                self.notify(updates::tool_call(&call, &self.session.work_dir));
            }
            Event::ToolCallUpdate(update) => self.notify(updates::tool_call_update(&update)),
            Event::PermissionRequest(request) => self.ask_permission(&request).await,
            Event::ClientRequest(request) => {
                let result = match request.operation {
                    Some(operation) => self.perform(operation).await,
                    None => Err("empty client request".to_owned()),
                };
                self.answer_client(request.request_id, result).await;
            }
            Event::Notice(notice) => self.notice(notice.message),
            Event::Retracted(retracted) => self.notify(updates::thought_chunk(format!(
                "\n(the reply was interrupted: {}; it is being redone)\n",
                retracted.reason
            ))),
            Event::Ended(ended) => return Some(Ok(stop_reason(ended.stop_reason()))),
            Event::Error(error) => {
                return Some(Err(AcpError::from_turn_error(&self.session.id, &error)));
            }
            Event::Started(_) | Event::Usage(_) => {}
        }
        None
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

    /// Performs a file operation through the client's `fs/*` methods.
    async fn perform(&self, operation: Operation) -> Result<String, String> {
        let session_id = self.session.id.clone();
        let work = async {
            match operation {
                Operation::ReadTextFile(read) => {
                    let request = ReadTextFileRequest::new(session_id, read.path)
                        .line(read.line)
                        .limit(read.limit);
                    let response = self.cx.send_request(request).block_task().await;
                    response.map(|r| r.content).map_err(|e| e.message)
                }
                Operation::WriteTextFile(write) => {
                    let request = WriteTextFileRequest::new(session_id, write.path, write.content);
                    let response = self.cx.send_request(request).block_task().await;
                    response.map(|_| String::new()).map_err(|e| e.message)
                }
            }
        };
        tokio::select! {
            result = work => result,
            () = self.cancel.cancelled() => Err("cancelled".to_owned()),
        }
    }

    async fn answer_client(&self, request_id: String, result: Result<String, String>) {
        let result = match result {
            Ok(text) => client_response::Result::Text(text),
            Err(error) => client_response::Result::Error(error),
        };
        let response = ClientResponse {
            request_id,
            result: Some(result),
        };
        self.send(Input::ClientResponse(response)).await;
    }
}
