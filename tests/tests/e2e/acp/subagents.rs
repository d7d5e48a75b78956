//! A sub-agent under an ACP client: the child's permission question
//! reaches the client through the parent's turn, labelled with the child
//! and attached to the delegation's tool call, and its answer is honoured;
//! cancelling the parent then stops the child's running shell command, and
//! every call of both sessions gets exactly one result.

use std::process::Stdio;
use std::time::Duration;

use agent_client_protocol::v1::schema::{
    CancelNotification, PermissionOptionKind, SessionUpdate, StopReason, ToolCallContent,
};
use openheim_e2e::procs::{marked_sleep, wait_for_process, wait_until_none};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};
use serde_json::json;

use super::support::{
    AcpProcess, Recorder, calls_and_results, initialize, new_session, prompt_text, run_client,
};

/// Text of every update of tool call `id` that carries content.
fn progress_of(updates: &[SessionUpdate], id: &str) -> Vec<String> {
    updates
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::ToolCallUpdate(u) if &*u.tool_call_id.0 == id => {
                u.fields.content.clone()
            }
            _ => None,
        })
        .map(|content| {
            content
                .iter()
                .filter_map(|c| match c {
                    ToolCallContent::Content(c) => match &c.content {
                        agent_client_protocol::v1::schema::ContentBlock::Text(t) => {
                            Some(t.text.clone())
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_question_reaches_the_client_and_cancelling_the_parent_stops_its_command() {
    let (command, marker) = marked_sleep(30);
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("delegate_task", json!({"task": "run the slow job"})).with_id("d1"),
        ]),
        Reply::tool_calls(vec![
            ToolCallSpec::new("list_dir", json!({"path": "."})).with_id("c0"),
        ]),
        Reply::tool_calls(vec![
            ToolCallSpec::new("execute_command", json!({ "command": command })).with_id("c1"),
        ]),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let (session, stop) = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let session = new_session(&cx, &workspace).await?;
        let running = prompt_text(&cx, &session, "delegate the slow job");
        let interrupt = async {
            // Running only because the client allowed it.
            wait_for_process(&marker, Duration::from_secs(20)).await;
            cx.send_notification(CancelNotification::new(session.clone()))?;
            Ok::<_, agent_client_protocol::Error>(())
        };
        let (response, interrupted) = tokio::join!(running, interrupt);
        interrupted?;
        Ok((session.clone(), response?.stop_reason))
    })
    .await;
    assert_eq!(stop, StopReason::Cancelled);
    wait_until_none(&marker, Duration::from_secs(10)).await;
    assert_eq!(agent.exit_code().await, 0);

    // The one question came from the child, labelled and attached to the
    // delegation's call.
    let permissions = recorder.permissions.lock().unwrap().clone();
    assert_eq!(permissions.len(), 1, "{permissions:?}");
    let asked = &permissions[0].tool_call;
    assert_eq!(&*asked.tool_call_id.0, "d1");
    let title = asked.fields.title.clone().unwrap_or_default();
    assert_eq!(title, format!("[agent] {command}"));

    // The delegation showed the child's tool calls as they happened.
    let progress = progress_of(&recorder.updates(), "d1");
    assert!(progress.iter().any(|p| p == "✓ list_dir ."), "{progress:?}");

    // Both sessions: every call answered once, cancelled ones as such.
    let parent_log = install.history_file(&session);
    let (calls, results) = calls_and_results(&parent_log);
    assert_eq!(calls, ["d1"]);
    assert_eq!(
        results,
        [("d1".to_owned(), "Cancelled by user.".to_owned())]
    );
    let child = openheim_e2e::install::history(&parent_log)
        .into_iter()
        .find(|r| r["type"] == "child")
        .expect("child linked");
    let child_log = install.history_file(child["session_id"].as_str().unwrap());
    let (calls, results) = calls_and_results(&child_log);
    assert_eq!(calls, ["c0", "c1"]);
    let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["c0", "c1"]);
    assert_eq!(results[1].1, "Cancelled by user.");
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_question_of_a_child_is_a_denied_call_in_the_child() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("delegate_task", json!({"task": "write the file"})).with_id("d1"),
        ]),
        Reply::tool_calls(vec![
            ToolCallSpec::new("write_file", json!({"path": "x.txt", "content": "no"}))
                .with_id("w1"),
        ]),
        Reply::dynamic(|body| {
            Reply::text(format!(
                "Could not: {}",
                openheim_e2e::last_tool_result(body).unwrap_or_default()
            ))
        }),
        Reply::dynamic(|body| {
            Reply::text(format!(
                "The child said: {}",
                openheim_e2e::last_tool_result(body).unwrap_or_default()
            ))
        }),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::RejectOnce));
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "delegate a write")
            .await?
            .stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);
    let permissions = recorder.permissions.lock().unwrap().clone();
    assert_eq!(permissions.len(), 1);
    assert_eq!(
        permissions[0].tool_call.fields.title.as_deref(),
        Some("[agent] write_file x.txt")
    );
    assert!(!workspace.join("x.txt").exists());
    let told = openheim_e2e::last_tool_result(&mock.request(3).body).unwrap();
    assert!(told.starts_with("Could not: Permission denied: "), "{told}");
    mock.assert_no_violations();
}
