//! Server-side adapter of `openheim.mcp_broker.v1.McpBroker`.
//!
//! Tool failures (unknown tool, server down, timeout, `isError`) are tool
//! results with `is_error`, so the model reads them; only a malformed request
//! is a gRPC error.

use std::sync::Arc;

use openheim_proto::mcp_broker::v1::{
    AttachSessionServersRequest, AttachSessionServersResponse, CallToolRequest, CallToolResponse,
    DetachSessionRequest, DetachSessionResponse, ListServersRequest, ListServersResponse,
    ListToolsRequest, ListToolsResponse, mcp_broker_server::McpBroker,
};
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
}
