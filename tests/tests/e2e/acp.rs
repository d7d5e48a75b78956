//! `openheim acp` driven by an ACP client (the `agent-client-protocol`
//! crate's client side) over its stdin/stdout, with the mock LLM scripting
//! the model: streamed updates, permissions, cancellation, session load and
//! client-side file operations. Commands in the client's terminal:
//! `acp/terminals.rs`; session modes and MCP statuses: `acp/modes.rs`.
//! Malformed input: see `acp/fuzz.rs`.

mod bridge;
mod client_terminal;
mod commands;
mod fuzz;
mod images;
pub(crate) mod lifecycle;
mod limits;
mod mcp_prompts;
mod modes;
mod reasoning;
mod subagents;
pub(crate) mod support;
mod terminals;

use std::process::Stdio;
use std::time::Duration;

use agent_client_protocol::ErrorCode;
use agent_client_protocol::v1::schema::{
    CancelNotification, ListSessionsRequest, LoadSessionRequest, Meta, NewSessionRequest,
    PermissionOptionKind, SessionConfigKind, SessionConfigOption, SessionUpdate,
    SetSessionConfigOptionRequest, StopReason, ToolCallContent, ToolCallStatus, ToolKind,
};
use openheim_e2e::procs::{marked_sleep, wait_for_process, wait_until_none};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};
use serde_json::{Value, json};

use support::{
    AcpProcess, Recorder, calls_and_results, chunks, initialize, new_session, prompt_text,
    run_client,
};

/// Statuses reported for tool call `id`, in order.
fn statuses(updates: &[SessionUpdate], id: &str) -> Vec<ToolCallStatus> {
    updates
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::ToolCall(c) if &*c.tool_call_id.0 == id => Some(c.status),
            SessionUpdate::ToolCallUpdate(u) if &*u.tool_call_id.0 == id => u.fields.status,
            _ => None,
        })
        .collect()
}

/// The content of the last update of tool call `id` that has some.
fn final_content(updates: &[SessionUpdate], id: &str) -> Vec<ToolCallContent> {
    updates
        .iter()
        .rev()
        .find_map(|u| match u {
            SessionUpdate::ToolCallUpdate(u) if &*u.tool_call_id.0 == id => {
                u.fields.content.clone()
            }
            _ => None,
        })
        .unwrap_or_default()
}

fn text_of(content: &[ToolCallContent]) -> String {
    content
        .iter()
        .filter_map(|c| match c {
            ToolCallContent::Content(c) => match &c.content {
                agent_client_protocol::v1::schema::ContentBlock::Text(t) => Some(t.text.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn is_agent_chunk(u: &SessionUpdate) -> bool {
    matches!(u, SessionUpdate::AgentMessageChunk(_))
}

fn is_user_chunk(u: &SessionUpdate) -> bool {
    matches!(u, SessionUpdate::UserMessageChunk(_))
}

fn write_call(id: &str, path: &str, content: &str) -> Reply {
    let args = json!({"path": path, "content": content});
    Reply::tool_calls(vec![ToolCallSpec::new("write_file", args).with_id(id)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_write_streams_updates_with_a_diff_and_writes_the_file() {
    let script = vec![
        write_call("w1", "notes/a.txt", "hello").with_text("Writing it. "),
        Reply::text("Done."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "write a note")
            .await?
            .stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);
    assert_eq!(agent.exit_code().await, 0);

    let updates = recorder.updates();
    assert_eq!(chunks(&updates, is_agent_chunk), "Writing it. Done.");
    let call = updates
        .iter()
        .find_map(|u| match u {
            SessionUpdate::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .expect("no tool_call update");
    assert_eq!(&*call.tool_call_id.0, "w1");
    assert_eq!(call.kind, ToolKind::Edit);
    assert_eq!(call.title, "write_file notes/a.txt");
    assert_eq!(call.locations[0].path, workspace.join("notes/a.txt"));
    assert_eq!(
        call.raw_input,
        Some(json!({"path": "notes/a.txt", "content": "hello"}))
    );
    assert_eq!(
        statuses(&updates, "w1"),
        [
            ToolCallStatus::Pending,
            ToolCallStatus::InProgress,
            ToolCallStatus::Completed
        ]
    );
    let content = final_content(&updates, "w1");
    let diff = content
        .iter()
        .find_map(|c| match c {
            ToolCallContent::Diff(d) => Some(d.clone()),
            _ => None,
        })
        .expect("no diff in the result");
    assert!(diff.path.ends_with("notes/a.txt"), "{:?}", diff.path);
    assert_eq!((diff.old_text, diff.new_text.as_str()), (None, "hello"));
    assert!(text_of(&content).starts_with("Wrote 5 bytes"));

    let permissions = recorder.permissions.lock().unwrap().clone();
    assert_eq!(permissions.len(), 1);
    assert_eq!(&*permissions[0].tool_call.tool_call_id.0, "w1");
    let kinds: Vec<PermissionOptionKind> = permissions[0].options.iter().map(|o| o.kind).collect();
    assert_eq!(
        kinds,
        [
            PermissionOptionKind::AllowOnce,
            PermissionOptionKind::AllowAlways,
            PermissionOptionKind::RejectOnce,
            PermissionOptionKind::RejectAlways
        ]
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes/a.txt")).unwrap(),
        "hello"
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_write_fails_and_leaves_no_file() {
    let script = vec![
        write_call("w1", "a.txt", "nope"),
        Reply::text("Understood."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::RejectOnce));
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "write").await?.stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);
    let updates = recorder.updates();
    assert_eq!(
        statuses(&updates, "w1"),
        [ToolCallStatus::Pending, ToolCallStatus::Failed]
    );
    let result = text_of(&final_content(&updates, "w1"));
    assert!(result.starts_with("Permission denied: "), "{result}");
    assert!(!workspace.join("a.txt").exists());
    // The model is told, too.
    let told = mock.request(1);
    let tool_message = told
        .messages()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert!(
        tool_message["content"]
            .as_str()
            .unwrap()
            .starts_with("Permission denied: ")
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_turn_kills_the_shell_and_answers_every_call() {
    let (command, marker) = marked_sleep(30);
    let script = vec![Reply::tool_calls(vec![
        ToolCallSpec::new("execute_command", json!({ "command": command })).with_id("slow"),
        ToolCallSpec::new("read_file", json!({"path": "missing.txt"})).with_id("quick"),
    ])];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let (session, stop) = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let session = new_session(&cx, &workspace).await?;
        let running = prompt_text(&cx, &session, "run something slow");
        let interrupt = async {
            wait_for_process(&marker, Duration::from_secs(20)).await;
            // A second prompt while one runs is refused, clearly.
            let error = prompt_text(&cx, &session, "again").await.unwrap_err();
            assert_eq!(error.code, ErrorCode::INVALID_REQUEST);
            assert!(error.message.contains("busy"), "{}", error.message);
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

    let (calls, results) = calls_and_results(&install.history_file(&session));
    assert_eq!(calls, ["slow", "quick"]);
    let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["slow", "quick"]);
    assert_eq!(results[0].1, "Cancelled by user.");
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_in_a_new_process_replays_the_conversation_and_continues_it() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("read_file", json!({"path": "f.txt"})).with_id("r1"),
        ])
        .with_text("Let me look. "),
        Reply::text("It says hi."),
        Reply::text("Second answer."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    std::fs::write(workspace.join("f.txt"), "hi").unwrap();

    let mut first = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    let session = run_client(&mut first, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let session = new_session(&cx, &workspace).await?;
        let stop = prompt_text(&cx, &session, "What is in f.txt?")
            .await?
            .stop_reason;
        assert_eq!(stop, StopReason::EndTurn);
        Ok(session)
    })
    .await;
    assert_eq!(first.exit_code().await, 0);

    let mut second = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    let replayed = run_client(&mut second, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let listed = cx
            .send_request(ListSessionsRequest::new())
            .block_task()
            .await?;
        assert_eq!(&*listed.sessions[0].session_id.0, session);
        assert_eq!(
            listed.sessions[0].title.as_deref(),
            Some("What is in f.txt?")
        );
        let load = LoadSessionRequest::new(session.clone(), workspace.clone());
        cx.send_request(load).block_task().await?;
        let replayed = recorder.take_updates();
        let stop = prompt_text(&cx, &session, "And now?").await?.stop_reason;
        assert_eq!(stop, StopReason::EndTurn);
        Ok(replayed)
    })
    .await;
    assert_eq!(second.exit_code().await, 0);

    assert_eq!(chunks(&replayed, is_user_chunk), "What is in f.txt?");
    assert_eq!(
        chunks(&replayed, is_agent_chunk),
        "Let me look. It says hi."
    );
    assert_eq!(
        statuses(&replayed, "r1"),
        [ToolCallStatus::Pending, ToolCallStatus::Completed]
    );
    assert_eq!(text_of(&final_content(&replayed, "r1")), "hi");
    // The follow-up continued the conversation: the model saw all of it.
    let follow_up = mock.request(2);
    let said: Vec<String> = follow_up
        .messages()
        .iter()
        .map(|m| m["content"].to_string())
        .collect();
    assert!(
        said.iter().any(|c| c.contains("What is in f.txt?")),
        "{said:?}"
    );
    assert!(said.iter().any(|c| c.contains("It says hi.")), "{said:?}");
    assert!(said.iter().any(|c| c.contains("And now?")), "{said:?}");
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_fs_file_tools_go_through_the_editor() {
    let script = vec![
        write_call("w1", "a.txt", "new text"),
        Reply::tool_calls(vec![
            ToolCallSpec::new("read_file", json!({"path": "a.txt"})).with_id("r1"),
        ]),
        Reply::tool_calls(vec![
            ToolCallSpec::new(
                "edit_file",
                json!({"path": "a.txt", "old_string": "new", "new_string": "newer"}),
            )
            .with_id("e1"),
        ]),
        Reply::text("ok"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let file = workspace.join("a.txt");
    std::fs::write(&file, "disk version").unwrap();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    // The editor has unsaved changes the disk does not.
    recorder
        .buffers
        .lock()
        .unwrap()
        .insert(file.clone(), "unsaved buffer".into());
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, true).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "edit a.txt").await?.stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);

    let writes = recorder.writes.lock().unwrap().clone();
    assert_eq!(
        writes,
        [
            (file.clone(), "new text".to_owned()),
            (file.clone(), "newer text".to_owned())
        ]
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "disk version");
    let updates = recorder.updates();
    let diff = final_content(&updates, "w1")
        .into_iter()
        .find_map(|c| match c {
            ToolCallContent::Diff(d) => Some(d),
            _ => None,
        })
        .expect("no diff");
    assert_eq!(diff.path, file);
    assert_eq!(diff.old_text.as_deref(), Some("unsaved buffer"));
    // The read came from the editor's buffer (now holding the write).
    let told = mock.request(2);
    let read_result = told
        .messages()
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == "r1")
        .unwrap()
        .clone();
    assert_eq!(read_result["content"], "new text");
    assert!(recorder.reads.lock().unwrap().contains(&file));
    // An edit applies to the buffer, too: read, replace, write back.
    let edit = text_of(&final_content(&updates, "e1"));
    assert!(edit.starts_with("Edited a.txt: 1 replacement\n"), "{edit}");
    assert!(edit.contains("+newer text"), "{edit}");
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_is_written_through_the_editor_without_reading_it_first() {
    let script = vec![write_call("w1", "docs/new.txt", "fresh"), Reply::text("ok")];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let file = workspace.join("docs/new.txt");
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(Some(PermissionOptionKind::AllowOnce));
    let stop = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, true).await?;
        let session = new_session(&cx, &workspace).await?;
        Ok(prompt_text(&cx, &session, "write docs/new.txt")
            .await?
            .stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn);
    assert_eq!(
        recorder.writes.lock().unwrap().clone(),
        [(file.clone(), "fresh".to_owned())]
    );
    // Asking the editor to read a file that does not exist makes it report
    // an error of its own: a new file is not read.
    assert!(recorder.reads.lock().unwrap().is_empty());
    let diff = final_content(&recorder.updates(), "w1")
        .into_iter()
        .find_map(|c| match c {
            ToolCallContent::Diff(d) => Some(d),
            _ => None,
        })
        .expect("no diff");
    assert_eq!(diff.old_text, None);
    mock.assert_no_violations();
}

/// `session/set_model` as Zed sends it (not part of the stable schema).
#[derive(
    Debug, Clone, serde::Serialize, serde::Deserialize, agent_client_protocol::JsonRpcRequest,
)]
#[request(method = "session/set_model", response = SetModelResponse)]
#[serde(rename_all = "camelCase")]
struct SetModel {
    session_id: String,
    model_id: String,
}

#[derive(
    Debug, Clone, serde::Serialize, serde::Deserialize, agent_client_protocol::JsonRpcResponse,
)]
struct SetModelResponse {}

fn current_model(options: &[SessionConfigOption]) -> String {
    match &options[0].kind {
        SessionConfigKind::Select(select) => select.current_value.to_string(),
        other => panic!("the model option is not a select: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_meta_and_model_selection_reach_the_model() {
    let script = vec![Reply::text("one"), Reply::text("two"), Reply::text("three")];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let config = format!(
        "default_provider = \"mock\"\n\n[providers.mock]\nkind = \"openai_compatible\"\napi_base = \"{}\"\ndefault_model = \"mock-model\"\nmodels = [\"other-model\"]\n",
        mock.base_url()
    );
    std::fs::write(install.home().join("config.toml"), config).unwrap();
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let meta: Meta = serde_json::from_value(json!({
            "skills": ["a"], "model": "mock/other-model"
        }))
        .unwrap();
        let created = cx
            .send_request(NewSessionRequest::new(workspace.clone()).meta(meta))
            .block_task()
            .await?;
        let session = created.session_id.0.to_string();
        let options = created.config_options.unwrap();
        assert_eq!(current_model(&options), "mock/other-model");
        prompt_text(&cx, &session, "first").await?;
        let pick = SetSessionConfigOptionRequest::new(session.clone(), "model", "default");
        let changed = cx.send_request(pick).block_task().await?;
        assert_eq!(current_model(&changed.config_options), "default");
        prompt_text(&cx, &session, "second").await?;
        let set = SetModel {
            session_id: session.clone(),
            model_id: "mock/other-model".into(),
        };
        cx.send_request(set).block_task().await?;
        prompt_text(&cx, &session, "third").await?;
        let bad = SetSessionConfigOptionRequest::new(session.clone(), "mode", "x");
        let error = cx.send_request(bad).block_task().await.unwrap_err();
        assert_eq!(error.code, ErrorCode::INVALID_PARAMS);
        Ok(())
    })
    .await;
    let models: Vec<Value> = (0..3)
        .map(|i| mock.request(i).body["model"].clone())
        .collect();
    assert_eq!(models, ["other-model", "mock-model", "other-model"]);
    let system = mock.system_prompt(0).unwrap();
    assert!(system.contains(openheim_e2e::install::SKILL_A), "{system}");
    mock.assert_no_violations();
}
