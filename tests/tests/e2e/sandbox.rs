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

/// The programs of `parent`'s children, as `/proc/PID/exe` names them.
fn children_programs(parent: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // `PID (COMM) STATE PPID ...`; COMM may hold spaces.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let exe = std::fs::read_link(dir.join("exe")).ok()?;
            (ppid == parent).then(|| exe.display().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_tool_executor_starts_commands_through_the_sealed_launcher() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    let cluster = install.start_cluster(&mock, "").await;
    let executor = cluster.pid("openheim-tool-executor").unwrap();
    let command = "touch started && sleep 1";
    mock.push_reply(Reply::tool_calls(vec![ToolCallSpec::new(
        "execute_command",
        json!({ "command": command }),
    )]));
    mock.push_reply(Reply::text("done"));
    let run = install.openheim(&["run", "--yes", "run a command"]);
    let watch = async {
        let started = install.workspace().join("started");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !started.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        children_programs(executor)
    };
    let (output, programs) = tokio::join!(run, watch);
    assert!(output.status.success(), "{}", stderr(&output));
    // Not the 50 MB service binary re-executed (`/proc/self/exe`), and not
    // the file on disk: the sealed in-memory copy of `openheim-sandbox`.
    assert!(
        programs
            .iter()
            .any(|p| p.starts_with("/memfd:openheim-sandbox")),
        "the tool-executor's children ran {programs:?}"
    );
    cluster.terminate().await;
}
