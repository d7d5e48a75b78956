//! Child-process servers that misbehave: never answering `initialize`,
//! failing to start, dying with a message; and the broker's cleanup of its
//! children. (A well-behaved stdio server is exercised end to end in
//! `tests/tests/e2e/mcp.rs`.)

use std::time::Duration;

use openheim_mcp_broker::McpBrokerConfig;
use serde_json::json;

use crate::support::{
    WebServer, broker, broker_with, call, config, http_server, is_alive, stdio_server, tool_names,
    wait_connected, wait_dead, wait_failed, wait_for_pid_file,
};

#[tokio::test]
async fn a_server_that_never_initializes_is_failed_with_a_timeout() {
    let web = WebServer::start().await;
    let mut config = config(vec![
        ("sleepy", stdio_server("sleep", &["3600"])),
        ("web", http_server(&web.url, &[])),
    ]);
    config.initialize_timeout = Duration::from_millis(300);
    let client = broker_with(config);

    let status = wait_failed(&client, "", "sleepy").await;
    assert!(
        status.error.contains("timed out during initialize"),
        "{}",
        status.error
    );
    wait_connected(&client, "", "web").await;
    let names = tool_names(&client, "").await;
    assert!(names.contains(&"web__echo".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("sleepy")), "{names:?}");
}

#[tokio::test]
async fn a_slow_server_never_holds_up_the_tool_listing() {
    let web = WebServer::start().await;
    let mut config = config(vec![
        ("sleepy", stdio_server("sleep", &["3600"])),
        ("web", http_server(&web.url, &[])),
    ]);
    config.initialize_timeout = Duration::from_secs(3600);
    config.startup_grace = Duration::from_millis(100);
    let client = broker_with(config);
    wait_connected(&client, "", "web").await;
    // Bounded by the startup grace, not by the hour-long initialize limit.
    let request = openheim_proto::mcp_broker::v1::ListToolsRequest {
        session_id: String::new(),
    };
    let listing = tokio::time::timeout(Duration::from_secs(10), client.clone().list_tools(request))
        .await
        .expect("ListTools waited for the slow server")
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listing.tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"web__echo"), "{names:?}");
    // The listing says who is missing, so a turn can add its tools later.
    assert_eq!(listing.pending_servers, ["sleepy"]);
    let sleepy = crate::support::statuses(&client, "")
        .await
        .into_iter()
        .find(|s| s.name == "sleepy")
        .unwrap();
    assert_eq!(
        sleepy.state,
        openheim_proto::mcp_broker::v1::ServerState::Connecting as i32
    );
}

#[tokio::test]
async fn a_missing_command_is_reported() {
    let client = broker(vec![(
        "ghost",
        stdio_server("/nonexistent/openheim-no-such-server", &[]),
    )]);
    let status = wait_failed(&client, "", "ghost").await;
    assert!(
        status
            .error
            .starts_with("could not start `/nonexistent/openheim-no-such-server`"),
        "{}",
        status.error
    );
    // A call to a failed server asks for a reconnect, which fails the same way.
    let reply = call(&client, "", "ghost__x", json!({}), 0).await;
    assert!(reply.is_error);
}

#[tokio::test]
async fn a_dying_server_s_stderr_explains_the_failure() {
    let client = broker(vec![(
        "broken",
        stdio_server("sh", &["-c", "echo 'config file is broken' >&2; exit 3"]),
    )]);
    let status = wait_failed(&client, "", "broken").await;
    assert!(
        status.error.starts_with("initialize failed"),
        "{}",
        status.error
    );
    assert!(
        status.error.contains("config file is broken"),
        "{}",
        status.error
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn stopping_the_broker_kills_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 3600", pid_file.display());
    let config = McpBrokerConfig {
        initialize_timeout: Duration::from_secs(3600),
        ..config(vec![("sleepy", stdio_server("sh", &["-c", &script]))])
    };
    let client = broker_with(config);
    // Listing servers starts nothing new; it makes sure the broker is up.
    crate::support::statuses(&client, "").await;
    let pid = wait_for_pid_file(&pid_file).await;
    assert!(is_alive(pid));
    drop(client);
    wait_dead(pid).await;
}
