//! Servers over Streamable HTTP: tools listed with prefix, schema and
//! description; calls and result mapping; headers; per-call timeouts;
//! `tools/list_changed`.

use openheim_proto::common::v1::ToolKind;
use openheim_proto::mcp_broker::v1::ServerState;
use serde_json::json;

use crate::support::{
    WebServer, broker, call, http_server, tool_names, tools, wait_connected, wait_failed,
};

#[tokio::test]
async fn tools_are_offered_with_the_server_prefix() {
    let web = WebServer::start().await;
    let client = broker(vec![("web", http_server(&web.url, &[]))]);
    let status = wait_connected(&client, "", "web").await;
    assert_eq!(status.tool_count, 6);
    assert!(status.error.is_empty());

    let listed = tools(&client, "").await;
    let echo = listed.iter().find(|t| t.name == "web__echo").unwrap();
    assert_eq!(echo.description, "The echo tool");
    assert_eq!(echo.source, "mcp:web");
    assert_eq!(echo.kind, ToolKind::Other as i32);
    let schema: serde_json::Value = serde_json::from_str(&echo.input_schema_json).unwrap();
    assert_eq!(schema["properties"]["text"]["type"], "string");

    let reply = call(&client, "", "web__echo", json!({"text": "hi"}), 0).await;
    assert_eq!(reply.output, "echo: hi");
    assert!(!reply.is_error);
    let raw: serde_json::Value = serde_json::from_str(&reply.raw_output_json).unwrap();
    assert_eq!(raw["content"][0]["text"], "echo: hi");
}

#[tokio::test]
async fn results_are_mapped_to_text() {
    let web = WebServer::start().await;
    let client = broker(vec![("web", http_server(&web.url, &[]))]);
    wait_connected(&client, "", "web").await;

    let media = call(&client, "", "web__media", json!({}), 0).await;
    assert_eq!(media.output, "[image: image/png, 5 bytes]\nnote body");
    assert!(!media.is_error);

    let failed = call(&client, "", "web__fail", json!({}), 0).await;
    assert_eq!(failed.output, "it broke");
    assert!(failed.is_error, "isError is a tool error");

    let unknown = call(&client, "", "web__nope", json!({}), 0).await;
    assert!(unknown.is_error);
    assert_eq!(unknown.output, "unknown MCP tool `web__nope`");

    let bad = call(&client, "", "web__echo", json!([1, 2]), 0).await;
    assert!(bad.is_error);
    assert!(
        bad.output.contains("must be a JSON object"),
        "{}",
        bad.output
    );
}

#[tokio::test]
async fn headers_reach_a_loopback_server() {
    let web = WebServer::start().await;
    let headers = [("Authorization", "Bearer t0k3n"), ("X-Team", "blue")];
    let client = broker(vec![("web", http_server(&web.url, &headers))]);
    wait_connected(&client, "", "web").await;
    let auth = call(
        &client,
        "",
        "web__header",
        json!({"name": "authorization"}),
        0,
    )
    .await;
    assert_eq!(auth.output, "Bearer t0k3n");
    let team = call(&client, "", "web__header", json!({"name": "x-team"}), 0).await;
    assert_eq!(team.output, "blue");
}

#[tokio::test]
async fn headers_over_plain_http_to_another_host_are_refused() {
    // Refused before any connection is made, so the host need not exist.
    let url = "http://mcp.example.invalid/mcp";
    let client = broker(vec![(
        "remote",
        http_server(url, &[("Authorization", "Bearer s3cr3t")]),
    )]);
    let status = wait_failed(&client, "", "remote").await;
    assert!(
        status
            .error
            .contains("refusing to send headers over plain http"),
        "{}",
        status.error
    );
    assert!(!status.error.contains("s3cr3t"), "{}", status.error);
    // A call gets the same reason at once instead of a reconnect attempt.
    let reply = call(&client, "", "remote__anything", json!({}), 0).await;
    assert!(reply.is_error);
}

#[tokio::test]
async fn a_call_times_out_and_the_connection_survives() {
    let web = WebServer::start().await;
    let client = broker(vec![("web", http_server(&web.url, &[]))]);
    wait_connected(&client, "", "web").await;

    let slow = call(&client, "", "web__slow", json!({}), 200).await;
    assert!(slow.is_error);
    assert_eq!(slow.output, "MCP tool `slow` timed out after 0.2s");

    let echo = call(&client, "", "web__echo", json!({"text": "still here"}), 0).await;
    assert_eq!(echo.output, "echo: still here");
    let status = wait_connected(&client, "", "web").await;
    assert_eq!(status.state, ServerState::Connected as i32);
}

#[tokio::test]
async fn a_configured_call_timeout_applies() {
    let web = WebServer::start().await;
    let mut server = http_server(&web.url, &[]);
    server.call_timeout_secs = Some(1);
    let client = broker(vec![("web", server)]);
    wait_connected(&client, "", "web").await;
    let slow = call(&client, "", "web__slow", json!({}), 0).await;
    assert_eq!(slow.output, "MCP tool `slow` timed out after 1s");
}

#[tokio::test]
async fn tool_list_changes_are_picked_up() {
    let web = WebServer::start().await;
    let client = broker(vec![("web", http_server(&web.url, &[]))]);
    wait_connected(&client, "", "web").await;
    assert!(
        !tool_names(&client, "")
            .await
            .contains(&"web__extra".to_owned())
    );

    let grown = call(&client, "", "web__grow", json!({}), 0).await;
    assert_eq!(grown.output, "grown");
    // The notification arrives on its own; the count in the status follows it.
    let status = crate::support::wait_status(&client, "", "web", |s| s.tool_count == 7).await;
    assert_eq!(status.state, ServerState::Connected as i32);
    assert!(
        tool_names(&client, "")
            .await
            .contains(&"web__extra".to_owned())
    );
    let extra = call(&client, "", "web__extra", json!({}), 0).await;
    assert_eq!(extra.output, "extra ran");
}
