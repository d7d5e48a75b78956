//! The context window (docs/configuration.md, `context_window`): a long session sent to a model with a
//! known window leaves its oldest whole turns out, with a note; a provider
//! refusing the conversation as too long gets it again, shorter. The stored
//! history always keeps everything.

use openheim_e2e::install::{history, session_id, stderr, stdout};
use openheim_e2e::{Install, MockLlm, Reply};
use serde_json::{Value, json};

/// `bytes` of filler starting with a marker the test looks for.
fn long(marker: &str, bytes: usize) -> String {
    let mut text = format!("{marker} ");
    text.push_str(&"lorem ipsum ".repeat(bytes / 12));
    text
}

/// Whether request `i` of the mock carries `marker` anywhere in its messages.
fn sent(mock: &MockLlm, i: usize, marker: &str) -> bool {
    mock.request(i)
        .messages()
        .iter()
        .any(|m| m.to_string().contains(marker))
}

fn roles(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .filter(|r| r["type"] == "message")
        .map(|r| r["message"]["role"].as_str().unwrap())
        .collect()
}

/// Runs one `openheim run` turn (resuming `id` when given); returns the
/// session id and stderr.
async fn turn(install: &Install, prompt: &str, id: Option<&str>) -> (String, String) {
    let mut args = vec!["run", prompt];
    if let Some(id) = id {
        args.extend(["--resume", id]);
    }
    let output = install.openheim(&args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    (session_id(&output), stderr(&output))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_window_drops_the_oldest_turns_but_keeps_the_history() {
    // Turns of ≈10k estimated tokens (20 kB prompt + 20 kB answer) in a 50k
    // window with 1k reserved for output and a 5k margin: four turns fit,
    // the fifth call must leave the first turn out, whatever the (few
    // thousand tokens of) system prompt and tool schemas take.
    let answers = (1..=5)
        .map(|n| Reply::text(long(&format!("ANSWER-{n}"), 20_000)))
        .collect();
    let mock = MockLlm::start(answers).await;
    let install = Install::new(&mock, "");
    install.configure_mock_provider("context_window = 50000\nmax_tokens = 1000");

    let (id, first) = turn(&install, &long("PROMPT-1", 20_000), None).await;
    assert!(!first.contains("context:"), "{first}");
    for n in 2..=4 {
        let (_, err) = turn(&install, &long(&format!("PROMPT-{n}"), 20_000), Some(&id)).await;
        assert!(!err.contains("context:"), "turn {n}: {err}");
    }
    assert!(sent(&mock, 3, "PROMPT-1") && sent(&mock, 3, "ANSWER-1"));

    let (_, last) = turn(&install, &long("PROMPT-5", 20_000), Some(&id)).await;
    assert!(
        last.contains(
            "note: context: dropped the oldest turn (≈10k tokens) to fit the 50k window of mock/mock-model"
        ),
        "{last}"
    );
    // The oldest turn is gone as a whole; the rest is sent in order.
    assert!(!sent(&mock, 4, "PROMPT-1") && !sent(&mock, 4, "ANSWER-1"));
    for marker in ["PROMPT-2", "ANSWER-2", "ANSWER-4", "PROMPT-5"] {
        assert!(sent(&mock, 4, marker), "{marker} missing");
    }
    assert_eq!(mock.request(4).messages()[1]["role"], "user");
    // Stored history is never rewritten.
    let records = history(&install.history_file(&id));
    assert_eq!(roles(&records).len(), 10);
    assert!(records.iter().any(|r| r.to_string().contains("PROMPT-1")));
    assert_eq!(mock.remaining_replies(), 0);
    mock.assert_no_violations();
}

fn context_too_long() -> Reply {
    Reply::http_error(
        400,
        json!({"error": {
            "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }}),
    )
}

/// Without a known window nothing is dropped up front; a refusal shrinks
/// the conversation and the call is made again, once, by the agent loop.
async fn refusal_is_retried_shorter(install: &Install, mock: &MockLlm) {
    let (id, _) = turn(install, "FIRST question", None).await;
    let (_, err) = turn(install, "SECOND question", Some(&id)).await;
    assert!(
        err.contains(
            "note: context: mock/mock-model says the conversation is too long; retrying without the oldest turn"
        ),
        "{err}"
    );
    // Request 1 was refused (llm-proxy did not retry it); request 2 is the
    // agent loop's retry without the first turn.
    assert_eq!(mock.request_count(), 3);
    assert!(sent(mock, 1, "FIRST question"));
    assert!(!sent(mock, 2, "FIRST question") && !sent(mock, 2, "first answer"));
    assert!(sent(mock, 2, "SECOND question"));
    // The refused call stored nothing: one user message per turn, one answer.
    let records = history(&install.history_file(&id));
    assert_eq!(roles(&records), ["user", "assistant", "user", "assistant"]);
    assert!(
        records
            .iter()
            .any(|r| r.to_string().contains("second answer"))
    );
    assert_eq!(mock.remaining_replies(), 0);
    mock.assert_no_violations();
}

fn refusal_script() -> Vec<Reply> {
    vec![
        Reply::text("first answer"),
        context_too_long(),
        Reply::text("second answer"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_too_long_is_retried_with_fewer_turns_in_process() {
    let mock = MockLlm::start(refusal_script()).await;
    let install = Install::new(&mock, "");
    refusal_is_retried_shorter(&install, &mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_too_long_is_retried_with_fewer_turns_across_processes() {
    let mock = MockLlm::start(refusal_script()).await;
    let install = Install::new(&mock, "");
    let _cluster = install.start_cluster(&mock, "").await;
    refusal_is_retried_shorter(&install, &mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_too_long_with_nothing_to_drop_fails_the_turn() {
    let mock = MockLlm::start(vec![context_too_long()]).await;
    let install = Install::new(&mock, "");
    let output = install.openheim(&["run", "ONLY question"]).await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("maximum context length is 8192"), "{err}");
    assert!(!err.contains("retrying"), "{err}");
    assert_eq!(mock.request_count(), 1);
    assert!(stdout(&output).is_empty());
}
