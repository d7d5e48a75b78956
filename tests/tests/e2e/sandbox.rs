//! Workspace boundary and `allow_shell = false`, seen from the model's side.

use openheim_e2e::{MockLlm, Reply, ToolCallSpec, last_tool_result};
use serde_json::json;

use openheim_e2e::install::{Install, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaping_the_workspace_is_a_tool_error() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new(
                "write_file",
                json!({"path": "../escaped.txt", "content": "x"}),
            ),
            ToolCallSpec::new("read_file", json!({"path": "/etc/hostname"})),
        ]),
        Reply::dynamic(|request| {
            Reply::text(format!(
                "result: {}",
                last_tool_result(request).unwrap_or_default()
            ))
        }),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let output = install.openheim(&["run", "escape"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();
    assert!(!install.root.path().join("escaped.txt").exists());
    // Both calls got a result, in call order, each saying why it failed.
    let messages = mock.request(1).messages().to_vec();
    let results: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(results.len(), 2);
    for result in &results {
        assert!(result.contains("outside the workspace"), "{result}");
    }
    assert!(stdout(&output).contains("outside the workspace"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_disabled_is_not_offered_and_refused() {
    let script = vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "execute_command",
            json!({"command": "touch pwned"}),
        )]),
        Reply::text("ok"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "allow_shell = false");
    let output = install.openheim(&["run", "try the shell"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();
    let tools = mock.tool_names(0);
    assert!(!tools.iter().any(|t| t == "execute_command"), "{tools:?}");
    assert!(tools.iter().any(|t| t == "read_file"), "{tools:?}");
    let result = last_tool_result(&mock.request(1).body).unwrap();
    assert!(
        result.contains("\"execute_command\" is not available"),
        "{result}"
    );
    assert!(
        !result.contains("execute_command,"),
        "offered in the refusal: {result}"
    );
    assert!(!install.workspace().join("pwned").exists());
}
