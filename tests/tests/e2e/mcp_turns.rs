//! MCP in full `openheim run` turns with late servers and rich results:
//! a stdio server that is slow to start does not hold up the first model
//! call, and its tools join the turn at a later call with a notice; the
//! reference server `@modelcontextprotocol/server-everything` returns an
//! image and structured content, which reach the model as an image and as
//! JSON text, and the model reads one of its resources.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openheim_e2e::install::{stderr, stdout};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec, bin_path, last_tool_result};
use serde_json::{Value, json};

use super::mcp::{everything_entry, node_available};

/// Whether the request `body` (OpenAI chat format) offers tool `name`.
fn offers(body: &Value, name: &str) -> bool {
    body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == name))
}

/// Keeps the model busy for `secs` seconds with a shell command, so the
/// turn makes another model call afterwards.
fn busy(secs: u32) -> Reply {
    Reply::tool_calls(vec![ToolCallSpec::new(
        "execute_command",
        json!({ "command": format!("sleep {secs}") }),
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_joins_the_turn_late_without_delaying_it() {
    let started = Instant::now();
    let first_call_after: Arc<Mutex<Option<Duration>>> = Arc::default();
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    // The server starts only once the file `go` exists in the workspace,
    // which the first model call creates: until then it hangs, like a
    // server stuck at start.
    let go = install.workspace().join("go");
    let slow = format!(
        "[mcp_servers.slow]\ncommand = \"sh\"\nargs = [\"-c\", \"while [ ! -f go ]; do sleep 0.1; done; exec {} stdio\"]\n",
        bin_path("test-mcp-server").display()
    );
    install.write_config(&mock, &slow);
    let seen = Arc::clone(&first_call_after);
    mock.push_reply(Reply::dynamic(move |_| {
        *seen.lock().unwrap() = Some(started.elapsed());
        std::fs::write(&go, "").unwrap();
        busy(3)
    }));
    mock.push_reply(Reply::dynamic(|body| {
        if offers(body, "slow__echo") {
            Reply::tool_calls(vec![ToolCallSpec::new(
                "slow__echo",
                json!({"text": "late"}),
            )])
        } else {
            Reply::text("The late tools never came.")
        }
    }));
    mock.push_reply(Reply::dynamic(|body| {
        let result = last_tool_result(body).unwrap_or_default();
        Reply::text(format!("The server said: {result}"))
    }));

    let output = install
        .openheim(&["run", "--yes", "Echo through the slow server"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();
    // The first call did not wait for the hanging server (it used to wait
    // the 5 s startup grace; now at most 1 s).
    let first = first_call_after.lock().unwrap().unwrap_or(Duration::MAX);
    assert!(
        first < Duration::from_secs(4),
        "first model call after {first:?}"
    );
    assert!(!mock.tool_names(0).iter().any(|t| t.starts_with("slow__")));
    assert!(mock.tool_names(1).iter().any(|t| t == "slow__echo"));
    assert!(
        stdout(&output).contains("The server said: echo: late"),
        "{}",
        stdout(&output)
    );
    // Said once when the turn began, once when the tools joined.
    let err = stderr(&output);
    assert_eq!(
        err.matches("MCP server `slow` is still starting").count(),
        1,
        "{err}"
    );
    let joined: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("MCP server `slow` is ready: added "))
        .collect();
    assert_eq!(joined.len(), 1, "{err}");
    assert!(joined[0].contains("slow__echo"), "{err}");
}

/// The contents of the tool messages of a request (OpenAI chat format).
fn tool_messages(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| m["content"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_structured_content_and_resources_of_mcp_servers_reach_the_model() {
    if !node_available() || !everything_entry().is_file() {
        println!("skipped: node or the reference server is missing; .ci/run installs them");
        return;
    }
    let called = Arc::new(AtomicBool::new(false));
    let calls = || {
        Reply::tool_calls(vec![
            ToolCallSpec::new("everything__get-tiny-image", json!({})).with_id("img"),
            ToolCallSpec::new(
                "everything__get-structured-content",
                json!({"location": "Chicago"}),
            )
            .with_id("weather"),
            ToolCallSpec::new(
                "read_mcp_resource",
                json!({"uri": "demo://resource/static/document/features.md"}),
            )
            .with_id("doc"),
        ])
    };
    let mock = MockLlm::start(Vec::new()).await;
    // Node may take longer than the startup grace: the model then works a
    // moment and the tools join at its next call.
    let first = Arc::clone(&called);
    mock.push_reply(Reply::dynamic(move |body| {
        if offers(body, "everything__get-tiny-image") {
            first.store(true, Ordering::SeqCst);
            calls()
        } else {
            busy(5)
        }
    }));
    let second = Arc::clone(&called);
    mock.push_reply(Reply::dynamic(move |body| {
        if !second.load(Ordering::SeqCst) && offers(body, "everything__get-tiny-image") {
            second.store(true, Ordering::SeqCst);
            calls()
        } else {
            Reply::text("Seen.")
        }
    }));
    mock.push_reply(Reply::text("Seen."));
    let server = format!(
        "[mcp_servers.everything]\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\n",
        everything_entry().display()
    );
    let install = Install::new(&mock, &server);
    install.configure_mock_provider("vision = true");
    let output = install
        .openheim(&["run", "--yes", "Show me the image and the weather"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();
    assert!(
        called.load(Ordering::SeqCst),
        "the reference server's tools never came"
    );
    let last = mock.request(mock.request_count() - 1).body;
    // The image reaches the model as an image part, not as a placeholder.
    let image_parts: Vec<&Value> = last["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|part| part["type"] == "image_url")
        .collect();
    assert_eq!(image_parts.len(), 1, "{last}");
    let url = image_parts[0]["image_url"]["url"]
        .as_str()
        .unwrap_or_default();
    assert!(
        url.starts_with("data:image/png;base64,iVBORw0KGgo"),
        "{url}"
    );
    // The structured content reaches it as JSON.
    let results = tool_messages(&last);
    let weather = results
        .iter()
        .find(|r| r.contains("temperature"))
        .unwrap_or_else(|| panic!("{results:?}"));
    let parsed: Value = serde_json::from_str(weather).unwrap_or_default();
    assert_eq!(
        parsed,
        json!({"temperature": 36, "conditions": "Light rain / drizzle", "humidity": 82})
    );
    // A resource the model read with `read_mcp_resource`.
    assert!(
        results
            .iter()
            .any(|r| r.starts_with("# Everything Server - Features")),
        "{results:?}"
    );
}
