//! The files task (write hello.txt → read it back → answer quoting it),
//! in-process and with the services as separate processes.

use openheim_e2e::{MockLlm, Reply, ToolCallSpec, last_tool_result};
use serde_json::json;

use openheim_e2e::install::{
    IDENTITY, Install, SKILL_A, SKILL_B, history, session_id, stderr, stdout,
};

const CONTENT: &str = "Hello from openheim! ünïcødé ✓";

fn script() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            json!({"path": "hello.txt", "content": CONTENT}),
        )])
        .with_text("I'll write the file."),
        Reply::tool_calls(vec![ToolCallSpec::new(
            "read_file",
            json!({"path": "hello.txt"}),
        )]),
        Reply::dynamic(|request| {
            let read = last_tool_result(request).unwrap_or_default();
            Reply::text(format!("The file says: {read}"))
        }),
    ]
}

async fn files_task(install: &Install, mock: &MockLlm) {
    let output = install
        .openheim(&[
            "run",
            "Write hello.txt, then read it back",
            "--skills",
            "a,b",
        ])
        .await;
    assert!(
        output.status.success(),
        "openheim run failed: {:?}\nstderr:\n{}",
        output.status,
        stderr(&output)
    );
    mock.assert_no_violations();

    // The file exists with the content, and the answer quotes the read.
    let written = std::fs::read_to_string(install.workspace().join("hello.txt")).unwrap();
    assert_eq!(written, CONTENT);
    let out = stdout(&output);
    assert!(out.contains("The file says: "), "stdout: {out}");
    assert!(
        out.contains(CONTENT),
        "stdout does not quote the file: {out}"
    );
    // Tool activity went to stderr, not into the answer.
    assert!(!out.contains("▸"), "stdout: {out}");
    assert!(stderr(&output).contains("▸ write_file hello.txt"));

    // The system prompt's documented order: intro, ---, identity, ---, skills.
    assert_eq!(mock.request_count(), 3);
    let system = mock.system_prompt(0).expect("a system message");
    let at = |needle: &str| {
        system
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from system prompt:\n{system}"))
    };
    let (first_rule, identity) = (at("\n---\n"), at(IDENTITY));
    let (skill_a, skill_b) = (at("### a\n"), at("### b\n"));
    assert!(system.starts_with("You are openheim, a general-purpose agent"));
    assert!(first_rule < identity && identity < skill_a && skill_a < skill_b);
    assert!(system[identity..skill_a].contains("\n---\n"));
    assert!(at(SKILL_A) < skill_b && at(SKILL_B) > skill_b);
    // Every request carries the tools; the mock checked their shape.
    let tools = mock.tool_names(0);
    for name in ["execute_command", "read_file", "write_file"] {
        assert!(tools.iter().any(|t| t == name), "{name} missing: {tools:?}");
    }

    // History: header, user, assistant+call, result, assistant+call, result,
    // answer; and one usage record per model call.
    let id = session_id(&output);
    let records = history(&install.history_file(&id));
    let messages: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["type"] == "message").collect();
    let roles: Vec<&str> = messages
        .iter()
        .map(|r| r["message"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(records[0]["type"], "session");
    let usage_records = records.iter().filter(|r| r["type"] == "usage").count();
    assert_eq!(usage_records, 3);
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    assert_eq!(messages[4]["message"]["content"], CONTENT);

    // Resume: the next turn sends the whole stored conversation.
    mock.push_reply(Reply::text("Still here."));
    let again = install
        .openheim(&["run", "Are you still there?", "--resume", &id])
        .await;
    assert!(again.status.success(), "resume failed:\n{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), "Still here.");
    let messages = mock.request(3).messages().to_vec();
    // system + 6 stored + the new user message.
    assert_eq!(messages.len(), 8, "{messages:#?}");
    assert_eq!(messages[7]["content"], "Are you still there?");
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_task_in_process() {
    let mock = MockLlm::start(script()).await;
    let install = Install::new(&mock, "");
    files_task(&install, &mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_task_with_services_as_processes() {
    let mock = MockLlm::start(script()).await;
    let install = Install::new(&mock, "");
    let _cluster = install.start_cluster(&mock, "").await;
    files_task(&install, &mock).await;
}
