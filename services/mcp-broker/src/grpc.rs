//! Server-side adapter of `openheim.mcp_broker.v1.McpBroker`.
//!
//! Tool failures (unknown tool, server down, timeout, `isError`) are tool
//! results with `is_error`, so the model reads them; only a malformed request
//! is a gRPC error.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use openheim_proto::common::v1::ElicitationAnswer;
use openheim_proto::mcp_broker::v1::{
    AttachSessionServersRequest, AttachSessionServersResponse, CallToolEvent, CallToolInput,
    CallToolRequest, CallToolResponse, DetachSessionRequest, DetachSessionResponse,
    ElicitationQuestion, GetPromptRequest, GetPromptResponse, ListPromptsRequest,
    ListPromptsResponse, ListResourcesRequest, ListResourcesResponse, ListServersRequest,
    ListServersResponse, ListToolsRequest, ListToolsResponse, ReadResourceRequest,
    ReadResourceResponse, call_tool_event, call_tool_input, mcp_broker_server::McpBroker,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::McpBrokerError;
use crate::elicitation::Ask;
use crate::registry::Registry;

#[derive(Clone)]
pub struct McpBrokerGrpc {
    registry: Arc<Registry>,
}

impl McpBrokerGrpc {
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
        }
    }
}

#[tonic::async_trait]
impl McpBroker for McpBrokerGrpc {
    async fn list_servers(
        &self,
        request: Request<ListServersRequest>,
    ) -> Result<Response<ListServersResponse>, Status> {
        let servers = self.registry.statuses(&request.into_inner().session_id);
        Ok(Response::new(ListServersResponse { servers }))
    }

    async fn list_tools(
        &self,
        request: Request<ListToolsRequest>,
    ) -> Result<Response<ListToolsResponse>, Status> {
        let listing = self
            .registry
            .list_tools(&request.into_inner().session_id)
            .await;
        Ok(Response::new(ListToolsResponse {
            tools: listing.tools,
            pending_servers: listing.pending,
        }))
    }

    async fn call_tool(
        &self,
        request: Request<CallToolRequest>,
    ) -> Result<Response<CallToolResponse>, Status> {
        let request = request.into_inner();
        let call = request
            .call
            .ok_or_else(|| Status::invalid_argument("`call` is required"))?;
        let (result, notices) = self
            .registry
            .call_tool(
                &request.session_id,
                &call.name,
                &call.arguments_json,
                request.timeout_ms,
                None,
            )
            .await;
        Ok(Response::new(call_response(result, notices)))
    }

    type CallToolInteractiveStream =
        Pin<Box<dyn Stream<Item = Result<CallToolEvent, Status>> + Send + 'static>>;

    async fn call_tool_interactive(
        &self,
        request: Request<Streaming<CallToolInput>>,
    ) -> Result<Response<Self::CallToolInteractiveStream>, Status> {
        let mut inputs = request.into_inner();
        let start = match inputs.message().await? {
            Some(CallToolInput {
                input: Some(call_tool_input::Input::Start(start)),
            }) => start,
            _ => return Err(Status::invalid_argument("the first input must be `start`")),
        };
        let call = start
            .call
            .clone()
            .ok_or_else(|| Status::invalid_argument("`call` is required"))?;
        let (events, rx) = mpsc::channel(8);
        let registry = Arc::clone(&self.registry);
        tokio::spawn(async move {
            let (asker, questions) = mpsc::channel(1);
            let calling = registry.call_tool(
                &start.session_id,
                &call.name,
                &call.arguments_json,
                start.timeout_ms,
                Some(asker),
            );
            let (result, notices) = relay(calling, questions, inputs, &events).await;
            let event = call_tool_event::Event::Result(call_response(result, notices));
            let _ = events.send(Ok(CallToolEvent { event: Some(event) })).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn attach_session_servers(
        &self,
        request: Request<AttachSessionServersRequest>,
    ) -> Result<Response<AttachSessionServersResponse>, Status> {
        let request = request.into_inner();
        if request.session_id.is_empty() {
            return Err(Status::invalid_argument("`session_id` is required"));
        }
        let servers = self
            .registry
            .attach(&request.session_id, request.servers)
            .await;
        Ok(Response::new(AttachSessionServersResponse { servers }))
    }

    async fn detach_session(
        &self,
        request: Request<DetachSessionRequest>,
    ) -> Result<Response<DetachSessionResponse>, Status> {
        self.registry.detach(&request.into_inner().session_id);
        Ok(Response::new(DetachSessionResponse {}))
    }

    async fn list_resources(
        &self,
        request: Request<ListResourcesRequest>,
    ) -> Result<Response<ListResourcesResponse>, Status> {
        let (resources, errors) = self
            .registry
            .list_resources(&request.into_inner().session_id)
            .await;
        Ok(Response::new(ListResourcesResponse { resources, errors }))
    }

    async fn read_resource(
        &self,
        request: Request<ReadResourceRequest>,
    ) -> Result<Response<ReadResourceResponse>, Status> {
        let request = request.into_inner();
        let response = match self
            .registry
            .read_resource(&request.session_id, &request.server, &request.uri)
            .await
        {
            Ok(output) => ReadResourceResponse {
                text: output.text,
                is_error: output.is_error,
                images: output.images,
            },
            Err(error) => ReadResourceResponse {
                text: error.shown(),
                is_error: true,
                images: Vec::new(),
            },
        };
        Ok(Response::new(response))
    }

    async fn list_prompts(
        &self,
        request: Request<ListPromptsRequest>,
    ) -> Result<Response<ListPromptsResponse>, Status> {
        let prompts = self
            .registry
            .list_prompts(&request.into_inner().session_id)
            .await;
        Ok(Response::new(ListPromptsResponse { prompts }))
    }

    async fn get_prompt(
        &self,
        request: Request<GetPromptRequest>,
    ) -> Result<Response<GetPromptResponse>, Status> {
        let request = request.into_inner();
        let (text, images) = self
            .registry
            .get_prompt(
                &request.session_id,
                &request.command,
                &request.input,
                request.arguments,
            )
            .await
            .map_err(|error| prompt_status(&error))?;
        Ok(Response::new(GetPromptResponse { text, images }))
    }
}

/// The status of a failed `GetPrompt`, with the error in words.
/// `CallToolInteractive`: the server's elicitation requests are put to the
/// caller on the call's own stream (a `question` each, answered by a
/// `reply` with its id) while the call runs.
/// Runs `calling` to its end, relaying the questions it asks to `events`
/// and the caller's replies from `inputs` back. A caller that closes its
/// input cancels the questions still open (the server gets `cancel`).
async fn relay<F: std::future::Future>(
    calling: F,
    mut questions: mpsc::Receiver<Ask>,
    mut inputs: Streaming<CallToolInput>,
    events: &mpsc::Sender<Result<CallToolEvent, Status>>,
) -> F::Output {
    tokio::pin!(calling);
    let mut waiting: HashMap<String, oneshot::Sender<ElicitationAnswer>> = HashMap::new();
    let mut next = 0u64;
    let mut reading = true;
    loop {
        tokio::select! {
            output = &mut calling => return output,
            Some(ask) = questions.recv() => {
                next += 1;
                let id = format!("elicitation-{next}");
                let question = ElicitationQuestion {
                    id: id.clone(),
                    elicitation: Some(ask.elicitation),
                };
                let event = call_tool_event::Event::Question(question);
                if events.send(Ok(CallToolEvent { event: Some(event) })).await.is_ok() {
                    waiting.insert(id, ask.answer);
                }
            }
            input = inputs.message(), if reading => match input {
                Ok(Some(CallToolInput {
                    input: Some(call_tool_input::Input::Reply(reply)),
                })) => {
                    if let Some(answer) = waiting.remove(&reply.id) {
                        let _ = answer.send(reply.answer.unwrap_or_default());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    reading = false;
                    waiting.clear();
                }
            },
        }
    }
}

/// The wire result of a call.
fn call_response(
    result: Result<crate::mapping::ToolOutput, McpBrokerError>,
    notices: Vec<String>,
) -> CallToolResponse {
    match result {
        Ok(output) => CallToolResponse {
            output: output.text,
            is_error: output.is_error,
            raw_output_json: output.raw_json,
            images: output.images,
            notices,
        },
        Err(error) => CallToolResponse {
            output: error.shown(),
            is_error: true,
            raw_output_json: String::new(),
            images: Vec::new(),
            notices,
        },
    }
}

fn prompt_status(error: &McpBrokerError) -> Status {
    let message = error.shown();
    match error {
        McpBrokerError::UnknownPrompt(_) | McpBrokerError::UnknownServer(_) => {
            Status::not_found(message)
        }
        McpBrokerError::MissingArgument { .. } => Status::invalid_argument(message),
        _ => Status::unavailable(message),
    }
}
