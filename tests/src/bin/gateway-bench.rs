//! Gateway benchmark: idle WebSocket sessions held by `openheim serve` and
//! their memory, and agent chunks relayed per second over `/ws`.
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
