//! `openheim acp` against a hostile or hasty client: a 64 MiB line is
//! rejected fast, with bounded memory, without delaying the requests after
//! it; a request pipelined right behind `initialize` is queued, not refused.

use std::time::{Duration, Instant};

use serde_json::json;

use super::support::RawAgent;
use openheim_e2e::{Install, MockLlm};

const GARBAGE_BYTES: usize = 64 * 1024 * 1024;

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_line_is_rejected_fast_with_bounded_memory() {
    let mock = MockLlm::start(vec![]).await;
    let install = Install::new(&mock, "");
    let mut agent = RawAgent::spawn(&install);
    let pid = agent.process.child.id().unwrap();
    let init = json!({"protocolVersion": 1, "clientCapabilities": {}});
    agent.request(json!(1), "initialize", init).await;
    let before = peak_rss(pid);
    for (n, first) in [b'x', b'{'].into_iter().enumerate() {
        let mut line = vec![b'x'; GARBAGE_BYTES];
        line[0] = first;
        let started = Instant::now();
        agent.send_line(&line).await;
        drop(line);
        // The line is answered with a short parse error, and the next
        // request is not kept waiting.
        let error = agent.next_message().await;
        assert_eq!(error["error"]["code"], -32700, "{}", short(&error));
        assert!(error.to_string().len() < 1024, "{}", short(&error));
        let id = json!(10 + n);
        let listed = agent.request(id, "session/list", json!({})).await;
        assert!(listed["result"]["sessions"].is_array(), "{listed}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "line {n} took {took:?}");
    }
    let grown = peak_rss(pid).saturating_sub(before);
    assert!(
        grown < 48 * 1024 * 1024,
        "peak memory grew by {} MiB",
        grown / (1024 * 1024)
    );
    agent.close_stdin();
    assert_eq!(agent.process.exit_code().await, 0);
}

fn short(value: &serde_json::Value) -> String {
    value.to_string().chars().take(300).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_pipelined_behind_initialize_is_queued() {
    let mock = MockLlm::start(vec![]).await;
    let install = Install::new(&mock, "");
    let mut agent = RawAgent::spawn(&install);
    // Both in one write: the client does not wait for the first answer.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": 1, "clientCapabilities": {}}});
    let new = json!({"jsonrpc": "2.0", "id": 2, "method": "session/new",
        "params": {"cwd": install.workspace(), "mcpServers": []}});
    agent.send_raw(format!("{init}\n{new}\n").as_bytes()).await;
    let initialized = agent.response(&json!(1)).await;
    assert_eq!(initialized["result"]["protocolVersion"], 1, "{initialized}");
    let created = agent.response(&json!(2)).await;
    assert!(
        created["result"]["sessionId"].is_string(),
        "the pipelined request was refused: {created}"
    );
    agent.close_stdin();
    assert_eq!(agent.process.exit_code().await, 0);
}

/// Over the gateway's `/acp` socket too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_pipelined_behind_initialize_on_the_socket_is_queued() {
    use crate::e2e::gateway::support::{Framing, Server};
    let server = Server::start(Vec::new(), "").await;
    let mut client = server.connect("/acp", Framing::Bare).await;
    let init = client
        .send_request(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {}}),
        )
        .await;
    let cwd = server.install.workspace();
    let new = client
        .send_request("session/new", json!({"cwd": cwd, "mcpServers": []}))
        .await;
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let message = client.next_agent().await;
        if message.get("method").is_none() {
            answers.push(message);
        }
    }
    let created = answers.iter().find(|a| a["id"] == new).unwrap();
    assert!(created["result"]["sessionId"].is_string(), "{created}");
    assert!(
        answers
            .iter()
            .any(|a| a["id"] == init && a["result"].is_object())
    );
    client.close().await;
}
