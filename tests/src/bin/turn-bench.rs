//! Turn-overhead benchmark: the real `openheim run` against a zero-latency
//! mock provider, in-process and with the services as separate processes.
//!
//! Task A: 4 LLM calls and 3 tool calls (write_file, read_file,
//! execute_command, then the answer). Task B: a one-call answer.
//! Prints a markdown table (median / p90 wall time, peak RSS of the CLI
//! process). Build release binaries first (`make bench` does).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use nix::sys::resource::{UsageWho, getrusage};
use openheim::Runtime;
use openheim_e2e::install::timed;
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};
use openheim_proto::agent_loop::v1::{
    ApprovalMode, CreateSessionRequest, StartTurn, TurnInput, turn_event::Event, turn_input::Input,
};
use openheim_proto::common::v1::{ContentBlock, content_block::Block};
use openheim_proto::llm_proxy::v1::{ResolveModelRequest, llm_proxy_client::LlmProxyClient};
use openheim_proto::transport::GrpcChannel;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

const RUNS: usize = 30;
/// Calls timed for one round-trip figure.
const ROUND_TRIPS: usize = 2000;

fn task_a() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            json!({"path": "notes.txt", "content": "benchmark\n"}),
        )]),
        Reply::tool_calls(vec![ToolCallSpec::new(
            "read_file",
            json!({"path": "notes.txt"}),
        )]),
        Reply::tool_calls(vec![ToolCallSpec::new(
            "execute_command",
            json!({"command": "wc -c notes.txt"}),
        )]),
        Reply::text("notes.txt holds 10 bytes."),
    ]
}

fn task_b() -> Vec<Reply> {
    vec![Reply::text("Hello! How can I help?")]
}

/// Peak resident set of any child waited for so far, in MiB.
fn children_peak_rss_mib() -> f64 {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    usage.max_rss() as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn measure(
    install: &Install,
    mock: &MockLlm,
    script: fn() -> Vec<Reply>,
) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..=RUNS {
        for reply in script() {
            mock.push_reply(reply);
        }
        let (output, took) = timed(install, &["run", "benchmark task"]).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if i > 0 {
            times.push(took); // the first run warms the page cache
        }
    }
    mock.assert_no_violations();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.9))
}

/// Per-turn wall time from a long-lived client: no process start-up.
async fn measure_turns(
    runtime: &Runtime,
    mock: &MockLlm,
    script: fn() -> Vec<Reply>,
) -> (Duration, Duration) {
    let mut client = runtime.agent_loop();
    let request = CreateSessionRequest {
        approval_mode: ApprovalMode::Auto as i32,
        ..Default::default()
    };
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..=RUNS {
        // A fresh session per turn so history length stays the same.
        let session = client
            .create_session(request.clone())
            .await
            .unwrap()
            .into_inner()
            .id;
        for reply in script() {
            mock.push_reply(reply);
        }
        let started = Instant::now();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let prompt = vec![ContentBlock {
            block: Some(Block::Text("benchmark task".into())),
        }];
        tx.send(TurnInput {
            input: Some(Input::Start(StartTurn {
                session_id: session,
                prompt,
                client_capabilities: None,
                ..StartTurn::default()
            })),
        })
        .await
        .unwrap();
        let mut events = client
            .turn(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        while let Some(event) = events.next().await {
            match event.unwrap().event {
                Some(Event::Ended(_)) => break,
                Some(Event::Error(e)) => panic!("{}", e.message),
                _ => {}
            }
        }
        if i > 0 {
            times.push(started.elapsed());
        }
    }
    mock.assert_no_violations();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.9))
}

fn runtime_for(install: &Install) -> Runtime {
    let mut config = openheim_config::load(&openheim_config::LoadOptions {
        file: Some(install.home().join("config.toml")),
        file_required: true,
        ..Default::default()
    })
    .unwrap();
    config.work_dir = Some(install.workspace());
    config.data_dir = Some(install.home());
    Runtime::start(&config).unwrap()
}

/// Median time of one `LlmProxy.ResolveModel` call over `channel`: what a
/// round trip to a service costs, in-process or to another process over
/// loopback (the call itself is a lookup in memory).
async fn round_trip(channel: GrpcChannel) -> Duration {
    let mut client = LlmProxyClient::new(channel);
    let request = || ResolveModelRequest {
        model: String::new(),
    };
    for _ in 0..100 {
        client.resolve_model(request()).await.unwrap();
    }
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        client.resolve_model(request()).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    percentile(&times, 0.5)
}

/// Median time of a 40-byte ping-pong over loopback TCP with an echo
/// thread (blocking sockets, `TCP_NODELAY`): the floor under a gRPC round
/// trip, what the kernel's loopback and a thread wake-up cost.
fn tcp_round_trip() -> Duration {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket.set_nodelay(true).unwrap();
        let mut buf = [0_u8; 64];
        while let Ok(n @ 1..) = socket.read(&mut buf) {
            if socket.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_nodelay(true).unwrap();
    let (ping, mut pong) = ([7_u8; 40], [0_u8; 40]);
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + 100 {
        let started = Instant::now();
        socket.write_all(&ping).unwrap();
        socket.read_exact(&mut pong).unwrap();
        if i >= 100 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    percentile(&times, 0.5)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // Like `openheim` and `openheim-tool-executor`: shell commands start
    // through the namespace launcher, so the in-process turn does the same
    // work as the distributed one and their difference is the transport.
    openheim_sandbox::launcher::enter_if_requested();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    println!("| scenario | median | p90 | peak RSS (CLI) |");
    println!("|---|---|---|---|");
    // One-call answer first: peak RSS only grows, so this order isolates it.
    let (b50, b90) = measure(&install, &mock, task_b).await;
    let rss_b = children_peak_rss_mib();
    let (a50, a90) = measure(&install, &mock, task_a).await;
    let rss_a = children_peak_rss_mib();
    println!(
        "| in-process, 4 LLM calls + 3 tools | {} | {} | {rss_a:.1} MiB |",
        ms(a50),
        ms(a90)
    );
    println!(
        "| in-process, one-call answer | {} | {} | {rss_b:.1} MiB |",
        ms(b50),
        ms(b90)
    );
    // What every LLM request pays: system prompt + all built-in tool schemas.
    let first = mock.request(0);
    let system = mock.system_prompt(0).unwrap_or_default().len();
    let tools = serde_json::to_string(&first.body["tools"]).unwrap().len();

    let local = runtime_for(&install);
    let (l50, l90) = measure_turns(&local, &mock, task_a).await;
    println!(
        "| long-lived client, in-process, 4 LLM calls + 3 tools | {} | {} | — |",
        ms(l50),
        ms(l90)
    );
    let cluster = install.start_cluster(&mock, "").await;
    let remote = runtime_for(&install);
    let (r50, r90) = measure_turns(&remote, &mock, task_a).await;
    println!(
        "| long-lived client, distributed, 4 LLM calls + 3 tools | {} | {} | — |",
        ms(r50),
        ms(r90)
    );
    let (d50, d90) = measure(&install, &mock, task_a).await;
    println!(
        "| distributed (4 service processes), 4 LLM calls + 3 tools | {} | {} | — |",
        ms(d50),
        ms(d90)
    );
    let llm_proxy = cluster.addr("openheim-llm-proxy").unwrap();
    let remote_trip = round_trip(openheim_proto::transport::remote(&llm_proxy).unwrap()).await;
    let local_trip = round_trip(local.llm_proxy_channel().unwrap()).await;
    drop(cluster);
    let tcp_trip = tcp_round_trip();
    println!(
        "\nDistributed turn minus in-process turn (long-lived client, median): {:+.2} ms",
        (r50.as_secs_f64() - l50.as_secs_f64()) * 1000.0
    );
    println!(
        "One service round trip (LlmProxy.ResolveModel, median): in-process {:.0} µs, to a service process {:.0} µs; a bare loopback TCP ping-pong {:.0} µs",
        local_trip.as_secs_f64() * 1e6,
        remote_trip.as_secs_f64() * 1e6,
        tcp_trip.as_secs_f64() * 1e6
    );
    println!(
        "Per-request prompt overhead: system prompt {system} B + tool schemas {tools} B = {} B",
        system + tools
    );
}
