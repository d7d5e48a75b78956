//! `test-mcp-server`: a small MCP server built with rmcp, for end-to-end
//! tests of mcp-broker.
//!
//! - `test-mcp-server stdio` serves MCP on stdin/stdout.
//! - `test-mcp-server http --listen 127.0.0.1:0` serves Streamable HTTP at
//!   `/mcp` and prints `listening on ADDR` once bound (the line
//!   `openheim_e2e::ServiceProcess` waits for).
//!
//! Tools: `echo {text}` → `echo: TEXT`; `add {a, b}` → the sum; `pid` → the
//! process id (so a test can kill the server mid-session); `env {name}` → an
//! environment variable; `header {name}` → an HTTP request header (HTTP only).

#![allow(clippy::print_stdout)]

use std::io::Write;

use anyhow::Context;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// Text to send back.
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct NameArgs {
    name: String,
}

#[derive(Clone)]
struct TestServer {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl TestServer {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Echoes the text back, prefixed with `echo: `")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        format!("echo: {text}")
    }

    #[tool(description = "Adds two integers")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        a.saturating_add(b).to_string()
    }

    #[tool(description = "The server's process id")]
    fn pid(&self) -> String {
        std::process::id().to_string()
    }

    #[tool(description = "The value of an environment variable (empty when unset)")]
    fn env(&self, Parameters(NameArgs { name }): Parameters<NameArgs>) -> String {
        std::env::var(name).unwrap_or_default()
    }

    #[tool(description = "The value of an HTTP request header (empty when absent or on stdio)")]
    fn header(
        &self,
        Parameters(NameArgs { name }): Parameters<NameArgs>,
        context: RequestContext<RoleServer>,
    ) -> String {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get(name.as_str()))
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stdio") => serve_stdio().await,
        Some("http") => {
            let listen = args
                .iter()
                .skip_while(|a| *a != "--listen")
                .nth(1)
                .map_or("127.0.0.1:0", String::as_str);
            serve_http(listen).await
        }
        _ => anyhow::bail!("usage: test-mcp-server stdio | http [--listen ADDR]"),
    }
}

async fn serve_stdio() -> anyhow::Result<()> {
    let service = TestServer::new()
        .serve(rmcp::transport::stdio())
        .await
        .context("initialize over stdio")?;
    service.waiting().await?;
    Ok(())
}

async fn serve_http(listen: &str) -> anyhow::Result<()> {
    let service: StreamableHttpService<TestServer, LocalSessionManager> =
        StreamableHttpService::new(
            || Ok(TestServer::new()),
            Default::default(),
            StreamableHttpServerConfig::default(),
        );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, router).await?;
    Ok(())
}
