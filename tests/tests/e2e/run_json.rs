//! `openheim run --json` (docs/automation.md): the event stream of the files
//! task validates against the published schema, every tool call starts and
//! ends, usage and cost add up exactly to the provider's usage times the
//! configured prices; a failing provider ends with `turn.failed` and exit
//! code 1; the prompt from stdin, `--output-last-message`,
//! `--max-iterations`; the resolved model with services as processes.

use std::path::PathBuf;

use openheim_e2e::install::{Install, stderr, stdout};
use openheim_e2e::json_schema::assert_lines_valid;
use openheim_e2e::{MockLlm, Reply, ToolCallSpec, last_tool_result};
use serde_json::{Value, json};

const CONTENT: &str = "Hello from openheim! ünïcødé ✓";

/// USD per million tokens, configured for the mock's model.
const PRICES: &str = "[pricing.\"mock/mock-model\"]\ninput = 2.0\noutput = 8.0\ncache_read = 0.5\n";

/// The mock's usage per call: (prompt, completion, cached).
const USAGE: [(u64, u64, u64); 3] = [(1200, 40, 1000), (1300, 25, 1200), (1400, 60, 0)];

/// Picodollars for one call at [`PRICES`]: uncached input at 2, output at
/// 8, cache reads at 0.5 USD per million tokens.
fn cost(prompt: u64, completion: u64, cached: u64) -> u64 {
    (prompt - cached) * 2_000_000 + completion * 8_000_000 + cached * 500_000
}

fn schema_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/run-events.schema.json")
}

fn files_script() -> Vec<Reply> {
    let [a, b, c] = USAGE;
    vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            json!({"path": "hello.txt", "content": CONTENT}),
        )])
        .with_text("I'll write the file.")
        .with_usage(a.0, a.1, a.2),
        Reply::tool_calls(vec![ToolCallSpec::new(
            "read_file",
            json!({"path": "hello.txt"}),
        )])
        .with_usage(b.0, b.1, b.2),
        Reply::dynamic(move |request| {
            let read = last_tool_result(request).unwrap_or_default();
            Reply::text(format!("The file says: {read}")).with_usage(c.0, c.1, c.2)
        }),
    ]
}

/// Every stdout line as JSON; panics on a line that is not.
fn events(out: &str) -> Vec<Value> {
    out.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_task_as_json_events() {
    let mock = MockLlm::start(files_script()).await;
    let install = Install::new(&mock, PRICES);
    let last = install.root.path().join("last.txt");
    let output = install
        .openheim(&[
            "run",
            "Write hello.txt, then read it back",
            "--json",
            "--output-last-message",
            last.to_str().unwrap(),
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();
    let out = stdout(&output);
    assert_lines_valid(&schema_file(), &out);
    let events = events(&out);

    let first = &events[0];
    assert_eq!(first["type"], "session.started");
    assert_eq!(first["schema_version"], 1);
    assert_eq!(first["resumed"], false);
    assert_eq!(first["openheim_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["model"], "mock/mock-model");
    let workspace = std::fs::canonicalize(install.workspace()).unwrap();
    assert_eq!(first["workspace"], workspace.to_str().unwrap());
    let session_id = first["session_id"].as_str().unwrap();

    // Each tool call: started with its arguments, allowed by the run's
    // approval mode, completed with its result and a duration.
    let started = of_type(&events, "tool_call.started");
    let completed = of_type(&events, "tool_call.completed");
    let decided = of_type(&events, "permission.decided");
    let names: Vec<&str> = started
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["write_file", "read_file"]);
    assert_eq!(started[0]["arguments"]["content"], CONTENT);
    assert_eq!(started[0]["kind"], "edit");
    for (start, (end, decision)) in started.iter().zip(completed.iter().zip(&decided)) {
        assert_eq!(start["id"], end["id"]);
        assert_eq!(start["id"], decision["tool_call_id"]);
        assert_eq!(end["status"], "completed", "{end}");
        assert_eq!(decision["decision"], "allow");
        assert_eq!(decision["by"], "approval_mode");
        assert!(end["duration_ms"].is_u64());
        let at = |e: &Value| events.iter().position(|x| x == e).unwrap();
        assert!(at(start) < at(decision) && at(decision) < at(end));
    }
    assert_eq!(completed.len(), 2);
    assert_eq!(completed[1]["result"], CONTENT);
    assert_eq!(completed[1]["result_truncated"], false);

    // The text of each model call, streamed then completed.
    let messages: Vec<&str> = of_type(&events, "message.completed")
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    let answer = format!("The file says: {CONTENT}");
    assert_eq!(messages, ["I'll write the file.", answer.as_str()]);
    let streamed: String = of_type(&events, "message.delta")
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, format!("I'll write the file.{answer}"));
    assert_eq!(std::fs::read_to_string(&last).unwrap(), answer);

    // Usage per call is the mock's, priced exactly; the total adds up.
    let usage = of_type(&events, "usage");
    assert_eq!(usage.len(), 3);
    for (event, (prompt, completion, cached)) in usage.iter().zip(USAGE) {
        assert_eq!(event["provider"], "mock");
        assert_eq!(event["model"], "mock-model");
        let u = &event["usage"];
        assert_eq!(u["input_tokens"], prompt);
        assert_eq!(u["output_tokens"], completion);
        assert_eq!(u["cache_read_tokens"], cached);
        assert_eq!(u["cost_pico_usd"], cost(prompt, completion, cached));
    }
    let last_event = events.last().unwrap();
    assert_eq!(last_event["type"], "turn.completed", "{last_event}");
    assert_eq!(last_event["stop_reason"], "end_turn");
    assert_eq!(last_event["exit_code"], 0);
    assert_eq!(last_event["llm_calls"], 3);
    assert_eq!(last_event["session_id"], session_id);
    let total = &last_event["usage"];
    let sum = |f: fn(&(u64, u64, u64)) -> u64| USAGE.iter().map(f).sum::<u64>();
    assert_eq!(total["input_tokens"], sum(|u| u.0));
    assert_eq!(total["output_tokens"], sum(|u| u.1));
    assert_eq!(total["cache_read_tokens"], sum(|u| u.2));
    assert_eq!(total["cost_pico_usd"], sum(|u| cost(u.0, u.1, u.2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_ends_the_stream_with_turn_failed() {
    let script = vec![Reply::http_error(
        401,
        json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
    )];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let output = install.openheim(&["run", "hello", "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let out = stdout(&output);
    assert_lines_valid(&schema_file(), &out);
    let events = events(&out);
    assert_eq!(events[0]["type"], "session.started");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "turn.failed", "{last}");
    assert_eq!(last["error"]["kind"], "provider");
    assert!(
        last["error"]["message"].as_str().unwrap().contains("401"),
        "{last}"
    );
    assert_eq!(last["exit_code"], 1);
    assert_eq!(last["session_id"], events[0]["session_id"]);
}

/// With the agent loop in another process, `run` has no llm-proxy of its
/// own: `session.started` still names the resolved model, the turn's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_started_names_the_resolved_model_when_services_are_processes() {
    let mock = MockLlm::start(vec![Reply::text("Hi.")]).await;
    let install = Install::new(&mock, "");
    let _cluster = install.start_cluster(&mock, "").await;
    let output = install.openheim(&["run", "hello", "--json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert_lines_valid(&schema_file(), &out);
    let events = events(&out);
    assert_eq!(events[0]["type"], "session.started");
    assert_eq!(events[0]["model"], "mock/mock-model");
    assert_eq!(events.last().unwrap()["type"], "turn.completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_from_stdin_and_max_iterations() {
    let looping = || Reply::tool_calls(vec![ToolCallSpec::new("list_dir", json!({"path": "."}))]);
    let script = vec![Reply::text("piped answer"), looping(), looping()];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");

    // `-` reads the prompt from stdin; the answer alone is on stdout.
    let piped = install
        .openheim_with_stdin(&["run", "-"], "the prompt\nfrom a pipe\n")
        .await;
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(stdout(&piped).trim(), "piped answer");
    assert_eq!(
        mock.last_user_text(0).as_deref(),
        Some("the prompt\nfrom a pipe\n")
    );

    // Two model calls at most: the turn stops with exit code 3.
    let capped = install
        .openheim_with_stdin(&["run", "--json", "--max-iterations", "2"], "keep going")
        .await;
    assert_eq!(capped.status.code(), Some(3), "{}", stderr(&capped));
    let out = stdout(&capped);
    assert_lines_valid(&schema_file(), &out);
    let events = events(&out);
    let last = events.last().unwrap();
    assert_eq!(last["stop_reason"], "max_iterations", "{last}");
    assert_eq!(last["exit_code"], 3);
    assert_eq!(last["llm_calls"], 2);
    assert_eq!(mock.request_count(), 3);
    assert_eq!(of_type(&events, "tool_call.completed").len(), 2);
}
