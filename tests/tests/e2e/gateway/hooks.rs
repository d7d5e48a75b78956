//! Hooks seen by an ACP client over `/acp`: a denied call fails with the
//! hook's reason, and a hook's `ask` becomes a permission request.

use openheim_e2e::{Reply, ToolCallSpec};
use serde_json::json;

use super::support::{Framing, Server};

/// An ACP client sees a call a hook denied fail with the hook's reason, the
/// text the model reads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acp_tool_call_updates_say_which_hook_denied_and_why() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("list_dir", json!({"path": "."})).with_id("l1"),
        ]),
        Reply::text("Could not list."),
    ];
    let hooks = "[[hooks.pre_tool_use]]\nname = \"no-listing\"\nmatcher = \"list_dir\"\ncommand = \"echo 'listing is off today' >&2; exit 2\"\n";
    let server = Server::start(script, hooks).await;
    let mut client = server.connect("/acp", Framing::Bare).await;
    let session = client.open_session(&server.install.workspace()).await;
    let turn = client
        .prompt(&session, "list the files", "allow_once")
        .await;
    assert_eq!(turn.stop_reason, "end_turn", "{turn:?}");
    assert_eq!(
        turn.statuses("l1").last().map(String::as_str),
        Some("failed")
    );
    let text: String = turn
        .updates
        .iter()
        .filter(|u| u["toolCallId"] == "l1" && u["status"] == "failed")
        .flat_map(|u| u["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["content"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Denied by hook \"no-listing\": listing is off today");
    let result = openheim_e2e::last_tool_result(&server.mock.request(1).body).unwrap();
    assert_eq!(result, text);
    client.close().await;
}

/// A hook answering `ask` makes the client confirm a call the policy would
/// have run without asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_can_ask_the_user_to_confirm() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("list_dir", json!({"path": "."})).with_id("l1"),
        ]),
        Reply::text("Not listed."),
    ];
    let hooks = "[[hooks.pre_tool_use]]\nname = \"confirm\"\nmatcher = \"list_dir\"\ncommand = \"cat > /dev/null; echo '{\\\"decision\\\": \\\"ask\\\", \\\"reason\\\": \\\"listings need a yes\\\"}'\"\n";
    let server = Server::start(script, hooks).await;
    let mut client = server.connect("/acp", Framing::Bare).await;
    let session = client.open_session(&server.install.workspace()).await;
    let turn = client
        .prompt(&session, "list the files", "reject_once")
        .await;
    assert_eq!(turn.stop_reason, "end_turn", "{turn:?}");
    assert_eq!(turn.permissions.len(), 1, "{turn:?}");
    assert_eq!(
        turn.statuses("l1").last().map(String::as_str),
        Some("failed")
    );
    let result = openheim_e2e::last_tool_result(&server.mock.request(1).body).unwrap();
    assert!(result.starts_with("Permission denied"), "{result}");
    client.close().await;
}
