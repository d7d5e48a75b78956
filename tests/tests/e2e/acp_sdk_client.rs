//! The documented ACP client (`examples/acp-client/client.mjs`, written with
//! the official TypeScript SDK, docs/acp.md) against the real `openheim acp`:
//! a prompt whose answer writes a file through the client, a permission
//! question answered once, the streamed text and the stop reason.
//!
//! Needs `node` and `make example-deps` (`npm ci --prefix
//! examples/acp-client`), which the README's test command runs.

use std::path::PathBuf;
use std::time::Duration;

use openheim_e2e::install::Install;
use openheim_e2e::{MockLlm, Reply, ToolCallSpec, bin_path};
use serde_json::json;

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/acp-client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_typescript_client_runs_a_turn_with_a_file_write() {
    let dir = example_dir();
    assert!(
        dir.join("node_modules/@agentclientprotocol/sdk/package.json")
            .is_file(),
        "the ACP example client's SDK is not installed: run `make example-deps`"
    );
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new(
                "write_file",
                json!({"path": "hello.txt", "content": "hello from openheim\n"}),
            )
            .with_id("w1"),
        ]),
        Reply::text("I wrote hello.txt."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    let run = tokio::process::Command::new("node")
        .arg(dir.join("client.mjs"))
        .arg("--openheim")
        .arg(bin_path("openheim"))
        .arg("--cwd")
        .arg(&workspace)
        .arg("write hello.txt")
        .current_dir(&workspace)
        .env("OPENHEIM_HOME", install.home())
        .env("HOME", install.root.path())
        .env_remove("OPENHEIM_CONFIG")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the example client did not finish in 60 s")
        .expect("node could not be started (apt-get install nodejs)");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{out}\n{err}");
    assert!(out.contains("[agent] openheim "), "{out}");
    assert!(out.contains("[permission] "), "{out}");
    assert!(out.contains("[tool] w1: completed"), "{out}");
    assert!(out.contains("I wrote hello.txt."), "{out}");
    assert!(out.contains("[stop] end_turn"), "{out}");
    // The write went through the client (it serves fs/write_text_file).
    assert_eq!(
        std::fs::read_to_string(workspace.join("hello.txt")).unwrap(),
        "hello from openheim\n"
    );
    mock.assert_no_violations();
}
