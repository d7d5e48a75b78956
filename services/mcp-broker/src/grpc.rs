//! Server-side adapter of `openheim.mcp_broker.v1.McpBroker`.

use std::sync::Arc;

use openheim_proto::mcp_broker::v1::{
    AttachSessionServersRequest, AttachSessionServersResponse, CallToolRequest, CallToolResponse,
    DetachSessionRequest, DetachSessionResponse, ListServersRequest, ListServersResponse,
    ListToolsRequest, ListToolsResponse, mcp_broker_server::McpBroker,
};
use tonic::{Request, Response, Status};

use crate::registry::{NOT_CONNECTED, Registry};

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
        _request: Request<ListToolsRequest>,
    ) -> Result<Response<ListToolsResponse>, Status> {
        // No server is connected, so no MCP tool is offered.
        Ok(Response::new(ListToolsResponse { tools: Vec::new() }))
    }

    async fn call_tool(
        &self,
        request: Request<CallToolRequest>,
    ) -> Result<Response<CallToolResponse>, Status> {
        let name = request
            .into_inner()
            .call
            .map(|c| c.name)
            .unwrap_or_default();
        Ok(Response::new(CallToolResponse {
            output: format!("MCP tool {name:?} is unavailable: {NOT_CONNECTED}."),
            is_error: true,
            raw_output_json: String::new(),
        }))
    }

    async fn attach_session_servers(
        &self,
        request: Request<AttachSessionServersRequest>,
    ) -> Result<Response<AttachSessionServersResponse>, Status> {
        let request = request.into_inner();
        let servers = self.registry.attach(&request.session_id, request.servers);
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
