//! Shell process lifetime: timeouts and cancellation kill the whole process
//! group, and nothing a command starts outlives it.

use std::time::{Duration, Instant};

use openheim_proto::tool_executor::v1::ToolErrorKind;
use serde_json::json;

use crate::support::{
    Client, Harness, eventually, execute_request, harness, kind, process_gone, raw, read_pid,
};

/// Starts a shell that records its pid and its background child's pid.
const RECORDING: &str = "echo $$ > sh.pid; sleep 30 & echo $! > bg.pid; wait";

#[tokio::test]
async fn a_timeout_kills_the_command_and_its_children() {
    let h = harness();
    let started = Instant::now();
    let command = "echo $$ > sh.pid; sleep 30 & echo $! > bg.pid; echo started; sleep 5";
    let resp = h
        .call(
            "execute_command",
            json!({"command": command, "timeout_secs": 1}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(resp.is_error);
    assert_eq!(kind(&resp), ToolErrorKind::Timeout);
    assert!(
        resp.output.starts_with("command timed out after 1 s"),
        "{}",
        resp.output
    );
    assert!(
        resp.output.contains("stdout:\nstarted"),
        "partial output is kept: {}",
        resp.output
    );
    assert_eq!(raw(&resp)["timed_out"], true);
    let shell = read_pid(&h.root.join("sh.pid")).await;
    let child = read_pid(&h.root.join("bg.pid")).await;
    assert!(
        eventually(|| process_gone(shell)).await,
        "shell {shell} survived"
    );
    assert!(
        eventually(|| process_gone(child)).await,
        "background child {child} survived"
    );
}

#[tokio::test]
async fn the_request_timeout_overrides_the_default() {
    let h = harness();
    let mut request = execute_request(
        h.workspace(true),
        "execute_command",
        &json!({"command": "sleep 5"}),
    );
    request.timeout_secs = 1;
    let started = Instant::now();
    let resp = h
        .client
        .clone()
        .execute(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kind(&resp), ToolErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn background_processes_do_not_outlive_the_command() {
    let h = harness();
    let started = Instant::now();
    // The background sleep holds stdout open: without killing the group the
    // call would wait for it.
    let resp = h
        .call(
            "execute_command",
            json!({"command": "sleep 30 & echo $! > bg.pid; echo done"}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(resp.output, "exit code: 0\nstdout:\ndone\n");
    let child = read_pid(&h.root.join("bg.pid")).await;
    assert!(
        eventually(|| process_gone(child)).await,
        "background child {child} survived"
    );
}

/// Drops an `Execute` call running [`RECORDING`] once it started, and
/// checks that the shell and its child are killed.
pub async fn dropping_the_call_kills_the_group(h: &Harness, client: Client) {
    let request = execute_request(
        h.workspace(true),
        "execute_command",
        &json!({"command": RECORDING}),
    );
    let call = tokio::spawn(async move { client.clone().execute(request).await });
    let shell = read_pid(&h.root.join("sh.pid")).await;
    let child = read_pid(&h.root.join("bg.pid")).await;
    assert!(!process_gone(shell) && !process_gone(child));
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert!(
        eventually(|| process_gone(shell)).await,
        "shell {shell} survived"
    );
    assert!(
        eventually(|| process_gone(child)).await,
        "child {child} survived"
    );
}

#[tokio::test]
async fn dropping_an_in_process_call_kills_the_process_group() {
    let h = harness();
    dropping_the_call_kills_the_group(&h, h.client.clone()).await;
}
