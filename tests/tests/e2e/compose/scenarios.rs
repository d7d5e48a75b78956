//! The scenario battery of `make compose-e2e` (docs/deployment.md records
//! its numbers). Each prints one `compose-e2e:` line with what it measured.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::stack::{SERVICES, Stack, transcript};
use crate::e2e::gateway::support::{WsClient, permission_answer};

/// The workspace root every session lives in (the `workspace` volume).
const WORKSPACE: &str = "/workspace";

/// How long a dead replica's turn lease may keep a session busy (its TTL,
/// 30 s, plus a margin).
const BUSY_WAIT: Duration = Duration::from_secs(45);

/// What one prompt ended with: the stop reason and the agent's text, or the
/// JSON-RPC error.
type Outcome = Result<(String, String), Value>;

/// `initialize` then `session/new`: the session id, or the error.
async fn new_session(client: &mut WsClient) -> Result<String, Value> {
    let init = client
        .request(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {}}),
        )
        .await;
    if init.get("error").is_some() {
        return Err(init);
    }
    let new = client
        .request("session/new", json!({"cwd": WORKSPACE, "mcpServers": []}))
        .await;
    new["result"]["sessionId"]
        .as_str()
        .map(str::to_owned)
        .ok_or(new)
}

/// `initialize` then `session/load` of `session` on a new socket (a
/// session is served on the connection that created or loaded it).
async fn load_session(client: &mut WsClient, session: &str) -> Result<(), Value> {
    client
        .request(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {}}),
        )
        .await;
    let params = json!({"sessionId": session, "cwd": WORKSPACE, "mcpServers": []});
    let loaded = client.request("session/load", params).await;
    if loaded.get("error").is_some() {
        return Err(loaded);
    }
    Ok(())
}

/// Sends a prompt and reads until its answer, allowing every tool call.
async fn prompt(client: &mut WsClient, session: &str, text: &str) -> Outcome {
    let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]});
    let id = client.send_request("session/prompt", params).await;
    finish_prompt(client, id).await
}

async fn finish_prompt(client: &mut WsClient, id: u64) -> Outcome {
    let mut said = String::new();
    loop {
        let message = client.next_agent().await;
        match message["method"].as_str() {
            Some("session/update") => {
                let update = &message["params"]["update"];
                if update["sessionUpdate"] == "agent_message_chunk" {
                    said.push_str(update["content"]["text"].as_str().unwrap_or_default());
                }
            }
            Some("session/request_permission") => {
                client
                    .send_agent(permission_answer(&message, "allow_once"))
                    .await;
            }
            Some(_) => {}
            None if message["id"] == id => {
                return match message["result"]["stopReason"].as_str() {
                    Some(stop) => Ok((stop.to_owned(), said)),
                    None => Err(message),
                };
            }
            None => {}
        }
    }
}

/// A unique word for this run, so scenarios never see each other's data.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{nanos}")
}

async fn stored(stack: &Stack, session: &str) -> Vec<String> {
    let (status, body) = stack.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(status, 200, "{body}");
    transcript(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: make compose-e2e"]
async fn a_files_turn_over_ws_is_one_trace_across_all_five_services() {
    let stack = Stack::from_env();
    stack.wait_ready().await;
    let file = format!("{}.txt", unique("note"));
    let mut client = stack.connect().await;
    let session = new_session(&mut client).await.unwrap();
    let (stop, said) = prompt(&mut client, &session, &format!("write {file} hello"))
        .await
        .unwrap();
    assert_eq!(
        (stop.as_str(), said.as_str()),
        ("end_turn", &*format!("Wrote {file}."))
    );
    // The file is in the workspace volume, as the tool-executor sees it.
    let path = format!("{WORKSPACE}/{file}");
    let content = stack.podman(&["exec", &stack.container("tool-executor"), "cat", &path]);
    assert_eq!(content, "hello");
    client.close().await;
    // Without a token the socket is refused.
    let url = format!("{}/ws", stack.gateway.replacen("http", "ws", 1));
    let refused = WsClient::connect(&url, &[], crate::e2e::gateway::support::Framing::Envelope);
    assert!(
        refused.await.is_err(),
        "a socket without the token was accepted"
    );

    // One trace holds spans of all five services: the socket's span (the
    // gateway's, ended when the socket closes) parents its calls. Exports
    // are batched.
    let start = Instant::now();
    let services = loop {
        let spans = stack.spans().await;
        let mut by_trace: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for span in &spans {
            by_trace
                .entry(span["trace_id"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .insert(span["service"].as_str().unwrap_or_default().to_owned());
        }
        let widest = by_trace
            .into_values()
            .max_by_key(BTreeSet::len)
            .unwrap_or_default();
        if widest.len() == SERVICES.len() || start.elapsed() > Duration::from_secs(30) {
            break widest;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let expected: BTreeSet<String> = SERVICES.iter().map(|s| format!("openheim-{s}")).collect();
    assert_eq!(services, expected, "the widest trace");
    assert_eq!(stack.llm_violations().await, Vec::<Value>::new());
    println!(
        "compose-e2e: files turn over /ws: one trace across {} services",
        services.len()
    );
}

/// Requests sent one after another while Redis restarts: none may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: make compose-e2e"]
async fn redis_restarted_mid_session_fails_no_request() {
    let stack = Stack::from_env();
    stack.wait_ready().await;
    let mut client = stack.connect().await;
    let session = new_session(&mut client).await.unwrap();
    prompt(&mut client, &session, "before the restart")
        .await
        .unwrap();

    let redis = stack.container("redis");
    let restart = stack.podman_in_background(&["restart", &redis]);
    let (mut sent, mut failed) = (0, Vec::new());
    let mut after_restart = 0;
    // Until the restart is over, then five rounds more against the new Redis.
    while after_restart < 5 {
        if restart.is_finished() {
            after_restart += 1;
        }
        sent += 2;
        let text = unique("during");
        if let Err(e) = prompt(&mut client, &session, &text).await {
            failed.push(e);
        }
        match new_session(&mut client).await {
            Ok(_) => {}
            Err(e) => failed.push(e),
        }
    }
    restart.await.unwrap();
    println!(
        "compose-e2e: redis restart: {sent} requests sent, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "requests failed: {failed:#?}");
    let messages = stored(&stack, &session).await;
    assert_eq!(
        messages.first().map(String::as_str),
        Some("user: before the restart")
    );
}

/// `kill -9` of the agent-loop process while a turn waits for the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: make compose-e2e"]
async fn agent_loop_killed_mid_turn_loses_and_duplicates_nothing() {
    let stack = Stack::from_env();
    stack.wait_ready().await;
    let mut client = stack.connect().await;
    let session = new_session(&mut client).await.unwrap();
    let first = format!("{}.txt", unique("first"));
    prompt(&mut client, &session, &format!("write {first} one"))
        .await
        .unwrap();
    let before = stored(&stack, &session).await;

    let slow = format!("slow 20000 {}", unique("never"));
    let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": slow}]});
    let id = client.send_request("session/prompt", params).await;
    stack.wait_for_llm_request(&slow).await;
    let started = stack.started_at("agent-loop");
    // The service process itself (tini's child), as a crash would end it.
    let pid = stack.podman(&[
        "inspect",
        "--format",
        "{{.State.Pid}}",
        &stack.container("agent-loop"),
    ]);
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let child = children
        .split_whitespace()
        .next()
        .expect("tini has a child");
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The client is told: the prompt ends with an error.
    let told = finish_prompt(&mut client, id).await;
    let told_after = killed.elapsed();
    let error = told.expect_err("a killed turn reported success");
    assert!(error["error"]["message"].is_string(), "{error}");

    // The restart policy brings it back; the session continues.
    let back = stack.wait_ready().await;
    assert_ne!(stack.started_at("agent-loop"), started, "not restarted");
    let mut client = stack.connect().await;
    load_session(&mut client, &session).await.unwrap();
    // The dead process's turn lease lapses within its TTL (30 s); until
    // then the session is refused as busy, as documented.
    let second = format!("{}.txt", unique("second"));
    let retried = Instant::now();
    let stop = loop {
        match prompt(&mut client, &session, &format!("write {second} two")).await {
            Ok((stop, _)) => break stop,
            Err(e) if e.to_string().contains("busy") && retried.elapsed() < BUSY_WAIT => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("the session does not continue: {e}"),
        }
    };
    let free_after = retried.elapsed();
    assert_eq!(stop, "end_turn");

    // Nothing lost, nothing twice: the first turn as it was, the killed
    // prompt at most once, then the new turn.
    let after = stored(&stack, &session).await;
    assert_eq!(after[..before.len()], before[..], "{after:#?}");
    let user_slow = format!("user: {slow}");
    let slow_count = after.iter().filter(|m| **m == user_slow).count();
    assert!(slow_count <= 1, "{after:#?}");
    let user_second = format!("user: write {second} two");
    assert_eq!(
        after.iter().filter(|m| **m == user_second).count(),
        1,
        "{after:#?}"
    );
    assert_eq!(
        after.last().map(String::as_str),
        Some(&*format!("assistant: Wrote {second}."))
    );
    println!(
        "compose-e2e: agent-loop kill -9: client told after {told_after:.1?}, ready again after {back:.1?}, session free again after {free_after:.1?} more, 0 messages lost, 0 duplicated"
    );
}

/// The gateway is restarted (SIGTERM) while a turn runs: the turn answers,
/// then the socket closes with 1001; the new gateway serves the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: make compose-e2e"]
async fn gateway_restarted_mid_turn_drains_the_running_turn() {
    let stack = Stack::from_env();
    stack.wait_ready().await;
    let mut client = stack.connect().await;
    let session = new_session(&mut client).await.unwrap();
    let text = unique("drained");
    let slow = format!("slow 3000 {text}");
    let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": slow}]});
    let id = client.send_request("session/prompt", params).await;
    stack.wait_for_llm_request(&slow).await;
    let restart =
        stack.podman_in_background(&["restart", "--time", "60", &stack.container("gateway")]);
    let (stop, said) = finish_prompt(&mut client, id).await.unwrap();
    assert_eq!((stop.as_str(), said.as_str()), ("end_turn", text.as_str()));
    let close = client.next_frame().await.unwrap_err();
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    restart.await.unwrap();
    let back = stack.wait_ready().await;
    let mut client = stack.connect().await;
    load_session(&mut client, &session).await.unwrap();
    let (stop, _) = prompt(&mut client, &session, "after the restart")
        .await
        .unwrap();
    assert_eq!(stop, "end_turn");
    println!(
        "compose-e2e: gateway restart mid-turn: the turn answered, then 1001; ready again after {back:.1?}"
    );
}

/// llm-proxy stopped: turns fail with a clear error; started again: turns
/// work, and no other container was restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: make compose-e2e"]
async fn llm_proxy_down_then_up_fails_clearly_then_recovers_alone() {
    let stack = Stack::from_env();
    stack.wait_ready().await;
    let others = [
        "gateway",
        "agent-loop",
        "tool-executor",
        "mcp-broker",
        "redis",
    ];
    let started: Vec<String> = others.iter().map(|s| stack.started_at(s)).collect();
    let proxy = stack.container("llm-proxy");
    stack.podman(&["stop", &proxy]);
    let mut client = stack.connect().await;
    let session = new_session(&mut client).await.unwrap();
    let asked = Instant::now();
    let error = prompt(&mut client, &session, "while it is down")
        .await
        .expect_err("a turn without llm-proxy succeeded");
    let failed_after = asked.elapsed();
    let message = error["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        message.contains("llm") || message.contains("unavailable"),
        "unclear error: {error}"
    );
    stack.podman(&["start", &proxy]);
    let back = stack.wait_ready().await;
    let (stop, said) = prompt(&mut client, &session, "after it is back")
        .await
        .unwrap();
    assert_eq!(
        (stop.as_str(), said.as_str()),
        ("end_turn", "ok: after it is back")
    );
    let now: Vec<String> = others.iter().map(|s| stack.started_at(s)).collect();
    assert_eq!(now, started, "other containers were restarted");
    println!(
        "compose-e2e: llm-proxy down: error after {failed_after:.1?}; up: ready after {back:.1?}, no other restart"
    );
}

/// Checked from inside each openheim container: every process runs as
/// uid 10001 with no capabilities, and the root filesystem is read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: make compose-e2e"]
async fn containers_run_read_only_as_10001_without_capabilities() {
    let stack = Stack::from_env();
    stack.wait_ready().await;
    let check = "for s in /proc/[0-9]*/status; do \
                   grep -E '^(Uid|CapPrm|CapEff|CapBnd|CapAmb):' $s | tr -s '\\t' ' '; done; \
                 if touch /usr/local/bin/x 2>/dev/null; then echo writable; fi; \
                 touch /tmp/x && echo tmp-ok";
    for service in SERVICES {
        let out = stack.podman(&["exec", &stack.container(service), "sh", "-c", check]);
        for line in out.lines() {
            match line.split_once(':') {
                Some(("Uid", ids)) => {
                    assert!(
                        ids.split_whitespace().all(|id| id == "10001"),
                        "{service}: {line}"
                    );
                }
                Some((cap, value)) if cap.starts_with("Cap") => {
                    assert_eq!(value.trim(), "0000000000000000", "{service}: {line}");
                }
                _ => {}
            }
        }
        assert!(out.contains("Uid:"), "{service}: {out}");
        assert!(
            !out.contains("writable"),
            "{service}: the root filesystem is writable"
        );
        assert!(
            out.contains("tmp-ok"),
            "{service}: /tmp is not writable: {out}"
        );
    }
    println!(
        "compose-e2e: {} containers read-only, uid 10001, no capabilities",
        SERVICES.len()
    );
}
