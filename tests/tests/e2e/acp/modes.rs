//! Session modes (`modes` in `session/new` and `session/load`,
//! `session/set_mode`, `current_mode_update`) and what they change for the
//! model: read-only offers only read-only tools, auto asks nothing; and MCP
//! server statuses in `initialize` / `session/new` `_meta`.

use std::process::Stdio;

use agent_client_protocol::ErrorCode;
use agent_client_protocol::v1::schema::{
    ClientCapabilities, LoadSessionRequest, McpServer, McpServerStdio, NewSessionRequest,
    SessionModeState, SessionUpdate, SetSessionModeRequest, StopReason,
};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec, bin_path};
use serde_json::{Value, json};

use super::support::{AcpProcess, Recorder, initialize, initialize_with, prompt_text, run_client};

fn mode_ids(state: &SessionModeState) -> (String, Vec<String>) {
    let available = state
        .available_modes
        .iter()
        .map(|m| m.id.0.to_string())
        .collect();
    (state.current_mode_id.0.to_string(), available)
}

fn mode_updates(updates: &[SessionUpdate]) -> Vec<String> {
    updates
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::CurrentModeUpdate(m) => Some(m.current_mode_id.0.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_offers_read_tools_and_auto_mode_never_asks() {
    let script = vec![
        Reply::text("Here is a plan."),
        Reply::tool_calls(vec![
            ToolCallSpec::new("write_file", json!({"path": "a.txt", "content": "x"})).with_id("w1"),
        ]),
        Reply::text("Written."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    // Any permission question would be cancelled, i.e. rejected.
    let recorder = Recorder::answering(None);
    let (session, modes, switched) = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let created = cx
            .send_request(NewSessionRequest::new(workspace.clone()))
            .block_task()
            .await?;
        let session = created.session_id.0.to_string();
        let modes = mode_ids(&created.modes.unwrap());
        let set = |mode: &str| SetSessionModeRequest::new(session.clone(), mode.to_owned());
        cx.send_request(set("read-only")).block_task().await?;
        prompt_text(&cx, &session, "plan it").await?;
        cx.send_request(set("auto")).block_task().await?;
        let stop = prompt_text(&cx, &session, "write it").await?.stop_reason;
        assert_eq!(stop, StopReason::EndTurn);
        let error = cx.send_request(set("yolo")).block_task().await.unwrap_err();
        assert_eq!(error.code, ErrorCode::INVALID_PARAMS);
        Ok((session, modes, mode_updates(&recorder.updates())))
    })
    .await;
    assert_eq!(agent.exit_code().await, 0);
    assert_eq!(
        modes,
        (
            "ask".to_owned(),
            vec!["ask".into(), "read-only".into(), "auto".into()]
        )
    );
    assert_eq!(switched, ["read-only", "auto"]);
    let planning = mock.tool_names(0);
    assert!(planning.iter().any(|t| t == "read_file"), "{planning:?}");
    for mutating in ["write_file", "edit_file", "execute_command"] {
        assert!(!planning.iter().any(|t| t == mutating), "{planning:?}");
    }
    assert!(mock.tool_names(1).iter().any(|t| t == "write_file"));
    assert!(recorder.permissions.lock().unwrap().is_empty());
    assert_eq!(
        std::fs::read_to_string(workspace.join("a.txt")).unwrap(),
        "x"
    );

    // The mode is stored with the session: a new process loads it.
    let mut second = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    let loaded = run_client(&mut second, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let load = LoadSessionRequest::new(session.clone(), workspace.clone());
        let loaded = cx.send_request(load).block_task().await?;
        Ok(mode_ids(&loaded.modes.unwrap()).0)
    })
    .await;
    assert_eq!(loaded, "auto");
    mock.assert_no_violations();
}

fn test_server_section(name: &str) -> String {
    format!(
        "[mcp_servers.{name}]\ncommand = \"{}\"\nargs = [\"stdio\"]\n",
        bin_path("test-mcp-server").display()
    )
}

/// The `_meta.openheim.mcpServers` entries of a response.
fn mcp_servers(meta: Option<&serde_json::Map<String, Value>>) -> Vec<Value> {
    let meta = meta.expect("no _meta");
    meta["openheim"]["mcpServers"]
        .as_array()
        .unwrap_or_else(|| panic!("no mcpServers in {meta:?}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_and_new_session_report_mcp_server_statuses() {
    let mock = MockLlm::start(vec![]).await;
    let install = Install::new(&mock, &test_server_section("testserver"));
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    let (configured, own) = run_client(&mut agent, &recorder, async |cx| {
        let init = initialize_with(&cx, ClientCapabilities::new()).await?;
        let server = McpServer::Stdio(
            McpServerStdio::new("mine", bin_path("test-mcp-server")).args(vec!["stdio".into()]),
        );
        let missing = McpServer::Stdio(McpServerStdio::new(
            "ghost",
            "/nonexistent/openheim-no-such-server",
        ));
        let created = cx
            .send_request(
                NewSessionRequest::new(workspace.clone()).mcp_servers(vec![server, missing]),
            )
            .block_task()
            .await?;
        Ok((
            mcp_servers(init.meta.as_ref()),
            mcp_servers(created.meta.as_ref()),
        ))
    })
    .await;
    assert_eq!(configured.len(), 1, "{configured:?}");
    assert_eq!(configured[0]["name"], "testserver");
    // Servers connect in the background: it may not be ready yet.
    let state = configured[0]["state"].as_str().unwrap();
    assert!(
        ["connecting", "connected"].contains(&state),
        "{configured:?}"
    );
    assert!(configured[0]["toolCount"].is_u64());
    // The session lists its own server, not the configured one.
    let names: Vec<&Value> = own.iter().map(|s| &s["name"]).collect();
    assert_eq!(names, ["mine", "ghost"], "{own:?}");
    // A server that cannot start says so, with the reason, in words.
    assert_eq!(own[1]["state"], "failed", "{own:?}");
    let error = own[1]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("/nonexistent/openheim-no-such-server") && !error.contains("rmcp"),
        "{own:?}"
    );
    assert_eq!(agent.exit_code().await, 0);
}
