//! A provider stream dropped mid-reply, seen from every front end, for every
//! provider kind: a redone reply that repeats what was shown continues it
//! (nobody reads a word twice); one that differs is marked as a restart
//! (ACP, which cannot take text back) or replaces it (`run`'s stdout when it
//! is a file or pipe). See docs/decisions.md.

use std::process::Stdio;

use openheim_e2e::install::{history, session_id, stderr, stdout};
use openheim_e2e::{MockLlm, Reply};

use super::acp::support::{
    AcpProcess, Recorder, chunks, initialize, new_session, prompt_text, run_client,
};
use super::gateway::support::{Framing, Server};
use super::providers::{Kind, install};
use agent_client_protocol::v1::schema::{SessionUpdate, StopReason};

const KINDS: [Kind; 4] = [
    Kind::OpenAiChat,
    Kind::OpenAiResponses,
    Kind::Anthropic,
    Kind::Gemini,
];
const ANSWER: &str = "ECHO: say something long enough";
const PARTIAL: &str = "A partial answer that dies.";
const COMPLETE: &str = "The complete answer.";
/// The ACP message text between a void partial reply and its redone version.
const RESTART_MARK: &str = "it restarts here";

/// The same reply twice, the first cut after its first piece of text.
fn repeated(kind: Kind) -> Vec<Reply> {
    vec![
        Reply::text(ANSWER).cut_after(kind.events_through_first_text()),
        Reply::text(ANSWER),
    ]
}

/// A reply cut after its first piece of text, then a different one.
fn diverging(kind: Kind) -> Vec<Reply> {
    vec![
        Reply::text(PARTIAL).cut_after(kind.events_through_first_text()),
        Reply::text(COMPLETE),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_a_reply_redone_after_a_dropped_stream_once() {
    for kind in KINDS {
        let mock = kind.mock(repeated(kind)).await;
        let home = install(kind, &mock);
        let output = home.openheim(&["run", "say something"]).await;
        assert!(output.status.success(), "{kind:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), format!("{ANSWER}\n"), "{kind:?}");
        assert_eq!(mock.request_count(), 2, "{kind:?}");
        mock.assert_no_violations();

        let mock = kind.mock(diverging(kind)).await;
        let home = install(kind, &mock);
        let output = home.openheim(&["run", "Answer me"]).await;
        assert!(output.status.success(), "{kind:?}: {}", stderr(&output));
        // A file or pipe gets the redone reply only; stderr says why.
        assert_eq!(stdout(&output), format!("{COMPLETE}\n"), "{kind:?}");
        assert!(
            stderr(&output).contains("interrupted"),
            "{kind:?}: {}",
            stderr(&output)
        );
        let records = history(&home.history_file(&session_id(&output)));
        let last = records.last().unwrap();
        assert_eq!(last["message"]["content"][0]["text"], COMPLETE, "{kind:?}");
    }
}

/// One ACP prompt over stdio against `script` in `kind`'s wire format: the
/// agent's message text, chunks joined.
async fn acp_reply(kind: Kind, script: Vec<Reply>) -> (String, MockLlm) {
    let mock = kind.mock(script).await;
    let install = install(kind, &mock);
    let mut process = AcpProcess::spawn(&install, Stdio::null());
    let recorder = Recorder::answering(None);
    let workspace = install.workspace();
    let stop = run_client(&mut process, &recorder, async |cx| {
        initialize(&cx, false).await?;
        let session = new_session(&cx, &workspace).await?;
        let response = prompt_text(&cx, &session, "say something").await?;
        Ok(response.stop_reason)
    })
    .await;
    assert_eq!(stop, StopReason::EndTurn, "{kind:?}");
    let text = chunks(&recorder.updates(), |u| {
        matches!(u, SessionUpdate::AgentMessageChunk(_))
    });
    (text, mock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acp_shows_a_redone_reply_once_and_marks_a_restart() {
    for kind in KINDS {
        let (text, mock) = acp_reply(kind, repeated(kind)).await;
        assert_eq!(text, ANSWER, "{kind:?}");
        assert_eq!(mock.request_count(), 2);
        mock.assert_no_violations();

        let (text, _mock) = acp_reply(kind, diverging(kind)).await;
        let (shown, redone) = split_at_restart(&text);
        assert!(
            !shown.is_empty() && PARTIAL.starts_with(shown),
            "{kind:?}: {text:?}"
        );
        assert_eq!(redone, COMPLETE, "{kind:?}: {text:?}");
    }
}

/// The text shown before a restart mark and the text after it.
fn split_at_restart(text: &str) -> (&str, &str) {
    let (shown, rest) = text
        .split_once("\n\n---\n")
        .unwrap_or_else(|| panic!("no restart mark in {text:?}"));
    let (mark, redone) = rest
        .split_once(")*\n\n")
        .unwrap_or_else(|| panic!("no end of the restart mark in {text:?}"));
    assert!(mark.contains(RESTART_MARK), "{text:?}");
    (shown, redone)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acp_over_websocket_shows_a_redone_reply_once() {
    // `openheim serve`'s mock provider speaks Chat Completions.
    let mut script = repeated(Kind::OpenAiChat);
    script.extend(diverging(Kind::OpenAiChat));
    let server = Server::start(script, "").await;
    let mut client = server.connect("/acp", Framing::Bare).await;
    let session = client.open_session(&server.install.workspace()).await;
    let turn = client.prompt(&session, "say something", "allow_once").await;
    assert_eq!(turn.stop_reason, "end_turn");
    assert_eq!(turn.text(), ANSWER);
    let turn = client.prompt(&session, "Answer me", "allow_once").await;
    let text = turn.text();
    let (shown, redone) = split_at_restart(&text);
    assert!(PARTIAL.starts_with(shown), "{text:?}");
    assert_eq!(redone, COMPLETE, "{text:?}");
    client.close().await;
    server.mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_ui_shows_a_redone_reply_once_and_restarts_a_different_one_below() {
    let mut script = repeated(Kind::OpenAiChat);
    script.extend(diverging(Kind::OpenAiChat));
    let mock = MockLlm::start(script).await;
    let install = openheim_e2e::Install::new(&mock, "");
    let home = install.home();
    let pty = openheim_e2e::pty::Pty::spawn(
        &openheim_e2e::bin_path("openheim"),
        &[],
        &[("OPENHEIM_HOME", home.to_str().unwrap())],
        &install.workspace(),
        40,
        120,
    )
    .unwrap();
    let wait = std::time::Duration::from_secs(20);
    pty.expect("/help for commands", wait).unwrap();
    pty.send_line("say something").unwrap();
    pty.expect(ANSWER, wait).unwrap();
    pty.send_line("Answer me").unwrap();
    pty.expect(RESTART_MARK, wait).unwrap();
    pty.expect(COMPLETE, wait).unwrap();
    let screen = pty.screen_with_scrollback();
    assert_eq!(screen.matches("ECHO:").count(), 1, "{screen}");
    // The void start stays above the note; the redone reply has its own line.
    let lines: Vec<&str> = screen.lines().map(str::trim).collect();
    assert!(lines.contains(&COMPLETE), "{screen}");
    pty.ctrl_d().unwrap();
}
