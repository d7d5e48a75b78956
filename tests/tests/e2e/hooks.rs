//! Hooks (docs/automation.md, "Hooks"), against the real binaries: a
//! `pre_tool_use` hook denies `execute_command` with `rm -rf` (the model
//! reads the reason, nothing runs), a hook rewrites a path argument, a
//! hanging hook times out as configured, a `user_prompt_submit` hook adds
//! context and a `post_tool_use` hook annotates a result — in-process and
//! with the services as separate processes (hooks run in tool-executor).

use std::time::{Duration, Instant};

use openheim_e2e::install::{Install, stderr, stdout};
use openheim_e2e::{MockLlm, Reply, ToolCallSpec};
use serde_json::{Value, json};

/// A provider key in the environment of `openheim`; no hook may see it.
const PROVIDER_KEY: &str = "sk-hook-must-not-see-this";

/// Denies commands containing `rm -rf` by exit code 2, the reason on stderr.
const GUARD: &str = r#"#!/bin/sh
input=$(cat)
case "$input" in
  *"rm -rf"*) echo "recursive deletes are not allowed in this workspace" >&2; exit 2 ;;
esac
exit 0
"#;

/// Moves every write into `safe/`, answering replaced arguments as JSON.
const REWRITE: &str = r#"import json, os, sys
event = json.load(sys.stdin)
args = event["arguments"]
args["path"] = os.path.join("safe", os.path.basename(args["path"]))
print(json.dumps({"arguments": args, "reason": "writes go to safe/"}))
"#;

/// Adds context to every prompt, and notes on every result it sees.
const CONTEXT: &str = r#"#!/bin/sh
cat > /dev/null
echo '{"context": "The build uses make."}'
"#;

fn config(workspace_hooks: &str) -> String {
    format!(
        r#"
[[hooks.pre_tool_use]]
name = "guard"
matcher = "execute_command"
command = "sh {workspace_hooks}/guard.sh"

[[hooks.pre_tool_use]]
name = "rewrite"
matcher = "write_file"
command = "/usr/bin/python3 {workspace_hooks}/rewrite.py"

[[hooks.pre_tool_use]]
name = "slow"
matcher = "read_file"
command = "sleep 30"
timeout_secs = 1

[[hooks.user_prompt_submit]]
name = "context"
command = "sh {workspace_hooks}/context.sh"

[[hooks.post_tool_use]]
name = "notes"
matcher = "list_dir"
command = "sh {workspace_hooks}/context.sh"

[[hooks.stop]]
name = "env"
command = "env > {workspace_hooks}/stop-env.txt"
"#
    )
}

fn script() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("execute_command", json!({"command": "rm -rf victim"})),
            ToolCallSpec::new(
                "execute_command",
                json!({"command": "echo allowed > ran.txt"}),
            ),
            ToolCallSpec::new(
                "write_file",
                json!({"path": "original.txt", "content": "moved"}),
            ),
            ToolCallSpec::new("read_file", json!({"path": "victim/keep.txt"})),
            ToolCallSpec::new("list_dir", json!({"path": "."})),
        ]),
        Reply::text("done"),
    ]
}

/// An install whose workspace holds the hooks and a directory to protect.
fn install(mock: &MockLlm) -> (Install, String) {
    let install = Install::new(mock, "");
    let workspace = install.workspace();
    let hooks = workspace.join(".hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("guard.sh"), GUARD).unwrap();
    std::fs::write(hooks.join("rewrite.py"), REWRITE).unwrap();
    std::fs::write(hooks.join("context.sh"), CONTEXT).unwrap();
    std::fs::create_dir_all(workspace.join("victim")).unwrap();
    std::fs::write(workspace.join("victim/keep.txt"), "precious").unwrap();
    let hooks = std::fs::canonicalize(hooks).unwrap();
    (install, config(hooks.to_str().unwrap()))
}

fn tool_results(mock: &MockLlm, request: usize) -> Vec<String> {
    mock.request(request)
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn hooks_decide(install: &Install, mock: &MockLlm) {
    let started = Instant::now();
    let output = install
        .openheim_with_env(
            &["run", "clean up", "--json", "--verbose"],
            &[("OPENAI_API_KEY", PROVIDER_KEY)],
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a hanging hook held the turn: {:?}",
        started.elapsed()
    );
    mock.assert_no_violations();
    let workspace = install.workspace();

    // The guard: nothing was deleted, the model read why; the other
    // command passed the same hook and ran.
    assert_eq!(
        std::fs::read_to_string(workspace.join("victim/keep.txt")).unwrap(),
        "precious"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("ran.txt")).unwrap(),
        "allowed\n"
    );
    let results = tool_results(mock, 1);
    assert_eq!(results.len(), 5, "{results:#?}");
    assert_eq!(
        results[0],
        "Denied by hook \"guard\": recursive deletes are not allowed in this workspace"
    );
    assert!(results[1].contains("exit code: 0"), "{}", results[1]);

    // The rewrite: the file went where the hook said.
    assert!(!workspace.join("original.txt").exists());
    assert_eq!(
        std::fs::read_to_string(workspace.join("safe/original.txt")).unwrap(),
        "moved"
    );

    // The hanging hook: killed after its timeout, the read refused
    // (pre_tool_use fails closed), and reported.
    assert!(
        results[3].starts_with("Denied by hook \"slow\"")
            && results[3].contains("timed out after 1 s"),
        "{}",
        results[3]
    );

    // post_tool_use context reaches the model with the result; the
    // user_prompt_submit context with the prompt.
    assert!(
        results[4].ends_with("[hook notes] The build uses make."),
        "{}",
        results[4]
    );
    let prompt = mock.request(0).messages().to_vec();
    let user = prompt.iter().rev().find(|m| m["role"] == "user").unwrap();
    assert!(
        user.to_string()
            .contains("[context from hook context]\\nThe build uses make."),
        "{user}"
    );

    // The stop hook ran, with the shell's environment: without the key.
    let env = std::fs::read_to_string(workspace.join(".hooks/stop-env.txt")).unwrap();
    assert!(
        !env.contains(PROVIDER_KEY),
        "a hook saw the provider key:\n{env}"
    );
    assert!(env.contains("PATH="), "{env}");

    // Which hook decided what, in the event stream.
    let events: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let decided: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "permission.decided")
        .collect();
    assert_eq!(decided.len(), 5);
    assert_eq!(
        (
            &decided[0]["decision"],
            &decided[0]["by"],
            &decided[0]["hook"]
        ),
        (&json!("deny"), &json!("hook"), &json!("guard"))
    );
    assert_eq!(decided[2]["decision"], "allow");
    assert_eq!(decided[2]["hook"], "rewrite", "{}", decided[2]);
    assert_eq!(
        (&decided[3]["decision"], &decided[3]["hook"]),
        (&json!("deny"), &json!("slow"))
    );
    let hook_notices: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "notice" && e["kind"] == "hook")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        hook_notices
            .iter()
            .any(|n| n.contains("\"slow\"") && n.contains("timed out")),
        "{hook_notices:?}"
    );
    assert!(
        hook_notices
            .iter()
            .any(|n| n.contains("\"rewrite\" replaced the arguments")),
        "{hook_notices:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_in_process() {
    let mock = MockLlm::start(script()).await;
    let (install, hooks) = install(&mock);
    install.write_config(&mock, &hooks);
    hooks_decide(&install, &mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_with_services_as_processes() {
    let mock = MockLlm::start(script()).await;
    let (install, hooks) = install(&mock);
    let _cluster = install.start_cluster(&mock, &hooks).await;
    hooks_decide(&install, &mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_hook_blocks_the_turn_before_the_model_sees_it() {
    let mock = MockLlm::start(vec![Reply::text("never sent")]).await;
    let hooks = r#"
[[hooks.user_prompt_submit]]
name = "no-secrets"
command = "grep -q password && { echo 'prompts must not contain passwords' >&2; exit 2; }; exit 0"
"#;
    let install = Install::new(&mock, hooks);
    let output = install
        .openheim(&["run", "my password is hunter2", "--json"])
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(mock.request_count(), 0);
    let last: Value = serde_json::from_str(stdout(&output).lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "turn.failed");
    assert_eq!(last["error"]["kind"], "hook_denied");
    let message = last["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no-secrets") && message.contains("must not contain passwords"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_runs_say_which_hook_decided() {
    let script = vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "execute_command",
            json!({"command": "rm -rf victim"}),
        )]),
        Reply::text("ok"),
    ];
    let mock = MockLlm::start(script).await;
    let (install, hooks) = install(&mock);
    install.write_config(&mock, &hooks);
    let output = install.openheim(&["run", "clean up", "--verbose"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains(
            "permission: deny execute_command (hook guard): recursive deletes are not allowed in this workspace"
        ),
        "{err}"
    );
    assert!(install.workspace().join("victim/keep.txt").exists());
}
