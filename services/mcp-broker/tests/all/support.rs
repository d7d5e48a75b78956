//! Shared fixtures: an rmcp server over Streamable HTTP in this process, a
//! broker in process with its gRPC client, and bounded waits on statuses.

use std::sync::Arc;
use std::time::Duration;

use openheim_config::{McpServerConfig, Secret};
use openheim_mcp_broker::{McpBrokerConfig, ProcessSettings, ReconnectPolicy};
use openheim_proto::GrpcChannel;
use openheim_proto::common::v1::{ToolCall, ToolDefinition};
use openheim_proto::mcp_broker::v1::mcp_broker_client::McpBrokerClient;
use openheim_proto::mcp_broker::v1::{
    CallToolRequest, CallToolResponse, ListServersRequest, ListToolsRequest, ServerState,
    ServerStatus,
};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse as McpCallResponse, CallToolResult, ContentBlock,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tokio_util::sync::{CancellationToken, DropGuard};

pub type Client = McpBrokerClient<GrpcChannel>;

/// How long a test waits for something that should happen soon.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A broker whose servers are `servers`, with test-friendly timing: a short
/// initialize limit, and reconnects only on demand (a one-hour backoff), so
/// that a test sees exactly the reconnects it causes.
pub fn broker(servers: Vec<(&str, McpServerConfig)>) -> Client {
    broker_with(config(servers))
}

pub fn config(servers: Vec<(&str, McpServerConfig)>) -> McpBrokerConfig {
    McpBrokerConfig {
        servers: servers
            .into_iter()
            .map(|(name, server)| (name.to_owned(), server))
            .collect(),
        processes: ProcessSettings {
            // What a user's environment gives a server: its PATH.
            child_env: std::env::vars()
                .filter(|(name, _)| name == "PATH")
                .collect(),
            ..ProcessSettings::default()
        },
        initialize_timeout: Duration::from_secs(10),
        reconnect: ReconnectPolicy {
            initial_delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
            factor: 1,
        },
        ..McpBrokerConfig::default()
    }
}

pub fn broker_with(config: McpBrokerConfig) -> Client {
    McpBrokerClient::new(openheim_mcp_broker::in_process(config))
}

pub fn http_server(url: &str, headers: &[(&str, &str)]) -> McpServerConfig {
    McpServerConfig {
        url: Some(url.to_owned()),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
            .collect(),
        ..McpServerConfig::default()
    }
}

pub fn stdio_server(command: &str, args: &[&str]) -> McpServerConfig {
    McpServerConfig {
        command: Some(command.to_owned()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..McpServerConfig::default()
    }
}

pub async fn statuses(client: &Client, session_id: &str) -> Vec<ServerStatus> {
    client
        .clone()
        .list_servers(ListServersRequest {
            session_id: session_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .servers
}

/// Polls `ListServers` (the only view the contract offers) until server
/// `name` satisfies `done`, for at most [`PATIENCE`].
pub async fn wait_status(
    client: &Client,
    session_id: &str,
    name: &str,
    done: impl Fn(&ServerStatus) -> bool,
) -> ServerStatus {
    let wait = async {
        loop {
            let found = statuses(client, session_id)
                .await
                .into_iter()
                .find(|s| s.name == name);
            if let Some(status) = found.filter(|s| done(s)) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    match tokio::time::timeout(PATIENCE, wait).await {
        Ok(status) => status,
        Err(_) => panic!(
            "server {name} never reached the expected status: {:?}",
            statuses(client, session_id).await
        ),
    }
}

pub async fn wait_connected(client: &Client, session_id: &str, name: &str) -> ServerStatus {
    wait_status(client, session_id, name, |s| {
        s.state == ServerState::Connected as i32
    })
    .await
}

pub async fn wait_failed(client: &Client, session_id: &str, name: &str) -> ServerStatus {
    wait_status(client, session_id, name, |s| {
        s.state == ServerState::Failed as i32
    })
    .await
}

pub async fn tools(client: &Client, session_id: &str) -> Vec<ToolDefinition> {
    client
        .clone()
        .list_tools(ListToolsRequest {
            session_id: session_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .tools
}

pub async fn tool_names(client: &Client, session_id: &str) -> Vec<String> {
    tools(client, session_id)
        .await
        .into_iter()
        .map(|t| t.name)
        .collect()
}

pub async fn call(
    client: &Client,
    session_id: &str,
    name: &str,
    arguments: Value,
    timeout_ms: u32,
) -> CallToolResponse {
    client
        .clone()
        .call_tool(CallToolRequest {
            session_id: session_id.to_owned(),
            call: Some(ToolCall {
                id: "call-1".to_owned(),
                name: name.to_owned(),
                arguments_json: arguments.to_string(),
            }),
            timeout_ms,
        })
        .await
        .unwrap()
        .into_inner()
}

/// An MCP server over Streamable HTTP on a free loopback port, serving
/// until dropped.
pub struct WebServer {
    pub url: String,
    _stop: DropGuard,
}

impl WebServer {
    pub async fn start() -> Self {
        let stop = CancellationToken::new();
        let service: StreamableHttpService<Web, LocalSessionManager> = StreamableHttpService::new(
            || Ok(Web::default()),
            Default::default(),
            StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
        );
        let router = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
                .await;
        });
        Self {
            url: format!("http://{addr}/mcp"),
            _stop: stop.drop_guard(),
        }
    }
}

/// The test server's tools; `grow` adds `extra` and announces the change.
#[derive(Clone)]
pub struct Web {
    tools: Arc<RwLock<Vec<Tool>>>,
}

impl Default for Web {
    fn default() -> Self {
        let tools = ["echo", "slow", "media", "fail", "header", "grow"]
            .into_iter()
            .map(|name| tool(name, &format!("The {name} tool")))
            .collect();
        Self {
            tools: Arc::new(RwLock::new(tools)),
        }
    }
}

fn tool(name: &str, description: &str) -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {"text": {"type": "string"}, "name": {"type": "string"}}
    });
    let Value::Object(schema) = schema else {
        unreachable!("an object literal")
    };
    Tool::new(name.to_owned(), description.to_owned(), Arc::new(schema))
}

fn text_arg(arguments: &Option<JsonObject>, key: &str) -> String {
    arguments
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl ServerHandler for Web {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.tools.read().await.clone(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<McpCallResponse, ErrorData> {
        let text = |s: String| Ok(CallToolResult::success(vec![ContentBlock::text(s)]).into());
        match request.name.as_ref() {
            "echo" => text(format!("echo: {}", text_arg(&request.arguments, "text"))),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                text("finally".into())
            }
            "media" => Ok(CallToolResult::success(vec![
                ContentBlock::image("aGVsbG8=", "image/png"),
                ContentBlock::embedded_text("file:///note.txt", "note body"),
            ])
            .into()),
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text("it broke")]).into()),
            "header" => {
                let name = text_arg(&request.arguments, "name");
                let value = context
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|p| p.headers.get(name.as_str()))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                text(value)
            }
            "grow" => {
                self.tools
                    .write()
                    .await
                    .push(tool("extra", "Appeared later"));
                let _ = context.peer.notify_tool_list_changed().await;
                text("grown".into())
            }
            "extra" => text("extra ran".into()),
            other => Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        }
    }
}

/// Waits (bounded) for a script to write its pid to `path`.
pub async fn wait_for_pid_file(path: &std::path::Path) -> u32 {
    let wait = async {
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("the server never wrote its pid")
}

/// Whether `pid` runs (a zombie awaiting its reaper counts as dead).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !stat
            .rsplit(") ")
            .next()
            .is_some_and(|rest| rest.starts_with('Z')),
    }
}

pub async fn wait_dead(pid: u32) {
    let wait = async {
        while is_alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert!(
        tokio::time::timeout(PATIENCE, wait).await.is_ok(),
        "process {pid} is still running"
    );
}
