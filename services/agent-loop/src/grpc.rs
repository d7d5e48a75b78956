//! Server-side adapter: the `openheim.agent_loop.v1.AgentLoop` gRPC service
//! over [`AgentService`]. The only module that names tonic's server types.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use openheim_memory::MemoryError;
use openheim_proto::agent_loop::v1::{
    CloseSessionRequest, CloseSessionResponse, CreateSessionRequest, DeleteSessionRequest,
    DeleteSessionResponse, ForgetMemoryRequest, GetMcpPromptRequest, GetMcpPromptResponse,
    ListMcpPromptsRequest, ListMcpPromptsResponse, ListMcpServersRequest, ListMcpServersResponse,
    ListMemoryRequest, ListMemoryResponse, ListSessionsRequest, ListSessionsResponse,
    ListSkillsRequest, ListSkillsResponse, ListToolsRequest, ListToolsResponse, LoadSessionRequest,
    LoadSessionResponse, MemoryNote, SessionInfo, SetSessionModeRequest, SetSessionModelRequest,
    SetSessionSkillsRequest, TurnError, TurnEvent, TurnInput, agent_loop_server::AgentLoop,
    turn_event::Event, turn_input::Input,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::client::ClientReply;
use crate::error::AgentError;
use crate::owner::principal_of;
use crate::service::{AgentService, TurnInbox};
use crate::spans;
use crate::store::StoreError;

/// Events buffered per turn before the turn waits for its caller.
const TURN_EVENT_BUFFER: usize = 256;

#[derive(Clone)]
pub struct AgentLoopGrpc {
    service: Arc<AgentService>,
}

impl AgentLoopGrpc {
    pub fn new(service: Arc<AgentService>) -> Self {
        Self { service }
    }
}

fn status(error: AgentError) -> Status {
    let message = error.to_string();
    match error {
        AgentError::Store(StoreError::NotFound(_)) | AgentError::UnknownPrompt(_) => {
            Status::not_found(message)
        }
        AgentError::Store(StoreError::InvalidId(_) | StoreError::InvalidCursor(_))
        | AgentError::InvalidInput(_)
        | AgentError::Prompt(_) => Status::invalid_argument(message),
        AgentError::Store(StoreError::AlreadyExists(_)) => Status::already_exists(message),
        AgentError::Store(
            StoreError::Corrupt { .. } | StoreError::Io(_) | StoreError::Backend(_),
        ) => Status::internal(message),
        AgentError::Store(StoreError::Unavailable(_)) => Status::unavailable(message),
        AgentError::Store(StoreError::Fenced(_)) => Status::aborted(message),
        AgentError::Busy { .. } => Status::failed_precondition(message),
        AgentError::Backend { .. } | AgentError::TruncatedStream => Status::unavailable(message),
        AgentError::Llm { .. } => Status::internal(message),
        AgentError::MemoryDisabled => Status::failed_precondition(message),
        AgentError::HookDenied { .. } | AgentError::Forbidden(_) => {
            Status::permission_denied(message)
        }
        AgentError::Limited(refusal) => {
            openheim_proto::limit::status(refusal.limit.name(), refusal.retry_after_secs(), message)
        }
        AgentError::Memory(error) => match error {
            MemoryError::Invalid(_) => Status::invalid_argument(message),
            MemoryError::NotFound(_) => Status::not_found(message),
            MemoryError::Locked(_) | MemoryError::Unavailable(_) => Status::unavailable(message),
            MemoryError::Corrupt(_) | MemoryError::Backend(_) => Status::internal(message),
        },
    }
}

type TurnStream = Pin<Box<dyn Stream<Item = Result<TurnEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AgentLoop for AgentLoopGrpc {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        let info = self
            .service
            .create_session(request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(info))
    }

    async fn load_session(
        &self,
        request: Request<LoadSessionRequest>,
    ) -> Result<Response<LoadSessionResponse>, Status> {
        let request = request.into_inner();
        let response = self
            .service
            .load_session(
                &request.session_id,
                request.mcp_servers,
                &principal_of(request.caller.as_ref()),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(response))
    }

    async fn list_sessions(
        &self,
        request: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        let response = self
            .service
            .list_sessions(request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(response))
    }

    async fn delete_session(
        &self,
        request: Request<DeleteSessionRequest>,
    ) -> Result<Response<DeleteSessionResponse>, Status> {
        let request = request.into_inner();
        self.service
            .delete_session(&request.session_id, &principal_of(request.caller.as_ref()))
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteSessionResponse {}))
    }

    async fn close_session(
        &self,
        request: Request<CloseSessionRequest>,
    ) -> Result<Response<CloseSessionResponse>, Status> {
        let request = request.into_inner();
        self.service
            .close_session(&request.session_id)
            .await
            .map_err(status)?;
        Ok(Response::new(CloseSessionResponse {}))
    }

    async fn set_session_model(
        &self,
        request: Request<SetSessionModelRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        let request = request.into_inner();
        let info = self
            .service
            .set_model(
                &request.session_id,
                request.model,
                &principal_of(request.caller.as_ref()),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info))
    }

    async fn set_session_mode(
        &self,
        request: Request<SetSessionModeRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        let info = self
            .service
            .set_mode(request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(info))
    }

    async fn set_session_skills(
        &self,
        request: Request<SetSessionSkillsRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        let request = request.into_inner();
        let info = self
            .service
            .set_skills(
                &request.session_id,
                request.skills,
                &principal_of(request.caller.as_ref()),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info))
    }

    async fn list_tools(
        &self,
        request: Request<ListToolsRequest>,
    ) -> Result<Response<ListToolsResponse>, Status> {
        let request = request.into_inner();
        let tools = self
            .service
            .list_tools(&request.session_id, &principal_of(request.caller.as_ref()))
            .await
            .map_err(status)?;
        Ok(Response::new(ListToolsResponse { tools }))
    }

    async fn list_skills(
        &self,
        _request: Request<ListSkillsRequest>,
    ) -> Result<Response<ListSkillsResponse>, Status> {
        let names = self.service.list_skills().await;
        Ok(Response::new(ListSkillsResponse { names }))
    }

    async fn list_mcp_servers(
        &self,
        request: Request<ListMcpServersRequest>,
    ) -> Result<Response<ListMcpServersResponse>, Status> {
        let request = request.into_inner();
        let servers = self
            .service
            .list_mcp_servers(&request.session_id, &principal_of(request.caller.as_ref()))
            .await
            .map_err(status)?;
        Ok(Response::new(ListMcpServersResponse { servers }))
    }

    async fn list_mcp_prompts(
        &self,
        request: Request<ListMcpPromptsRequest>,
    ) -> Result<Response<ListMcpPromptsResponse>, Status> {
        let request = request.into_inner();
        let prompts = self
            .service
            .list_mcp_prompts(&request.session_id, &principal_of(request.caller.as_ref()))
            .await
            .map_err(status)?;
        Ok(Response::new(ListMcpPromptsResponse { prompts }))
    }

    async fn get_mcp_prompt(
        &self,
        request: Request<GetMcpPromptRequest>,
    ) -> Result<Response<GetMcpPromptResponse>, Status> {
        let response = self
            .service
            .get_mcp_prompt(request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(response))
    }

    async fn list_memory(
        &self,
        request: Request<ListMemoryRequest>,
    ) -> Result<Response<ListMemoryResponse>, Status> {
        let response = self
            .service
            .list_memory(request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(response))
    }

    async fn forget_memory(
        &self,
        request: Request<ForgetMemoryRequest>,
    ) -> Result<Response<MemoryNote>, Status> {
        let note = self
            .service
            .forget_memory(request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(note))
    }

    type TurnStream = TurnStream;

    async fn turn(
        &self,
        request: Request<Streaming<TurnInput>>,
    ) -> Result<Response<Self::TurnStream>, Status> {
        let mut inputs = request.into_inner();
        let start = match inputs.message().await? {
            Some(TurnInput {
                input: Some(Input::Start(start)),
            }) => start,
            _ => {
                return Err(Status::invalid_argument(
                    "the first turn input must be `start`",
                ));
            }
        };
        // Limits first: a refused turn is a status, before any LLM call.
        let slot = self.service.admit_turn(&start).await.map_err(status)?;
        let (tx, rx) = mpsc::channel(TURN_EVENT_BUFFER);
        let cancel = CancellationToken::new();
        let inbox = TurnInbox::default();
        let reader = tokio::spawn(read_inputs(inputs, inbox.clone(), cancel.clone()));
        let service = Arc::clone(&self.service);
        let turn_cancel = cancel.clone();
        // The turn runs on its own task, in its span under this call's. The
        // span ends before the caller hears of the end, so a caller that
        // exits then (and flushes its telemetry) has it.
        let span = spans::turn(&start.session_id);
        let turn = async move {
            let run = service.run_turn(start, tx.clone(), inbox.clone(), turn_cancel);
            let result = tracing::Instrument::instrument(run, span.clone()).await;
            spans::turn_ended(&span, &result);
            drop(span);
            // Given back before the caller hears of the end, so its next
            // turn finds the slot free.
            slot.release().await;
            reader.abort();
            inbox.clear();
            let last = match result {
                Ok(ended) => Event::Ended(ended),
                Err(error) => Event::Error(turn_error(&error)),
            };
            let _ = tx.send(TurnEvent { event: Some(last) }).await;
        };
        tokio::spawn(turn);
        // Dropping the response stream (the caller went away) cancels the turn.
        let guard = cancel.drop_guard();
        let stream = ReceiverStream::new(rx).map(move |event| {
            let _keep_until_dropped = &guard;
            Ok(event)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn turn_error(error: &AgentError) -> TurnError {
    let llm_error_kind = match error {
        AgentError::Llm { kind, .. } => *kind,
        _ => 0,
    };
    let retry_after_ms = match error {
        AgentError::Busy {
            retry_after: Some(wait),
            ..
        } => u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1),
        AgentError::Limited(refusal) => u32::try_from(refusal.retry_after.as_millis())
            .unwrap_or(u32::MAX)
            .max(1),
        _ => 0,
    };
    TurnError {
        kind: error.turn_error_kind() as i32,
        message: error.to_string(),
        llm_error_kind,
        retry_after_ms,
    }
}

/// Routes inputs after `start`: permission answers, client responses and
/// cancellation. The input stream closing (or failing) cancels the turn.
async fn read_inputs(
    mut inputs: Streaming<TurnInput>,
    inbox: TurnInbox,
    cancel: CancellationToken,
) {
    loop {
        match inputs.message().await {
            Ok(Some(TurnInput { input: Some(input) })) => match input {
                Input::Permission(answer) => {
                    if !inbox
                        .questions
                        .answer(&answer.request_id, answer.decision())
                    {
                        tracing::debug!(request_id = %answer.request_id, "answer to no open question");
                    }
                }
                Input::ClientResponse(response) => {
                    let reply = ClientReply::from_wire(response.result);
                    if !inbox.client_replies.answer(&response.request_id, reply) {
                        tracing::debug!(request_id = %response.request_id, "response to no open client request");
                    }
                }
                Input::Cancel(_) => {
                    cancel.cancel();
                    return;
                }
                Input::Start(_) => tracing::warn!("ignoring a second `start` in one turn"),
            },
            Ok(Some(TurnInput { input: None })) => {}
            Ok(None) | Err(_) => {
                cancel.cancel();
                return;
            }
        }
    }
}
