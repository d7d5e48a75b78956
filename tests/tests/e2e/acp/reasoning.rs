//! Reasoning and compaction over ACP: the `thinking` session config option
//! reaches the provider request, the model's thinking arrives as
//! `agent_thought_chunk`, and the `compact` command (offered in
//! `available_commands_update`) summarises the session, reported as a
//! `compaction_update`.

use std::process::Stdio;

use agent_client_protocol::v1::schema::{
    ClientCapabilities, ClientSessionCapabilities, CompactionCapabilities, CompactionStatus,
    NewSessionRequest, SessionConfigKind, SessionConfigOption, SessionUpdate,
    SetSessionConfigOptionRequest, StopReason,
};
use openheim_e2e::install::history;
use openheim_e2e::{RecordedRequest, Reply};
use serde_json::json;

use super::support::{AcpProcess, Recorder, chunks, initialize_with, prompt_text, run_client};
use crate::e2e::providers::{Kind, install};

fn current(options: &[SessionConfigOption], id: &str) -> String {
    let option = options
        .iter()
        .find(|o| &*o.id.0 == id)
        .unwrap_or_else(|| panic!("no {id} option in {options:?}"));
    match &option.kind {
        SessionConfigKind::Select(select) => select.current_value.to_string(),
        other => panic!("the {id} option is not a select: {other:?}"),
    }
}

fn is_summary(request: &RecordedRequest) -> bool {
    request
        .system_prompt()
        .is_some_and(|s| s.starts_with("You write the summary that replaces"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_option_thought_chunks_and_the_compact_command() {
    let script = vec![
        Reply::text("It is noted.").with_thinking("The user gave me a code to keep."),
        Reply::text("Still here."),
    ];
    let mock = Kind::Anthropic.mock(script).await;
    mock.answer_matching(is_summary, |request| {
        let text = request.last_user_text().unwrap_or_default();
        if !text.contains("PINEAPPLE-42") || !text.contains("Pay most attention to: the code") {
            return Err(format!("unexpected summary request: {text}"));
        }
        Ok(Reply::text(
            "## Facts\nSUMMARY-7: the code is PINEAPPLE-42.",
        ))
    });
    let install = install(Kind::Anthropic, &mock);
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    let session = run_client(&mut agent, &recorder, async |cx| {
        let session_caps =
            ClientSessionCapabilities::new().compaction(CompactionCapabilities::new());
        initialize_with(&cx, ClientCapabilities::new().session(session_caps)).await?;
        let created = cx
            .send_request(NewSessionRequest::new(workspace.clone()))
            .block_task()
            .await?;
        let session = created.session_id.0.to_string();
        let options = created.config_options.unwrap();
        assert_eq!(current(&options, "thinking"), "default");
        let pick = SetSessionConfigOptionRequest::new(session.clone(), "thinking", "high");
        let changed = cx.send_request(pick).block_task().await?;
        assert_eq!(current(&changed.config_options, "thinking"), "high");
        assert_eq!(current(&changed.config_options, "model"), "default");
        prompt_text(&cx, &session, "Keep this: the code is PINEAPPLE-42.").await?;
        let compacted = prompt_text(&cx, &session, "/compact the code").await?;
        assert_eq!(compacted.stop_reason, StopReason::EndTurn);
        prompt_text(&cx, &session, "Still there?").await?;
        Ok(session)
    })
    .await;
    mock.assert_no_violations();

    // The session's setting reached the request (high = 24,576 tokens).
    assert_eq!(
        mock.request(0).body["thinking"],
        json!({"type": "enabled", "budget_tokens": 24576})
    );
    let updates = recorder.updates();
    let thought = chunks(&updates, |u| {
        matches!(u, SessionUpdate::AgentThoughtChunk(_))
    });
    assert_eq!(thought, "The user gave me a code to keep.");
    let commands = updates.iter().find_map(|u| match u {
        SessionUpdate::AvailableCommandsUpdate(c) => Some(c.available_commands.clone()),
        _ => None,
    });
    assert!(
        commands.is_some_and(|c| c.iter().any(|c| c.name == "compact")),
        "{updates:?}"
    );
    // The compaction: one update with the summary, then the next prompt
    // is sent the summary instead of the conversation.
    let compaction = updates.iter().find_map(|u| match u {
        SessionUpdate::CompactionUpdate(c) => Some(c.clone()),
        _ => None,
    });
    let compaction = compaction.expect("no compaction_update");
    assert_eq!(compaction.status, CompactionStatus::Completed);
    let summary = serde_json::to_string(&compaction.summary).unwrap();
    assert!(summary.contains("SUMMARY-7"), "{summary}");
    assert!(is_summary(&mock.request(1)));
    let last = mock.request(2).body.to_string();
    assert!(
        last.contains("SUMMARY-7") && !last.contains("Keep this:"),
        "{last}"
    );
    let records = history(&install.history_file(&session));
    assert_eq!(
        records.iter().filter(|r| r["type"] == "compaction").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_streams_its_thinking_as_thought_chunks() {
    for kind in [Kind::Anthropic, Kind::Gemini, Kind::OpenAiResponses] {
        let reply = Reply::text("Answered.").with_thinking(format!("Reasoning of {kind:?}."));
        let mock = kind.mock(vec![reply]).await;
        let install = install(kind, &mock);
        let config = install.home().join("config.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}thinking = \"low\"\n")).unwrap();
        let workspace = install.workspace();
        let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
        let recorder = Recorder::answering(None);
        run_client(&mut agent, &recorder, async |cx| {
            initialize_with(&cx, ClientCapabilities::new()).await?;
            let created = cx
                .send_request(NewSessionRequest::new(workspace.clone()))
                .block_task()
                .await?;
            prompt_text(&cx, &created.session_id.0, "think").await?;
            Ok(())
        })
        .await;
        mock.assert_no_violations();
        let updates = recorder.updates();
        let thought = chunks(&updates, |u| {
            matches!(u, SessionUpdate::AgentThoughtChunk(_))
        });
        assert_eq!(thought, format!("Reasoning of {kind:?}."), "{kind:?}");
        let answer = chunks(&updates, |u| {
            matches!(u, SessionUpdate::AgentMessageChunk(_))
        });
        assert_eq!(answer, "Answered.", "{kind:?}");
    }
}
