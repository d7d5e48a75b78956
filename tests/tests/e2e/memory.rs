//! Long-term memory with the real binaries: a note remembered in one
//! `openheim run` is found by `search_memory` in a later, separate run
//! (SQLite under the data directory, opened only when memory is used);
//! bad input and an unreadable database are tool errors the model can act
//! on; read-only sessions search but never write; with an embeddings model
//! configured, search also finds notes by meaning; and the memory tools
//! keep the system prompt plus every built-in tool schema under 4 KB.

use openheim_e2e::install::{Install, stderr, stdout};
use openheim_e2e::{MockLlm, Reply, ToolCallSpec, last_tool_result};
use serde_json::{Value, json};

/// What every LLM request pays for the system prompt and the built-in
/// tools (docs/performance.md).
const PROMPT_BUDGET_BYTES: usize = 4096;
const NOTE: &str = "The staging database listens on port 5433; use the ledgerly_test role.";

/// The content of the result of tool call `id` in request `i`.
fn tool_result(mock: &MockLlm, i: usize, id: &str) -> String {
    let request = mock.request(i);
    let message = request
        .messages()
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
        .unwrap_or_else(|| panic!("no result of {id} in request {i}: {:?}", request.messages()))
        .clone();
    match &message["content"] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

async fn run(install: &Install, args: &[&str]) -> std::process::Output {
    let output = install.openheim(args).await;
    assert!(
        output.status.success(),
        "openheim {args:?} failed: {:?}\n{}",
        output.status,
        stderr(&output)
    );
    output
}

fn call(name: &str, id: &str, args: Value) -> Reply {
    Reply::tool_calls(vec![ToolCallSpec::new(name, args).with_id(id)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_remembered_in_one_run_is_found_by_a_later_run() {
    let mock = MockLlm::start(vec![Reply::text("Hello.")]).await;
    let install = Install::new(&mock, "");
    let database = install.home().join("memory.db");

    // A run that does not touch memory does not create (or open) it, yet
    // the tools are offered, within the prompt budget.
    run(&install, &["run", "hi"]).await;
    assert!(
        !database.exists(),
        "memory.db was created without being used"
    );
    let tools = mock.tool_names(0);
    for name in ["remember", "search_memory", "forget"] {
        assert!(
            tools.iter().any(|t| t == name),
            "{name} not offered: {tools:?}"
        );
    }
    let system = mock.system_prompt(0).unwrap().len();
    let schemas = serde_json::to_string(&mock.request(0).body["tools"])
        .unwrap()
        .len();
    assert!(
        system + schemas < PROMPT_BUDGET_BYTES,
        "system prompt {system} B + tool schemas {schemas} B = {} B",
        system + schemas
    );

    mock.push_reply(call(
        "remember",
        "r1",
        json!({"text": NOTE, "tags": ["staging", "postgres"]}),
    ));
    mock.push_reply(Reply::text("Noted."));
    let first = run(&install, &["run", "remember where staging's database is"]).await;
    let remembered = tool_result(&mock, 2, "r1");
    assert!(
        remembered.starts_with("Remembered note ") && remembered.contains("project scope"),
        "{remembered}"
    );
    assert!(
        stderr(&first).contains("remember: The staging database"),
        "{}",
        stderr(&first)
    );
    assert!(database.exists());

    // A later, separate process finds it by words it does not repeat.
    mock.push_reply(call(
        "search_memory",
        "s1",
        json!({"query": "staging db port"}),
    ));
    mock.push_reply(Reply::dynamic(|request| {
        Reply::text(format!(
            "From memory: {}",
            last_tool_result(request).unwrap_or_default()
        ))
    }));
    let second = run(&install, &["run", "which port does staging use?"]).await;
    let found = tool_result(&mock, 4, "s1");
    let id = remembered
        .trim_start_matches("Remembered note ")
        .split_whitespace()
        .next()
        .unwrap();
    assert!(found.starts_with("1 note (best first):"), "{found}");
    assert!(found.contains(id) && found.contains(NOTE), "{found}");
    assert!(found.contains("[project; staging, postgres; "), "{found}");
    assert!(stdout(&second).contains(NOTE), "{}", stdout(&second));

    // Forgotten in a third run, gone for a fourth.
    mock.push_reply(call("forget", "f1", json!({"id": id})));
    mock.push_reply(Reply::text("Forgotten."));
    run(&install, &["run", "forget it"]).await;
    assert!(tool_result(&mock, 6, "f1").starts_with(&format!("Forgot note {id}: ")));
    mock.push_reply(call(
        "search_memory",
        "s2",
        json!({"query": "staging port"}),
    ));
    mock.push_reply(Reply::text("Nothing."));
    run(&install, &["run", "which port?"]).await;
    assert_eq!(
        tool_result(&mock, 8, "s2"),
        "No notes match \"staging port\"."
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_tool_errors_the_model_can_act_on() {
    let calls = vec![
        ToolCallSpec::new("remember", json!({"text": "   "})).with_id("empty"),
        ToolCallSpec::new("remember", json!({"text": "x".repeat(4001)})).with_id("long"),
        ToolCallSpec::new("forget", json!({"id": "0123456789ab"})).with_id("unknown"),
        ToolCallSpec::new("remember", json!({"note": "wrong field"})).with_id("args"),
        ToolCallSpec::new("search_memory", json!({"query": "the of"})).with_id("stop"),
    ];
    let mock = MockLlm::start(vec![Reply::tool_calls(calls), Reply::text("I see.")]).await;
    let install = Install::new(&mock, "");
    run(&install, &["run", "try memory"]).await;
    let result = |id| tool_result(&mock, 1, id);
    assert!(
        result("empty").contains("the note is empty"),
        "{}",
        result("empty")
    );
    assert!(
        result("long").contains("4001 characters; the limit is 4000"),
        "{}",
        result("long")
    );
    assert!(
        result("unknown").contains("no note with id \"0123456789ab\"")
            && result("unknown").contains("search_memory shows note ids"),
        "{}",
        result("unknown")
    );
    assert!(
        result("args").contains("missing field `text`"),
        "{}",
        result("args")
    );
    assert!(
        result("stop").contains("no words to search for"),
        "{}",
        result("stop")
    );
    // One result per call, in order.
    let request = mock.request(1);
    let errors = request
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .count();
    assert_eq!(errors, 5);
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_sessions_search_but_never_write() {
    let mock = MockLlm::start(vec![
        call("remember", "w", json!({"text": "Plan mode note."})),
        Reply::text("Could not."),
    ])
    .await;
    let install = Install::new(&mock, "");
    run(&install, &["run", "remember something", "--read-only"]).await;
    let tools = mock.tool_names(0);
    assert!(tools.iter().any(|t| t == "search_memory"), "{tools:?}");
    assert!(
        !tools.iter().any(|t| t == "remember" || t == "forget"),
        "{tools:?}"
    );
    let refused = tool_result(&mock, 1, "w");
    assert!(refused.contains("not available"), "{refused}");
    assert!(!install.home().join("memory.db").exists());
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_database_is_an_error_result_and_stays_untouched() {
    let mock = MockLlm::start(vec![
        call("remember", "r", json!({"text": "A note."})),
        Reply::text("Memory is broken."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let database = install.home().join("memory.db");
    let garbage = b"not a database at all ".repeat(100);
    std::fs::write(&database, &garbage).unwrap();
    let output = run(&install, &["run", "remember"]).await;
    let result = tool_result(&mock, 1, "r");
    assert!(
        result.contains("unreadable")
            && result.contains("memory.db")
            && result.contains("tell the user"),
        "{result}"
    );
    assert_eq!(std::fs::read(&database).unwrap(), garbage);
    assert!(stdout(&output).contains("Memory is broken."));
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_can_be_turned_off() {
    let mock = MockLlm::start(vec![Reply::text("Hello.")]).await;
    let install = Install::new(&mock, "[memory]\nenabled = false\n");
    run(&install, &["run", "hi"]).await;
    let tools = mock.tool_names(0);
    assert!(
        !tools
            .iter()
            .any(|t| t.contains("memory") || t == "remember"),
        "{tools:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_embeddings_search_finds_notes_by_meaning_and_survives_their_failure() {
    let mock = MockLlm::start(vec![
        call(
            "remember",
            "r",
            json!({"text": "Park the car on level 2 of the garage."}),
        ),
        Reply::text("Noted."),
        call("search_memory", "s", json!({"query": "automobile"})),
        Reply::text("Found."),
        call("search_memory", "t", json!({"query": "garage level"})),
        Reply::text("Found again."),
    ])
    .await;
    let install = Install::new(&mock, "[memory]\nembeddings = \"mock/embed-model\"\n");
    run(&install, &["run", "remember where to park"]).await;
    run(&install, &["run", "where is the automobile?"]).await;
    let found = tool_result(&mock, 3, "s");
    assert!(found.contains("Park the car"), "{found}");
    let embedded = mock.embedding_requests();
    assert_eq!(embedded.len(), 2, "one for the note, one for the query");
    assert_eq!(embedded[0].body["model"], "embed-model");
    assert_eq!(embedded[1].body["input"], json!(["automobile"]));

    // The embeddings model fails: full-text search still answers.
    mock.fail_embeddings(Some(400));
    run(&install, &["run", "where is the car?"]).await;
    let found = tool_result(&mock, 5, "t");
    assert!(found.contains("Park the car"), "{found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_redis_share_their_notes() {
    use crate::e2e::redis_store::{Replicas, client, new_session, start_turn};
    use openheim_e2e::RedisServer;
    use openheim_proto::agent_loop::v1::{ApprovalMode, ForgetMemoryRequest, ListMemoryRequest};

    let mock = MockLlm::start(vec![
        call("remember", "r", json!({"text": NOTE, "tags": ["staging"]})),
        Reply::text("Noted."),
        call(
            "search_memory",
            "s",
            json!({"query": "staging database port"}),
        ),
        Reply::text("Found."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let redis = RedisServer::start();
    let replicas =
        Replicas::start_with(&install, &mock, &redis, 30, "[memory]\nenabled = true\n").await;

    // Remembered in a session on A, found by a new session on B.
    let on_a = new_session(&replicas.a, ApprovalMode::Auto).await;
    start_turn(&replicas.a, &on_a, "remember the port")
        .await
        .finish()
        .await;
    let on_b = new_session(&replicas.b, ApprovalMode::Auto).await;
    start_turn(&replicas.b, &on_b, "which port?")
        .await
        .finish()
        .await;
    let found = tool_result(&mock, 3, "s");
    assert!(
        found.starts_with("1 note") && found.contains(NOTE),
        "{found}"
    );

    // Front ends see the same notes through either replica.
    let listed = client(&replicas.b)
        .list_memory(ListMemoryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.notes.len(), 1, "{listed:?}");
    assert_eq!(listed.project, install.workspace().display().to_string());
    let id = listed.notes[0].id.clone();
    let forgotten = client(&replicas.a)
        .forget_memory(ForgetMemoryRequest {
            id: id.clone(),
            owner: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(forgotten.text, NOTE);
    let searched = client(&replicas.b)
        .list_memory(ListMemoryRequest {
            query: "staging".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(searched.notes.is_empty(), "{searched:?}");
    let again = client(&replicas.b)
        .forget_memory(ForgetMemoryRequest {
            id,
            owner: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound, "{again:?}");
    // Nothing went to a file: the notes live in Redis.
    assert!(!install.home().join("memory.db").exists());
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_searches_and_forgets_notes() {
    let mock = MockLlm::start(vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("remember", json!({"text": NOTE, "tags": ["staging"]})),
            ToolCallSpec::new(
                "remember",
                json!({"text": "Answer in short sentences.", "scope": "user"}),
            ),
        ]),
        Reply::text("Noted both."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let empty = run(&install, &["memory", "list"]).await;
    assert_eq!(stdout(&empty), "");
    assert!(stderr(&empty).contains("no notes"), "{}", stderr(&empty));
    run(&install, &["run", "remember two things"]).await;

    let listed = stdout(&run(&install, &["memory", "list"]).await);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("  user     ") && l.ends_with("Answer in short sentences.")),
        "{listed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("  project  ") && l.contains("[staging]  The staging database")),
        "{listed}"
    );

    let found = stdout(&run(&install, &["memory", "search", "staging port"]).await);
    assert_eq!(found.lines().count(), 1, "{found}");
    let id = found.split_whitespace().next().unwrap().to_owned();
    let json: Value = serde_json::from_str(&stdout(
        &run(&install, &["memory", "search", "staging", "--json"]).await,
    ))
    .unwrap();
    assert_eq!(json[0]["id"], id.as_str());
    assert_eq!(json[0]["text"], NOTE);

    let forgot = run(&install, &["memory", "forget", &id]).await;
    assert!(
        stderr(&forgot).starts_with(&format!("forgot {id}")),
        "{}",
        stderr(&forgot)
    );
    let again = install.openheim(&["memory", "forget", &id]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains(&format!("no note with id \"{id}\"")),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        stdout(&run(&install, &["memory", "list"]).await)
            .lines()
            .count(),
        1
    );
    let bad = install
        .openheim(&["memory", "search", "x", "--limit", "50"])
        .await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    mock.assert_no_violations();
}
