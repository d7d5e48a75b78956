//! Slash commands and the session title over ACP, driven by the official
//! TypeScript SDK (`tests/acp-sdk/commands.mjs`): the commands offered in
//! `available_commands_update`, commands answered without the model, and
//! the `session_info_update` title from the first prompt.

use openheim_e2e::install::Install;
use openheim_e2e::{MockLlm, Reply};
use serde_json::json;

use super::lifecycle::{observed, run_sdk_script};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_offered_and_answered_and_the_first_prompt_titles_the_session() {
    let mock = MockLlm::start(vec![Reply::text("On it."), Reply::text("Sure.")]).await;
    let install = Install::new(&mock, "");
    let seen = run_sdk_script(&install, "commands.mjs").await;

    let first = observed(&seen, "first");
    assert_eq!(first["titles"], json!(["Fix the parser bug"]), "{first}");
    let offered = first["commands"].as_array().unwrap();
    for name in [
        "compact", "model", "thinking", "skills", "memory", "tools", "mcp",
    ] {
        assert!(
            offered.iter().any(|c| c == name),
            "{name} not offered: {offered:?}"
        );
    }
    // Only the first prompt names the session.
    assert_eq!(observed(&seen, "second")["titles"], json!([]));

    let thinking = observed(&seen, "thinking");
    assert_eq!(thinking["stopReason"], "end_turn");
    assert_eq!(thinking["text"], "Thinking set to high.");
    assert_eq!(thinking["thinking"], json!(["high"]), "{thinking}");
    let model = observed(&seen, "model");
    assert!(
        model["text"].as_str().unwrap().starts_with("Model: "),
        "{model}"
    );
    let tools = observed(&seen, "tools")["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        tools.contains("update_plan") && tools.contains("read_file"),
        "{tools}"
    );
    let bad = observed(&seen, "bad_skills");
    assert_eq!(
        bad["text"], "Usage: /skills [add NAME | remove NAME]",
        "{bad}"
    );

    assert_eq!(observed(&seen, "mcp")["text"], "No MCP servers.");
    assert_eq!(observed(&seen, "memory")["text"], "No memory notes.");

    // Commands never reached the model: two prompts, two calls.
    assert_eq!(mock.request_count(), 2);
    let listed = observed(&seen, "listed");
    assert_eq!(listed["titles"], json!(["Fix the parser bug"]), "{listed}");
    mock.assert_no_violations();
}
