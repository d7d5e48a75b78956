//! Turn semantics through the agent-loop gRPC client, as every front end
//! drives it: cancellation, concurrent calls, the iteration cap, permissions.

use std::time::Duration;

use futures::StreamExt;
use openheim::Runtime;
use openheim_e2e::procs::{marked_sleep, wait_for_process, wait_until_none};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};
use openheim_proto::agent_loop::v1::{
    ApprovalMode, CancelTurn, CreateSessionRequest, Decision, LoadSessionRequest,
    PermissionDecision, StartTurn, TurnEvent, TurnInput, turn_event::Event, turn_input::Input,
};
use openheim_proto::common::v1::{ContentBlock, StopReason, content_block::Block};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn runtime(install: &Install) -> Runtime {
    let mut config = openheim_config::load(&openheim_config::LoadOptions {
        file: Some(install.home().join("config.toml")),
        file_required: true,
        ..Default::default()
    })
    .unwrap();
    config.work_dir = Some(install.workspace());
    config.data_dir = Some(install.home());
    Runtime::start(&config).unwrap()
}

async fn new_session(runtime: &Runtime, approval: ApprovalMode) -> String {
    let request = CreateSessionRequest {
        approval_mode: approval as i32,
        ..Default::default()
    };
    runtime
        .agent_loop()
        .create_session(request)
        .await
        .unwrap()
        .into_inner()
        .id
}

struct TurnHandle {
    inputs: mpsc::Sender<TurnInput>,
    events: tonic::Streaming<TurnEvent>,
}

async fn start(runtime: &Runtime, session_id: &str, text: &str) -> TurnHandle {
    let (inputs, rx) = mpsc::channel(8);
    let start = StartTurn {
        session_id: session_id.to_owned(),
        prompt: vec![ContentBlock {
            block: Some(Block::Text(text.to_owned())),
        }],
        client_capabilities: None,
        ..StartTurn::default()
    };
    inputs
        .send(TurnInput {
            input: Some(Input::Start(start)),
        })
        .await
        .unwrap();
    let events = runtime
        .agent_loop()
        .turn(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    TurnHandle { inputs, events }
}

impl TurnHandle {
    async fn next(&mut self) -> Event {
        let event = tokio::time::timeout(Duration::from_secs(30), self.events.next())
            .await
            .expect("no turn event within 30 s")
            .expect("turn stream ended early")
            .unwrap();
        event.event.unwrap()
    }

    /// Events until the turn ends; returns them and the stop reason.
    async fn finish(&mut self) -> (Vec<Event>, StopReason) {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Event::Ended(ended) => return (seen, ended.stop_reason()),
                Event::Error(e) => panic!("turn failed: {}", e.message),
                other => seen.push(other),
            }
        }
    }

    async fn send(&self, input: Input) {
        self.inputs
            .send(TurnInput { input: Some(input) })
            .await
            .unwrap();
    }
}

async fn stored_tool_results(runtime: &Runtime, session_id: &str) -> Vec<(String, String)> {
    let request = LoadSessionRequest {
        caller: None,
        session_id: session_id.to_owned(),
        mcp_servers: vec![],
    };
    let loaded = runtime
        .agent_loop()
        .load_session(request)
        .await
        .unwrap()
        .into_inner();
    loaded
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|b| match &b.block {
            Some(Block::ToolResult(r)) => Some((r.tool_call_id.clone(), r.content.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_tool_kills_it_and_answers_every_call() {
    let (command, marker) = marked_sleep(30);
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("execute_command", json!({ "command": command })).with_id("slow"),
            ToolCallSpec::new("read_file", json!({"path": "missing.txt"})).with_id("quick"),
        ]),
        Reply::text("after cancel"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let runtime = runtime(&install);
    let session = new_session(&runtime, ApprovalMode::Auto).await;
    let mut turn = start(&runtime, &session, "run something slow").await;
    // Wait until the shell is really running, then cancel.
    wait_for_process(&marker, Duration::from_secs(20)).await;
    turn.send(Input::Cancel(CancelTurn {})).await;
    let (_, stop) = turn.finish().await;
    assert_eq!(stop, StopReason::Cancelled);

    wait_until_none(&marker, Duration::from_secs(10)).await;

    // Every issued call has exactly one result, in call order.
    let results = stored_tool_results(&runtime, &session).await;
    let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["slow", "quick"]);
    assert_eq!(results[0].1, "Cancelled by user.");
    // The session stays usable and the history valid for the provider.
    let mut again = start(&runtime, &session, "still there?").await;
    let (_, stop) = again.finish().await;
    assert_eq!(stop, StopReason::EndTurn);
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_results_keep_call_order() {
    // The first call finishes last; results must still be in call order.
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new(
                "execute_command",
                json!({"command": "sleep 0.3; echo first"}),
            )
            .with_id("a"),
            ToolCallSpec::new("read_file", json!({"path": "f.txt"})).with_id("b"),
        ]),
        Reply::text("done"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    std::fs::write(install.workspace().join("f.txt"), "second").unwrap();
    let runtime = runtime(&install);
    let session = new_session(&runtime, ApprovalMode::Auto).await;
    let mut turn = start(&runtime, &session, "two calls").await;
    let (events, stop) = turn.finish().await;
    assert_eq!(stop, StopReason::EndTurn);
    let finished: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallUpdate(u) if u.status > 2 => Some(u.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        ["b", "a"],
        "the read should finish while the shell sleeps"
    );
    let tool_messages: Vec<String> = mock
        .request(1)
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["tool_call_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tool_messages, ["a", "b"]);
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iteration_cap_stops_a_looping_model() {
    let looping = || {
        Reply::tool_calls(vec![ToolCallSpec::new(
            "read_file",
            json!({"path": "f.txt"}),
        )])
    };
    let mock = MockLlm::start((0..3).map(|_| looping()).collect()).await;
    let install = Install::new(&mock, "max_iterations = 3");
    std::fs::write(install.workspace().join("f.txt"), "x").unwrap();
    let runtime = runtime(&install);
    let session = new_session(&runtime, ApprovalMode::Auto).await;
    let (_, stop) = start(&runtime, &session, "loop").await.finish().await;
    assert_eq!(stop, StopReason::MaxTurnRequests);
    assert_eq!(mock.request_count(), 3);
    assert_eq!(stored_tool_results(&runtime, &session).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_answers_gate_and_are_remembered() {
    let write = |id: &str| {
        Reply::tool_calls(vec![
            ToolCallSpec::new("write_file", json!({"path": "a.txt", "content": "1"})).with_id(id),
        ])
    };
    let script = vec![
        write("w1"),
        Reply::text("rejected"),
        write("w2"),
        write("w3"),
        Reply::text("ok"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let runtime = runtime(&install);
    let session = new_session(&runtime, ApprovalMode::Ask).await;

    // First turn: reject once. Nothing is written.
    let mut turn = start(&runtime, &session, "write").await;
    let request = loop {
        if let Event::PermissionRequest(r) = turn.next().await {
            break r;
        }
    };
    assert_eq!(request.tool_call_id, "w1");
    let answer = PermissionDecision {
        request_id: request.request_id,
        decision: Decision::RejectOnce as i32,
    };
    turn.send(Input::Permission(answer)).await;
    assert_eq!(turn.finish().await.1, StopReason::EndTurn);
    assert!(!install.workspace().join("a.txt").exists());

    // Second turn: allow always; the next write of the same tool does not ask.
    let mut turn = start(&runtime, &session, "write again").await;
    let request = loop {
        if let Event::PermissionRequest(r) = turn.next().await {
            break r;
        }
    };
    assert_eq!(request.tool_call_id, "w2");
    let answer = PermissionDecision {
        request_id: request.request_id,
        decision: Decision::AllowAlways as i32,
    };
    turn.send(Input::Permission(answer)).await;
    let (events, stop) = turn.finish().await;
    assert_eq!(stop, StopReason::EndTurn);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::PermissionRequest(_))),
        "asked twice"
    );
    assert_eq!(
        std::fs::read_to_string(install.workspace().join("a.txt")).unwrap(),
        "1"
    );
    let results = stored_tool_results(&runtime, &session).await;
    assert_eq!(
        results[0].1,
        "Permission denied: this tool call was not approved."
    );
    mock.assert_no_violations();
}
