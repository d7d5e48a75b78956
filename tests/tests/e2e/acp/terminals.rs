//! `execute_command` through a client that advertises `terminal`: the
//! command runs in the client's terminal (`terminal/*`), shown in its tool
//! call, and the model sees the output that terminal captured; a timeout
//! and a cancellation kill it there; `allow_shell = false` still refuses,
//! and `tools.sandbox = "enforce"` keeps commands in tool-executor.

use std::process::Stdio;

use agent_client_protocol::v1::schema::{
    CancelNotification, ClientCapabilities, PermissionOptionKind, SessionUpdate, StopReason,
    ToolCallContent, ToolCallStatus,
};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};
use serde_json::json;

use super::client_terminal::{MARKER, MARKER_VAR, TerminalCall};
use super::support::{
    AcpProcess, Recorder, calls_and_results, initialize_with, new_session, prompt_text, run_client,
    wait_for_pid, wait_until_gone,
};

fn shell(id: &str, args: serde_json::Value) -> Reply {
    Reply::tool_calls(vec![ToolCallSpec::new("execute_command", args).with_id(id)])
}

fn with_terminal() -> ClientCapabilities {
    ClientCapabilities::new().terminal(true)
}

/// The result the model was given for tool call `id` in request `i`.
fn tool_result(mock: &MockLlm, i: usize, id: &str) -> String {
    let request = mock.request(i);
    let message = request
        .messages()
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
        .unwrap_or_else(|| panic!("request {i} has no result for {id}"))
        .clone();
    message["content"].as_str().unwrap().to_owned()
}

/// Terminal ids the tool call's updates embedded, in order.
fn embedded_terminals(updates: &[SessionUpdate], id: &str) -> Vec<String> {
    updates
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::ToolCallUpdate(u) if &*u.tool_call_id.0 == id => {
                u.fields.content.clone()
            }
            _ => None,
        })
        .flatten()
        .filter_map(|c| match c {
            ToolCallContent::Terminal(t) => Some(t.terminal_id.0.to_string()),
            _ => None,
        })
        .collect()
}

fn position(calls: &[TerminalCall], wanted: &TerminalCall) -> usize {
    calls
        .iter()
        .position(|c| c == wanted)
        .unwrap_or_else(|| panic!("no {wanted:?} in {calls:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_terminal_runs_the_shell_and_the_model_sees_its_output() {
    let command = format!("echo \"${MARKER_VAR}\"; echo to-stderr >&2; exit 3");
    let script = vec![
        shell("c1", json!({"command": command})),
        Reply::text("It exited with 3."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize_with(&cx, with_terminal()).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "run it").await?.stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);
    assert_eq!(agent.exit_code().await, 0);

    // The model saw what the client's terminal captured, shaped like
    // tool-executor's result; the marker proves where it ran.
    assert_eq!(
        tool_result(&mock, 1, "c1"),
        format!("exit code: 3\noutput:\n{MARKER}\nto-stderr\n")
    );
    let calls = recorder.terminals.calls();
    let TerminalCall::Create(created) = &calls[0] else {
        panic!("the first terminal call is not terminal/create: {calls:?}");
    };
    assert_eq!(created.command, "sh");
    assert_eq!(created.args, ["-c", command.as_str()]);
    assert_eq!(created.cwd.as_deref(), Some(workspace.as_path()));
    assert_eq!(
        created.output_byte_limit,
        Some(openheim_config::DEFAULT_MAX_TOOL_RESULT_BYTES as u64)
    );
    let id = "term-0".to_owned();
    assert_eq!(
        calls[1..],
        [
            TerminalCall::WaitForExit(id.clone()),
            TerminalCall::Output(id.clone()),
            TerminalCall::Release(id.clone())
        ]
    );
    // The editor showed the terminal in the tool call, to the end.
    let updates = recorder.updates();
    let embedded = embedded_terminals(&updates, "c1");
    assert!(
        embedded.len() >= 2 && embedded.iter().all(|t| *t == id),
        "{embedded:?}"
    );
    let last = updates
        .iter()
        .rev()
        .find_map(|u| match u {
            SessionUpdate::ToolCallUpdate(u) if &*u.tool_call_id.0 == "c1" => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.fields.status, Some(ToolCallStatus::Completed));
    assert_eq!(
        last.fields.raw_output.as_ref().unwrap()["exit_code"],
        json!(3)
    );
    // Permission gating is unchanged: the command was asked about first.
    assert_eq!(recorder.permissions.lock().unwrap().len(), 1);
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_outlives_its_timeout_is_killed_in_the_client_terminal() {
    let script = vec![
        shell(
            "slow",
            json!({"command": "echo started; sleep 30", "timeout_secs": 1}),
        ),
        Reply::text("It timed out."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize_with(&cx, with_terminal()).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "run it").await?.stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);
    assert_eq!(
        tool_result(&mock, 1, "slow"),
        "command timed out after 1 s; it was killed with its child processes\noutput:\nstarted\n"
    );
    let calls = recorder.terminals.calls();
    let id = "term-0".to_owned();
    let kill = position(&calls, &TerminalCall::Kill(id.clone()));
    let output = position(&calls, &TerminalCall::Output(id.clone()));
    let release = position(&calls, &TerminalCall::Release(id));
    assert!(kill < output && output < release, "{calls:?}");
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_command_kills_and_releases_its_client_terminal() {
    let script = vec![shell(
        "slow",
        json!({"command": "echo $$ > term.pid; sleep 30"}),
    )];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let pid_file = workspace.join("term.pid");
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let (session, stop, pid) = run_client(&mut agent, &recorder, async |cx| {
        initialize_with(&cx, with_terminal()).await?;
        let session = new_session(&cx, &workspace).await?;
        let running = prompt_text(&cx, &session, "run something slow");
        let interrupt = async {
            recorder.terminals.created.notified().await;
            let pid = wait_for_pid(&pid_file).await;
            cx.send_notification(CancelNotification::new(session.clone()))?;
            Ok::<_, agent_client_protocol::Error>(pid)
        };
        let (response, pid) = tokio::join!(running, interrupt);
        Ok((session.clone(), response?.stop_reason, pid?))
    })
    .await;
    assert_eq!(stop, StopReason::Cancelled);
    // Killed, then released, before the prompt was answered.
    let calls = recorder.terminals.calls();
    let id = "term-0".to_owned();
    let kill = position(&calls, &TerminalCall::Kill(id.clone()));
    let release = position(&calls, &TerminalCall::Release(id));
    assert!(kill < release, "{calls:?}");
    wait_until_gone(&pid).await;
    assert_eq!(agent.exit_code().await, 0);
    let (_, results) = calls_and_results(&install.history_file(&session));
    assert_eq!(
        results,
        [("slow".to_owned(), "Cancelled by user.".to_owned())]
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_allow_shell_a_terminal_client_gets_no_shell() {
    let script = vec![
        shell("c1", json!({"command": "echo hi"})),
        Reply::text("No shell here."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "allow_shell = false");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize_with(&cx, with_terminal()).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "run it").await?.stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);
    assert!(!mock.tool_names(0).iter().any(|t| t == "execute_command"));
    let result = tool_result(&mock, 1, "c1");
    assert!(result.contains("is not available"), "{result}");
    assert!(recorder.terminals.calls().is_empty());
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_confinement_keeps_commands_in_tool_executor() {
    let command = format!("echo \"marker=${MARKER_VAR}\"");
    let script = vec![
        shell("c1", json!({"command": command})),
        Reply::text("Ran it."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "[tools]\nsandbox = \"enforce\"\n");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize_with(&cx, with_terminal()).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "run it").await?.stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);
    assert!(recorder.terminals.calls().is_empty());
    // tool-executor ran it (confined) or refused it for want of confinement;
    // either way not in the client, whose marker it never saw.
    let result = tool_result(&mock, 1, "c1");
    assert!(!result.contains(MARKER), "{result}");
    mock.assert_no_violations();
}
