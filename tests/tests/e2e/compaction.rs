//! Compaction (docs/context.md): a long session in a small window is
//! summarised instead of forgetting its start, also inside one long tool
//! loop; every request fits the window, every tool call keeps its result,
//! a fact of the first turn survives through the summaries, and a resumed
//! session sends what it sent before.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use openheim_e2e::install::{history, session_id, stderr, stdout};
use openheim_e2e::{Install, MockLlm, RecordedRequest, Reply, ToolCallSpec};
use serde_json::{Value, json};

/// The window of the mock model, in tokens.
const WINDOW: usize = 12_000;
/// Where the fact lives: the first prompt, nowhere else in the script.
const FACT: &str = "the launch code is PINEAPPLE-42";
/// Files the model reads, ~750 estimated tokens each.
const FILES: usize = 12;

/// Summary requests start their system prompt with this (what the mock
/// recognises; the agent loop's wording).
fn is_summary(request: &RecordedRequest) -> bool {
    request
        .system_prompt()
        .is_some_and(|s| s.starts_with("You write the summary that replaces"))
}

/// The mock's summariser: checks the request asks for what continuing
/// needs and still carries the fact (from the conversation or from the
/// previous summary), and answers a summary that keeps it.
fn summariser(count: Arc<AtomicUsize>) -> impl Fn(&RecordedRequest) -> Result<Reply, String> {
    move |request| {
        let text = request.last_user_text().unwrap_or_default();
        for needed in ["## Goal", "## Decisions", "## Files", "## Done", "## Left"] {
            if !text.contains(needed) {
                return Err(format!("the summary request does not ask for {needed}"));
            }
        }
        if !text.contains("PINEAPPLE-42") {
            return Err("the summary request lost the fact of turn 1".into());
        }
        if request.body.get("tools").is_some_and(|t| t != &json!([])) {
            return Err("a summary request offers no tools".into());
        }
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Reply::text(format!(
            "## Goal\nRead the notes files one by one.\n## Facts\nThe user said {FACT}.\n## Done\nSummary {n}: files read so far.\n## Left\nThe remaining files."
        )))
    }
}

/// `len` bytes of text starting with `marker`.
fn filler(marker: &str, len: usize) -> String {
    let mut text = format!("{marker} ");
    while text.len() < len {
        text.push_str("lorem ipsum dolor sit amet ");
    }
    text.truncate(len);
    text
}

fn read(path: &str) -> ToolCallSpec {
    ToolCallSpec::new("read_file", json!({ "path": path }))
}

/// Every assistant tool call of a Chat request has its result, and every
/// result its call.
fn calls_keep_their_results(request: &Value) -> Result<(), String> {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let calls: HashSet<String> = messages
        .iter()
        .flat_map(|m| m["tool_calls"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    let results: HashSet<String> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| m["tool_call_id"].as_str().map(str::to_owned))
        .collect();
    match calls == results {
        true => Ok(()),
        false => Err(format!("calls {calls:?} vs results {results:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_session_is_compacted_and_keeps_what_matters() {
    let mock = MockLlm::start(Vec::new()).await;
    let summaries = Arc::new(AtomicUsize::new(0));
    mock.answer_matching(is_summary, summariser(Arc::clone(&summaries)));
    let install = Install::new(&mock, "max_iterations = 20");
    install.configure_mock_provider(&format!("context_window = {WINDOW}\nmax_tokens = 1000"));
    for i in 0..FILES {
        let text = filler(&format!("NOTES-{i}"), 3_000);
        std::fs::write(install.workspace().join(format!("notes-{i}.txt")), text).unwrap();
    }

    // 30 turns; each reads one file and answers. Turn 20 reads every file
    // in one tool loop, which passes the threshold by itself.
    const LONG_TURN: usize = 20;
    let mut id: Option<String> = None;
    let mut turns: Vec<(usize, usize, String)> = Vec::new();
    for turn in 1..=30 {
        let calls = match turn {
            LONG_TURN => FILES,
            _ => 1,
        };
        for k in 0..calls {
            let file = format!("notes-{}.txt", (turn + k) % FILES);
            mock.push_reply(Reply::tool_calls(vec![read(&file)]));
        }
        let answer = match turn {
            30 => Reply::dynamic(|request: &Value| {
                let seen = request.to_string();
                match seen.contains("PINEAPPLE-42") {
                    true => Reply::text("From the summary: the launch code is PINEAPPLE-42."),
                    false => Reply::text("I no longer know the launch code."),
                }
            }),
            n => Reply::text(format!("Read it (turn {n}).")),
        };
        mock.push_reply(answer);
        let prompt = match turn {
            1 => format!("Remember this: {FACT}. Now read a notes file."),
            30 => "What is the launch code?".to_owned(),
            n => format!("Turn {n}: read the next notes file."),
        };
        let mut args = vec!["run", "-y", prompt.as_str()];
        if let Some(id) = &id {
            args.extend(["--resume", id.as_str()]);
        }
        let before = mock.request_count();
        let output = install.openheim(&args).await;
        assert!(output.status.success(), "turn {turn}: {}", stderr(&output));
        id.get_or_insert_with(|| session_id(&output));
        turns.push((before, mock.request_count(), stderr(&output)));
        if turn == 30 {
            assert!(
                stdout(&output).contains("PINEAPPLE-42"),
                "{}",
                stdout(&output)
            );
        }
    }
    mock.assert_no_violations();
    assert_eq!(mock.remaining_replies(), 0);
    let requests = mock.requests();

    // Compaction happened, between turns and inside the long turn, with a
    // notice that says how much it saved.
    let summary_requests: Vec<usize> = (0..requests.len())
        .filter(|&i| is_summary(&requests[i]))
        .collect();
    assert!(summary_requests.len() >= 3, "{summary_requests:?}");
    let (start, end, long_stderr) = &turns[LONG_TURN - 1];
    assert!(
        summary_requests
            .iter()
            .any(|&i| i > *start + 1 && i < end - 1),
        "no compaction inside the long turn: {summary_requests:?} not within {start}..{end}"
    );
    assert!(
        long_stderr.contains("note: context: summarised")
            && long_stderr.contains("with mock/mock-model (≈"),
        "{long_stderr}"
    );
    // The turn's tool loop went on after it: the files read afterwards
    // are in the requests that follow the summary.
    let records = history(&install.history_file(id.as_deref().unwrap()));
    let compactions: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "compaction")
        .collect();
    assert_eq!(compactions.len(), summary_requests.len());
    assert!(
        compactions
            .iter()
            .all(|c| c["covers"].as_u64().unwrap() > 0 && c["text"].as_str().is_some()),
        "{compactions:?}"
    );
    // Nothing stored was rewritten: every prompt is still in the history.
    let stored = serde_json::to_string(&records).unwrap();
    assert!(stored.contains(FACT) && stored.contains("Turn 29: read the next notes file."));

    // No request exceeds the window; every tool call keeps its result.
    for (i, request) in requests.iter().enumerate() {
        let bytes = request.body.to_string().len();
        assert!(bytes / 4 <= WINDOW, "request {i}: {bytes} bytes");
        if !is_summary(request) {
            calls_keep_their_results(&request.body).unwrap_or_else(|e| panic!("request {i}: {e}"));
        }
    }

    // The fact reached the last answer through the summary, not the
    // first prompt (long gone from what is sent).
    let last = requests.last().unwrap().body.to_string();
    assert!(last.contains("PINEAPPLE-42") && last.contains("Summary of the earlier conversation"));
    assert!(!last.contains("Remember this:"), "turn 1 was still sent");

    // A resumed session sends what it sent before the restart: where no
    // compaction happened between two turns, the next turn's first request
    // starts with everything the previous turn's last request sent.
    let mut compared_after_compaction = 0;
    for pair in turns.windows(2) {
        let (prev_last, next_first) = (pair[0].1 - 1, pair[1].0);
        if is_summary(&requests[next_first]) || is_summary(&requests[prev_last]) {
            continue;
        }
        let before = requests[prev_last].messages();
        let after = requests[next_first].messages();
        assert!(after.len() > before.len());
        assert_eq!(
            &after[..before.len()],
            before,
            "turn boundary at {next_first}"
        );
        if before
            .iter()
            .any(|m| m.to_string().contains("Summary of the earlier"))
        {
            compared_after_compaction += 1;
        }
    }
    assert!(
        compared_after_compaction >= 5,
        "{compared_after_compaction}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_summary_falls_back_to_leaving_turns_out() {
    // The summariser always fails: the turn still answers, with the
    // oldest turns left out and both notes.
    let mock = MockLlm::start(Vec::new()).await;
    mock.answer_matching(is_summary, |_| {
        let error =
            json!({"error": {"message": "summaries are down", "type": "invalid_request_error"}});
        Ok(Reply::http_error(400, error))
    });
    let install = Install::new(&mock, "");
    install.configure_mock_provider("context_window = 8000\nmax_tokens = 500");
    let mut id: Option<String> = None;
    let mut last_err = String::new();
    for turn in 1..=8 {
        mock.push_reply(Reply::text(filler(&format!("ANSWER-{turn}"), 4_000)));
        let prompt = filler(&format!("PROMPT-{turn}"), 4_000);
        let mut args = vec!["run", prompt.as_str()];
        if let Some(id) = &id {
            args.extend(["--resume", id.as_str()]);
        }
        let output = install.openheim(&args).await;
        assert!(output.status.success(), "turn {turn}: {}", stderr(&output));
        id.get_or_insert_with(|| session_id(&output));
        last_err = stderr(&output);
        if last_err.contains("could not summarise") {
            break;
        }
    }
    assert!(
        last_err.contains("note: context: could not summarise the conversation")
            && last_err.contains("leaving out the oldest turns instead")
            && last_err.contains("note: context: dropped"),
        "{last_err}"
    );
    let records = history(&install.history_file(id.as_deref().unwrap()));
    assert!(records.iter().all(|r| r["type"] != "compaction"));
    mock.assert_no_violations();
}
