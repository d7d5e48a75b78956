//! The session lifecycle methods of ACP (`session/resume`, `session/close`,
//! `session/delete`) driven by the official TypeScript SDK
//! (`tests/acp-sdk/sessions.mjs`) against the real `openheim acp`.

use std::path::PathBuf;

use openheim_e2e::install::Install;
use openheim_e2e::{MockLlm, Reply, bin_path};
use serde_json::Value;

use super::support::TIMEOUT;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The SDK's entry module (installed for the documented example client).
pub fn sdk_entry() -> PathBuf {
    let entry = repo()
        .join("examples/acp-client/node_modules/@agentclientprotocol/sdk/dist/v1/stable/acp.js");
    assert!(
        entry.is_file(),
        "the ACP SDK is not installed: run `make example-deps`"
    );
    entry
}

/// Runs one of `tests/acp-sdk/*.mjs` against `openheim acp` in `install`;
/// returns its observations by name.
pub async fn run_sdk_script(install: &Install, script: &str) -> Vec<(String, Value)> {
    run_sdk_script_with(install, script, &[]).await
}

/// [`run_sdk_script`] with `extra` arguments after the workspace.
pub async fn run_sdk_script_with(
    install: &Install,
    script: &str,
    extra: &[&str],
) -> Vec<(String, Value)> {
    let workspace = install.workspace();
    let run = tokio::process::Command::new("node")
        .arg(repo().join("tests/acp-sdk").join(script))
        .arg(sdk_entry())
        .arg(bin_path("openheim"))
        .arg(&workspace)
        .args(extra)
        .current_dir(&workspace)
        .env("OPENHEIM_HOME", install.home())
        .env("HOME", install.root.path())
        .env_remove("OPENHEIM_CONFIG")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TIMEOUT, run)
        .await
        .expect("the SDK script did not finish in time")
        .expect("node could not be started");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{out}\n{err}");
    out.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|v| (v["what"].as_str().unwrap_or_default().to_owned(), v))
        .collect()
}

pub fn observed<'a>(seen: &'a [(String, Value)], what: &str) -> &'a Value {
    &seen
        .iter()
        .find(|(w, _)| w == what)
        .unwrap_or_else(|| panic!("no {what:?} in {seen:?}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_close_resume_without_replay_and_delete_with_the_typescript_sdk() {
    let mock = MockLlm::start(vec![
        Reply::text("Noted: tangerine."),
        Reply::text("The word was tangerine."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let seen = run_sdk_script(&install, "sessions.mjs").await;

    let caps = &observed(&seen, "capabilities")["session"];
    for method in ["resume", "close", "delete", "list"] {
        assert!(
            caps.get(method).is_some(),
            "{method} not advertised: {caps}"
        );
    }
    assert_eq!(observed(&seen, "first")["stopReason"], "end_turn");

    // A closed session is no longer open on the connection.
    let closed = &observed(&seen, "prompt_after_close")["error"];
    assert_eq!(closed["code"], -32002, "{closed}");

    // Resuming replays nothing of the conversation: the client keeps its
    // copy; only the session's commands come again.
    let resumed = observed(&seen, "resumed");
    let kinds: Vec<&str> = resumed["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !kinds
            .iter()
            .any(|k| k.ends_with("message_chunk") || k.starts_with("tool_call")),
        "resume replayed the history: {kinds:?}"
    );
    assert!(kinds.contains(&"available_commands_update"), "{kinds:?}");
    assert!(
        resumed["configOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "model"),
        "{resumed}"
    );

    // The resumed session goes on with its history: the model sees the
    // first exchange with the second prompt.
    let second = observed(&seen, "second");
    assert_eq!(second["stopReason"], "end_turn");
    assert_eq!(second["text"], "The word was tangerine.");
    let sent = serde_json::to_string(mock.request(1).messages()).unwrap();
    assert!(sent.contains("remember the word tangerine"), "{sent}");
    assert!(sent.contains("Noted: tangerine."), "{sent}");

    // Deleted: out of the list, out of the store, not found afterwards.
    let id_listed = observed(&seen, "listed")["ids"].as_array().unwrap().clone();
    assert_eq!(id_listed.len(), 1);
    let session_id = id_listed[0].as_str().unwrap().to_owned();
    assert_eq!(observed(&seen, "deleted")["ids"], serde_json::json!([]));
    assert!(!install.history_file(&session_id).exists());
    assert_eq!(observed(&seen, "resume_deleted")["error"]["code"], -32002);
    // The agent answers -32002 to a second deletion, which the SDK takes
    // as done; it must not fail otherwise.
    let again = &observed(&seen, "delete_again")["outcome"];
    assert!(again.get("code").is_none(), "{again}");
    mock.assert_no_violations();
}
