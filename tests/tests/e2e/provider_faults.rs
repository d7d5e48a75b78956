//! Provider faults as `openheim run` reports them: Gemini calls sent without
//! ids get ids unique across the session; each retry and fallback is one
//! line on stderr (logs only when asked for); a primary that failed over
//! cools down, so later calls of the turn go straight to the fallback; a
//! provider kind that always needs a key fails at once without one, naming
//! the variable, without a request.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use openheim_e2e::install::{Install, history, session_id, stderr, stdout};
use openheim_e2e::{MockLlm, Reply, ToolCallSpec};
use serde_json::json;

use super::providers::{KEY, Kind, install};

fn list_dir() -> ToolCallSpec {
    ToolCallSpec::new("list_dir", json!({"path": "."}))
}

/// Every tool call id of a stored session, in order.
fn call_ids(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r["message"]["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_call")
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_calls_without_ids_get_ids_unique_across_the_session() {
    let kind = Kind::Gemini;
    // The mock sends Gemini calls without an id unless the script names one.
    let mock = kind
        .mock(vec![
            Reply::tool_calls(vec![list_dir(), list_dir()]),
            Reply::tool_calls(vec![list_dir()]),
            Reply::text("Listed."),
            Reply::tool_calls(vec![list_dir()]),
            Reply::text("Listed again."),
        ])
        .await;
    let install = install(kind, &mock);
    let first = install.openheim(&["run", "List it"]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let id = session_id(&first);
    let again = install
        .openheim(&["run", "Once more", "--resume", &id])
        .await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), "Listed again.");
    let ids = call_ids(&history(&install.history_file(&id)));
    assert_eq!(ids.len(), 4, "{ids:?}");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 4, "tool call ids repeat: {ids:?}");
    // Made-up ids are never sent to Gemini, which did not issue them.
    let body = mock.request(4).body.to_string();
    assert!(ids.iter().all(|id| !body.contains(id.as_str())), "{body}");
    mock.assert_no_violations();
}

fn server_error() -> Reply {
    Reply::http_error(
        500,
        json!({"error": {"message": "upstream broke", "type": "server_error"}}),
    )
}

/// An install whose provider `primary` (Chat Completions at `primary`) falls
/// back to `backup`; `extra` goes into `[providers.primary]`.
fn with_fallback(primary: &MockLlm, backup: &MockLlm, extra: &str) -> Install {
    let install = Install::new(backup, "");
    let config = format!(
        "default_provider = \"primary\"\n\n\
         [providers.primary]\n{}fallbacks = [\"backup/backup-model\"]\n{extra}\n\n\
         [providers.backup]\n{}",
        Kind::OpenAiChat.settings(primary),
        Kind::Compatible.settings(backup),
    );
    std::fs::write(install.home().join("config.toml"), config).unwrap();
    install
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reports_each_retry_and_fallback_on_one_line() {
    let primary = MockLlm::builder()
        .expect_api_key(KEY)
        .start(vec![server_error(), server_error()])
        .await;
    let backup = MockLlm::start(vec![Reply::text("From the backup.")]).await;
    let install = with_fallback(&primary, &backup, "max_retries = 1");
    let output = install
        .openheim_with_env_removed(&["run", "Hello?"], &[], &["RUST_LOG"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "From the backup.");
    let err = stderr(&output);
    let lines = |word: &str| err.lines().filter(|l| l.contains(word)).count();
    assert_eq!(lines("retrying"), 1, "{err}");
    assert_eq!(lines("falling back"), 1, "{err}");
    assert!(!err.contains("WARN"), "log lines without RUST_LOG:\n{err}");

    // Logs are there when asked for.
    primary.push_reply(server_error());
    primary.push_reply(server_error());
    backup.push_reply(Reply::text("Again."));
    let verbose = install
        .openheim_with_env_removed(&["run", "Hello?", "--verbose"], &[], &["RUST_LOG"])
        .await;
    assert!(verbose.status.success(), "{}", stderr(&verbose));
    assert!(stderr(&verbose).contains("WARN"), "{}", stderr(&verbose));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_failed_over_is_skipped_by_later_calls_of_the_turn() {
    // Only as many errors as the first call uses: a request after them
    // would find the script empty and count as a violation.
    let primary = MockLlm::builder()
        .expect_api_key(KEY)
        .start(vec![server_error(), server_error()])
        .await;
    let backup = MockLlm::start(vec![
        Reply::tool_calls(vec![list_dir()]),
        Reply::tool_calls(vec![list_dir()]),
        Reply::text("Done."),
    ])
    .await;
    let install = with_fallback(&primary, &backup, "max_retries = 1");
    let output = install.openheim(&["run", "List twice"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "Done.");
    assert_eq!(primary.request_count(), 2, "retried once, then cooled down");
    assert_eq!(backup.request_count(), 3);
    primary.assert_no_violations();
    backup.assert_no_violations();

    // With the cooldown off, every call tries the primary again.
    let primary = MockLlm::builder()
        .expect_api_key(KEY)
        .start(Vec::new())
        .await;
    for _ in 0..4 {
        primary.push_reply(server_error());
    }
    let backup = MockLlm::start(vec![
        Reply::tool_calls(vec![list_dir()]),
        Reply::text("Done."),
    ])
    .await;
    let install = with_fallback(&primary, &backup, "max_retries = 1\ncooldown_secs = 0");
    let output = install.openheim(&["run", "List once"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(primary.request_count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_its_required_key_fails_at_once_naming_the_variable() {
    for (kind, var) in [
        ("openai", "OPENAI_API_KEY"),
        ("anthropic", "ANTHROPIC_API_KEY"),
        ("gemini", "GEMINI_API_KEY"),
    ] {
        // Answers slowly, so reaching it would show in the time too.
        let mock = MockLlm::start(vec![Reply::text("unreachable").with_delay_ms(3_000)]).await;
        let install = Install::new(&mock, "");
        let base = if kind == "gemini" {
            mock.gemini_base_url()
        } else {
            mock.base_url()
        };
        let config = format!(
            "default_provider = \"p\"\n\n[providers.p]\nkind = \"{kind}\"\napi_base = \"{base}\"\n\
             default_model = \"mock-model\"\n"
        );
        std::fs::write(install.home().join("config.toml"), config).unwrap();
        let started = Instant::now();
        let output = install
            .openheim_with_env_removed(&["run", "Hello?"], &[], &[var])
            .await;
        assert!(!output.status.success(), "{kind}");
        let err = stderr(&output);
        assert!(err.contains(var), "{kind}: {err}");
        assert_eq!(mock.request_count(), 0, "{kind}: a request went out");
        assert!(started.elapsed() < Duration::from_secs(3), "{kind}");
    }
}

/// What `openheim run` prints for a turn with tool calls, a retry and a
/// restarted reply, as a user sees it (timings and the session id masked):
/// a change of the output shows up as a snapshot diff in review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_output_as_users_see_it() {
    let kind = Kind::OpenAiChat;
    let mock = kind
        .mock(vec![
            server_error(),
            Reply::tool_calls(vec![list_dir()]).with_text("Looking."),
            Reply::text("A partial answer that dies.").cut_after(kind.events_through_first_text()),
            Reply::text("The workspace is empty."),
        ])
        .await;
    let home = install(kind, &mock);
    let output = home
        .openheim_with_env_removed(&["run", "What is here?"], &[], &["RUST_LOG"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let masked = |text: String| {
        text.lines()
            .map(|line| {
                let line = match line.find(" ms") {
                    Some(end) => {
                        let start = line[..end]
                            .rfind(|c: char| !c.is_ascii_digit())
                            .map_or(0, |i| i + 1);
                        format!("{}N{}", &line[..start], &line[end..])
                    }
                    None => line.to_owned(),
                };
                match line.strip_prefix("session: ") {
                    Some(_) => "session: ID".to_owned(),
                    None => line,
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    insta::assert_snapshot!(format!(
        "--- stdout\n{}\n--- stderr\n{}",
        stdout(&output),
        masked(stderr(&output))
    ));
}
