//! Server-side adapter of `openheim.mcp_broker.v1.McpBroker`.
//!
//! Tool failures (unknown tool, server down, timeout, `isError`) are tool
//! results with `is_error`, so the model reads them; only a malformed request
//! is a gRPC error.

use std::sync::Arc;

use openheim_proto::mcp_broker::v1::{
    AttachSessionServersRequest, AttachSessionServersResponse, CallToolRequest, CallToolResponse,
    DetachSessionRequest, DetachSessionResponse, GetPromptRequest, GetPromptResponse,
    ListPromptsRequest, ListPromptsResponse, ListResourcesRequest, ListResourcesResponse,
    ListServersRequest, ListServersResponse, ListToolsRequest, ListToolsResponse,
    ReadResourceRequest, ReadResourceResponse, mcp_broker_server::McpBroker,
};

use crate::McpBrokerError;
use tonic::{Request, Response, Status};

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
        let response = match self
            .registry
            .call_tool(
                &request.session_id,
                &call.name,
                &call.arguments_json,
                request.timeout_ms,
            )
            .await
        {
            Ok(output) => CallToolResponse {
                output: output.text,
                is_error: output.is_error,
                raw_output_json: output.raw_json,
                images: output.images,
            },
            Err(error) => CallToolResponse {
                output: error.shown(),
                is_error: true,
                raw_output_json: String::new(),
                images: Vec::new(),
            },
        };
        Ok(Response::new(response))
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
