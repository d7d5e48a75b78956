//! MCP servers end to end: the test MCP server (`test-mcp-server`, rmcp)
//! over stdio and Streamable HTTP in full `openheim run` turns, a server
//! that never initializes, a server killed mid-session, and the reference
//! server `@modelcontextprotocol/server-everything` from npm.
//!
//! Turns run the real binaries; scenarios that need no turn drive the broker
//! in process through its generated gRPC client.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openheim_config::McpServerConfig;
use openheim_e2e::install::{stderr, stdout};
use openheim_e2e::{
    Install, MockLlm, Reply, ServiceProcess, ToolCallSpec, bin_path, last_tool_result,
};
use openheim_mcp_broker::{McpBrokerConfig, ReconnectPolicy};
use openheim_proto::GrpcChannel;
use openheim_proto::common::v1::ToolCall;
use openheim_proto::mcp_broker::v1::mcp_broker_client::McpBrokerClient;
use openheim_proto::mcp_broker::v1::{
    CallToolRequest, CallToolResponse, GetPromptRequest, ListPromptsRequest, ListResourcesRequest,
    ListServersRequest, ListToolsRequest, ReadResourceRequest, ServerState, ServerStatus,
};
use serde_json::{Value, json};

type Client = McpBrokerClient<GrpcChannel>;

/// How long a scenario waits for something that should happen soon.
const PATIENCE: Duration = Duration::from_secs(30);

/// The mock calls `testserver__echo`, then answers quoting its result.
fn echo_script() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "testserver__echo",
            json!({"text": "hi"}),
        )]),
        Reply::dynamic(|request| {
            let result = last_tool_result(request).unwrap_or_default();
            Reply::text(format!("The server said: {result}"))
        }),
    ]
}

fn stdio_section(name: &str) -> String {
    format!(
        "[mcp_servers.{name}]\ncommand = \"{}\"\nargs = [\"stdio\"]\n",
        bin_path("test-mcp-server").display()
    )
}

fn http_section(name: &str, url: &str) -> String {
    format!("[mcp_servers.{name}]\nurl = \"{url}\"\n")
}

/// Runs one `openheim run` turn with the echo script and checks the answer
/// quotes the MCP tool's result.
async fn echo_turn(install: &Install, mock: &MockLlm) {
    let output = install
        .openheim(&["run", "Ask the test server to echo"])
        .await;
    assert!(
        output.status.success(),
        "openheim run failed: {:?}\nstderr:\n{}",
        output.status,
        stderr(&output)
    );
    mock.assert_no_violations();
    let tools = mock.tool_names(0);
    assert!(
        tools.iter().any(|t| t == "testserver__echo"),
        "the first request lacks the MCP tool: {tools:?}"
    );
    let out = stdout(&output);
    assert!(out.contains("The server said: echo: hi"), "stdout: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_calls_an_mcp_tool_over_stdio() {
    let mock = MockLlm::start(echo_script()).await;
    let install = Install::new(&mock, &stdio_section("testserver"));
    echo_turn(&install, &mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_calls_an_mcp_tool_over_http() {
    let server = ServiceProcess::spawn("test-mcp-server", &["http"], &[]).await;
    let url = format!("{}/mcp", server.url());
    let mock = MockLlm::start(echo_script()).await;
    let install = Install::new(&mock, &http_section("testserver", &url));
    echo_turn(&install, &mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_calls_an_mcp_tool_with_services_as_processes() {
    let server = ServiceProcess::spawn("test-mcp-server", &["http"], &[]).await;
    let url = format!("{}/mcp", server.url());
    let mock = MockLlm::start(echo_script()).await;
    let install = Install::new(&mock, "");
    let _cluster = install
        .start_cluster(&mock, &http_section("testserver", &url))
        .await;
    echo_turn(&install, &mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_initializes_does_not_stop_the_turn() {
    let mock = MockLlm::start(echo_script()).await;
    let sleepy = "[mcp_servers.sleepy]\ncommand = \"sleep\"\nargs = [\"3600\"]\n";
    let extra = format!("{}{sleepy}", stdio_section("testserver"));
    let install = Install::new(&mock, &extra);
    let started = Instant::now();
    echo_turn(&install, &mock).await;
    // The turn waited at most the startup grace for it, never the
    // initialize limit or an hour.
    assert!(
        started.elapsed() < openheim_mcp_broker::DEFAULT_INITIALIZE_TIMEOUT,
        "the turn took {:?}",
        started.elapsed()
    );
    let tools = mock.tool_names(0);
    assert!(!tools.iter().any(|t| t.starts_with("sleepy")), "{tools:?}");
}

// ---- Scenarios on the broker alone, through its gRPC client -------------

/// A broker with `servers`; reconnects happen only when a call asks for one
/// (the backoff is an hour), so a test sees exactly the reconnects it causes.
fn broker(servers: Vec<(&str, McpServerConfig)>, initialize_timeout: Duration) -> Client {
    let config = McpBrokerConfig {
        servers: servers
            .into_iter()
            .map(|(name, server)| (name.to_owned(), server))
            .collect(),
        initialize_timeout,
        reconnect: ReconnectPolicy {
            initial_delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
            factor: 1,
        },
        ..McpBrokerConfig::default()
    };
    McpBrokerClient::new(openheim_mcp_broker::in_process(config))
}

fn stdio_server(command: &Path, args: &[&str]) -> McpServerConfig {
    McpServerConfig {
        command: Some(command.display().to_string()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..McpServerConfig::default()
    }
}

fn test_server() -> McpServerConfig {
    stdio_server(&bin_path("test-mcp-server"), &["stdio"])
}

async fn statuses(client: &Client) -> Vec<ServerStatus> {
    let request = ListServersRequest {
        session_id: String::new(),
    };
    client
        .clone()
        .list_servers(request)
        .await
        .unwrap()
        .into_inner()
        .servers
}

/// Polls `ListServers` until server `name` is in `state`, for at most
/// [`PATIENCE`].
async fn wait_state(client: &Client, name: &str, state: ServerState) -> ServerStatus {
    let wait = async {
        loop {
            let found = statuses(client).await.into_iter().find(|s| s.name == name);
            if let Some(status) = found.filter(|s| s.state == state as i32) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    match tokio::time::timeout(PATIENCE, wait).await {
        Ok(status) => status,
        Err(_) => panic!(
            "{name} never became {state:?}: {:?}",
            statuses(client).await
        ),
    }
}

async fn tool_names(client: &Client) -> Vec<String> {
    let request = ListToolsRequest {
        session_id: String::new(),
    };
    let tools = client.clone().list_tools(request).await.unwrap();
    tools
        .into_inner()
        .tools
        .into_iter()
        .map(|t| t.name)
        .collect()
}

async fn call(client: &Client, name: &str, arguments: Value) -> CallToolResponse {
    let request = CallToolRequest {
        session_id: String::new(),
        call: Some(ToolCall {
            id: "call-1".to_owned(),
            name: name.to_owned(),
            arguments_json: arguments.to_string(),
        }),
        timeout_ms: 0,
    };
    client
        .clone()
        .call_tool(request)
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_and_the_next_call_reconnects() {
    let client = broker(vec![("testserver", test_server())], Duration::from_secs(20));
    let status = wait_state(&client, "testserver", ServerState::Connected).await;
    assert_eq!(status.tool_count, 5);
    let pid = call(&client, "testserver__pid", json!({})).await;
    assert!(!pid.is_error, "{}", pid.output);
    let pid: i32 = pid.output.parse().unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let failed = wait_state(&client, "testserver", ServerState::Failed).await;
    assert!(!failed.error.is_empty());

    // The call finds the server down, has it reconnect, and succeeds.
    let echo = call(&client, "testserver__echo", json!({"text": "again"})).await;
    assert!(!echo.is_error, "{}", echo.output);
    assert_eq!(echo.output, "echo: again");
    wait_state(&client, "testserver", ServerState::Connected).await;
    let new_pid = call(&client, "testserver__pid", json!({})).await;
    assert_ne!(new_pid.output, pid.to_string(), "a new process serves now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_initializes_reports_the_timeout() {
    let servers = vec![
        ("testserver", test_server()),
        ("sleepy", stdio_server(Path::new("sleep"), &["3600"])),
    ];
    let client = broker(servers, Duration::from_millis(500));
    let status = wait_state(&client, "sleepy", ServerState::Failed).await;
    assert!(
        status.error.contains("timed out during initialize"),
        "{}",
        status.error
    );
    wait_state(&client, "testserver", ServerState::Connected).await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"testserver__add".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("sleepy")), "{names:?}");
    let sum = call(&client, "testserver__add", json!({"a": 2, "b": 40})).await;
    assert_eq!(sum.output, "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_servers_get_their_env() {
    let mut server = test_server();
    server
        .env
        .insert("TEST_MCP_GREETING".into(), "hello from config".into());
    let client = broker(vec![("testserver", server)], Duration::from_secs(20));
    wait_state(&client, "testserver", ServerState::Connected).await;
    let env = call(
        &client,
        "testserver__env",
        json!({"name": "TEST_MCP_GREETING"}),
    )
    .await;
    assert_eq!(env.output, "hello from config");
}

/// Where `.ci/run` installs the reference server.
pub(crate) fn everything_entry() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

pub(crate) fn node_available() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_everything_round_trips() {
    if !node_available() {
        println!("skipped: `node` is not installed");
        return;
    }
    let entry = everything_entry();
    if !entry.is_file() {
        println!(
            "skipped: {} is missing; .ci/run installs it with npm",
            entry.display()
        );
        return;
    }
    let server = stdio_server(Path::new("node"), &[&entry.display().to_string(), "stdio"]);
    let client = broker(vec![("everything", server)], Duration::from_secs(30));
    wait_state(&client, "everything", ServerState::Connected).await;

    let names = tool_names(&client).await;
    // Its tools, and the resource reader (it has resources).
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("everything__") || n == "read_mcp_resource"),
        "{names:?}"
    );
    for tool in [
        "everything__echo",
        "everything__get-sum",
        "everything__get-tiny-image",
    ] {
        assert!(names.iter().any(|n| n == tool), "{tool} missing: {names:?}");
    }
    let echo = call(
        &client,
        "everything__echo",
        json!({"message": "round trip"}),
    )
    .await;
    assert!(!echo.is_error, "{}", echo.output);
    assert_eq!(echo.output, "Echo: round trip");
    let image = call(&client, "everything__get-tiny-image", json!({})).await;
    assert!(
        image.output.contains("[image: image/png, "),
        "{}",
        image.output
    );
    // The image itself goes along for models that see (docs/mcp.md).
    assert_eq!(image.images.len(), 1, "{image:?}");
    assert_eq!(image.images[0].mime_type, "image/png");
    assert!(image.images[0].data.starts_with(b"\x89PNG\r\n\x1a\n"));
}

/// The reference server under the broker, connected.
async fn everything_broker() -> Client {
    let entry = everything_entry().display().to_string();
    let server = stdio_server(Path::new("node"), &[&entry, "stdio"]);
    let client = broker(vec![("everything", server)], Duration::from_secs(30));
    wait_state(&client, "everything", ServerState::Connected).await;
    client
}

async fn prompt(client: &Client, command: &str, input: &str) -> Result<String, tonic::Status> {
    let request = GetPromptRequest {
        session_id: String::new(),
        command: command.into(),
        arguments: Default::default(),
        input: input.into(),
    };
    Ok(client.clone().get_prompt(request).await?.into_inner().text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_and_prompts_of_the_reference_server() {
    if !node_available() || !everything_entry().is_file() {
        println!("skipped: node or the reference server is missing; .ci/run installs them");
        return;
    }
    let client = everything_broker().await;
    // Resources: listed per server, read by URI, and offered to the model
    // through `read_mcp_resource`.
    let features = "demo://resource/static/document/features.md";
    let listed = client
        .clone()
        .list_resources(ListResourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.errors.is_empty(), "{:?}", listed.errors);
    let entry = listed
        .resources
        .iter()
        .find(|r| r.uri == features)
        .unwrap_or_else(|| panic!("{features} not listed: {:?}", listed.resources));
    assert_eq!(entry.server, "everything");
    assert_eq!(entry.mime_type, "text/markdown");
    let read = client
        .clone()
        .read_resource(ReadResourceRequest {
            session_id: String::new(),
            server: "everything".into(),
            uri: features.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!read.is_error, "{}", read.text);
    assert!(
        read.text.starts_with("# Everything Server - Features"),
        "{}",
        read.text
    );
    assert!(
        tool_names(&client)
            .await
            .iter()
            .any(|n| n == "read_mcp_resource")
    );
    let listing = call(&client, "read_mcp_resource", json!({})).await;
    assert!(listing.output.contains(features), "{}", listing.output);
    let by_tool = call(&client, "read_mcp_resource", json!({"uri": features})).await;
    assert!(!by_tool.is_error, "{}", by_tool.output);
    assert_eq!(by_tool.output, read.text);
    let missing = call(
        &client,
        "read_mcp_resource",
        json!({"server": "everything", "uri": "demo://nope"}),
    )
    .await;
    assert!(missing.is_error, "{}", missing.output);

    // Prompts: slash commands `server:prompt`, filled in by the server.
    let prompts = client
        .clone()
        .list_prompts(ListPromptsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .prompts;
    let args = prompts
        .iter()
        .find(|p| p.command == "everything:args-prompt")
        .unwrap_or_else(|| panic!("{prompts:?}"));
    assert_eq!(args.arguments[0].name, "city");
    assert!(args.arguments[0].required);
    assert_eq!(
        prompt(&client, "everything:simple-prompt", "")
            .await
            .unwrap(),
        "This is a simple prompt without arguments."
    );
    assert_eq!(
        prompt(
            &client,
            "everything:args-prompt",
            r#"city="New York" state=NY"#
        )
        .await
        .unwrap(),
        "What's weather in New York, NY?"
    );
    assert_eq!(
        prompt(&client, "everything:args-prompt", "Paris")
            .await
            .unwrap(),
        "What's weather in Paris?"
    );
    let missing = prompt(&client, "everything:args-prompt", "")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument, "{missing:?}");
    assert!(
        missing.message().contains("`city`"),
        "{}",
        missing.message()
    );
    let unknown = prompt(&client, "everything:no-such", "").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
}
