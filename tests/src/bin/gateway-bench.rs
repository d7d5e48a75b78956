//! Gateway benchmark: idle WebSocket sessions held by `openheim serve` and
//! their memory, agent chunks relayed per second over `/ws`, and 200
//! sessions taking turns at the same time (turn latency percentiles, turns
//! per second, the server's RSS).
//!
//! `cargo run --release -p openheim-e2e --bin gateway-bench [IDLE_SOCKETS]`
//! (release binaries first: `make bench` does both).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::time::Instant;

use futures::{SinkExt, StreamExt};
use openheim_e2e::{Install, MockLlm, Reply, ServiceProcess, bin_path};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const DEFAULT_IDLE: usize = 10_000;
/// Concurrent sessions, and turns each takes one after another.
const CONCURRENT: usize = 200;
const TURNS_EACH: usize = 3;
/// Text of the streamed answer; the mock sends it in 8-byte chunks.
const ANSWER_BYTES: usize = 400_000;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send_agent(ws: &mut Ws, message: Value) {
    let frame = json!({"channel": "agent", "data": message}).to_string();
    ws.send(Message::Text(frame.into())).await.unwrap();
}

/// The next agent-channel message.
async fn next_agent(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["channel"] == "agent" {
                    return frame["data"].clone();
                }
            }
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

async fn request(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    send_agent(
        ws,
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
    .await;
    loop {
        let message = next_agent(ws).await;
        if message["id"] == id {
            return message;
        }
    }
}

/// Streams one long answer; returns (chunks, seconds).
async fn relay(url: &str, workspace: &std::path::Path) -> (usize, f64) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    request(
        &mut ws,
        1,
        "initialize",
        json!({"protocolVersion": 1, "clientCapabilities": {}}),
    )
    .await;
    let new = request(
        &mut ws,
        2,
        "session/new",
        json!({"cwd": workspace, "mcpServers": []}),
    )
    .await;
    let session = new["result"]["sessionId"].as_str().unwrap().to_owned();
    let prompt = json!({"sessionId": session, "prompt": [{"type": "text", "text": "go"}]});
    let started = Instant::now();
    send_agent(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 3, "method": "session/prompt", "params": prompt}),
    )
    .await;
    let mut chunks = 0;
    loop {
        let message = next_agent(&mut ws).await;
        if message["id"] == 3 {
            assert_eq!(message["result"]["stopReason"], "end_turn", "{message}");
            break;
        }
        if message["params"]["update"]["sessionUpdate"] == "agent_message_chunk" {
            chunks += 1;
        }
    }
    (chunks, started.elapsed().as_secs_f64())
}

/// A session on a socket of its own.
async fn open_session(url: &str, workspace: &std::path::Path) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let init = json!({"protocolVersion": 1, "clientCapabilities": {}});
    request(&mut ws, 1, "initialize", init).await;
    let new = json!({"cwd": workspace, "mcpServers": []});
    let new = request(&mut ws, 2, "session/new", new).await;
    let session = new["result"]["sessionId"].as_str().unwrap().to_owned();
    (ws, session)
}

/// `turns` prompts in a row on one session; the wall time of each.
async fn take_turns(mut ws: Ws, session: String, turns: usize) -> Vec<f64> {
    let mut times = Vec::with_capacity(turns);
    for turn in 0..turns {
        let prompt = json!({"sessionId": session, "prompt": [{"type": "text", "text": "hi"}]});
        let started = Instant::now();
        let answer = request(&mut ws, 3 + turn as u64, "session/prompt", prompt).await;
        assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

/// `CONCURRENT` sessions taking `TURNS_EACH` turns each, all at once.
async fn concurrent_turns(url: &str, workspace: &std::path::Path, mock: &MockLlm, pid: u32) {
    for _ in 0..CONCURRENT * TURNS_EACH {
        mock.push_reply(Reply::text("Done: the change is in place."));
    }
    let before = rss_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let watch = {
        let peak = std::sync::Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    // Opened one by one (the gateway limits handshakes in progress per
    // address), then all take their turns at once.
    let mut sessions = Vec::with_capacity(CONCURRENT);
    for _ in 0..CONCURRENT {
        sessions.push(open_session(url, workspace).await);
    }
    let started = Instant::now();
    let clients: Vec<_> = sessions
        .into_iter()
        .map(|(ws, session)| tokio::spawn(take_turns(ws, session, TURNS_EACH)))
        .collect();
    let mut times = Vec::with_capacity(CONCURRENT * TURNS_EACH);
    for client in clients {
        times.extend(client.await.unwrap());
    }
    let wall = started.elapsed().as_secs_f64();
    watch.abort();
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "| {CONCURRENT} sessions × {TURNS_EACH} turns at once | {} turns in {wall:.2} s = {:.0} turns/s; turn p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        times.len(),
        times.len() as f64 / wall,
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
    );
    println!(
        "| server RSS before → peak during them | {:.1} MiB → {:.1} MiB |",
        before as f64 / 1024.0,
        peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let idle: usize = std::env::args()
        .nth(1)
        .map_or(DEFAULT_IDLE, |a| a.parse().unwrap());
    let answer = "x".repeat(ANSWER_BYTES);
    let mock = MockLlm::start(vec![Reply::text(answer)]).await;
    let install = Install::new(&mock, "");
    let extra = format!("work_dir = {:?}", install.workspace().display().to_string());
    install.write_config(&mock, &extra);
    let home = install.home();
    let env = [
        ("OPENHEIM_HOME", home.to_str().unwrap()),
        ("RUST_LOG", "warn"),
    ];
    let server = ServiceProcess::spawn_program(&bin_path("openheim"), &["serve"], &env).await;
    let pid = server.id().unwrap();
    let url = format!("ws://{}/ws", server.addr());

    let (chunks, secs) = relay(&url, &install.workspace()).await;
    println!(
        "| chunks relayed (mock → llm-proxy → agent-loop → ACP → /ws) | {chunks} in {secs:.2} s = {:.0} chunks/s |",
        chunks as f64 / secs
    );

    concurrent_turns(&url, &install.workspace(), &mock, pid).await;

    let before = rss_kib(pid);
    let mut sockets = Vec::with_capacity(idle);
    let started = Instant::now();
    for _ in 0..idle {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        sockets.push(ws);
    }
    let opened = started.elapsed().as_secs_f64();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / idle as f64;
    println!("| idle /ws sessions held | {idle} (opened in {opened:.1} s) |");
    println!(
        "| server RSS before → with them | {:.1} MiB → {:.1} MiB |",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    println!("| RSS per idle session | {:.1} KiB |", per / 1024.0);
    drop(sockets);
}
