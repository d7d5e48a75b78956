//! Benchmark (not a test) of llm-proxy's own overhead: what a completion costs through the
//! proxy's gRPC API compared with calling the provider directly.
//!
//! Both run in this process: a zero-latency mock provider (axum, a fixed short Chat
//! Completions SSE answer) and the proxy behind its generated gRPC client over the in-process
//! transport (the CLI's deployment). Phases, each for the direct call and the proxy call:
//! - sequential latency (one call at a time): p50 / p99, and the difference (the added latency);
//! - throughput at a concurrency of 32 (closed loop);
//! - latency under an open-loop load of 5,000 calls/s (5 calls started every millisecond,
//!   whether or not earlier ones finished): p50 / p99 and the difference.
//!
//! Run: `cargo bench -p openheim-llm-proxy --bench overhead`. Results go to
//! `docs/performance.md`.

// Printing the results is this program's job.
#![allow(clippy::print_stdout)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use openheim_config::{ProviderConfig, ProviderKind};
use openheim_llm_proxy::LlmProxyConfig;
use openheim_proto::GrpcChannel;
use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{ContentBlock, Message, Role};
use openheim_proto::llm_proxy::v1::CompleteRequest;
use openheim_proto::llm_proxy::v1::llm_proxy_client::LlmProxyClient;
use tokio::task::JoinSet;

const WARM_UP_CALLS: usize = 2_000;
const SEQUENTIAL_CALLS: usize = 5_000;
const CONCURRENCY: usize = 32;
const CLOSED_LOOP_CALLS: usize = 40_000;
const OPEN_LOOP_RATE: u64 = 5_000;
const OPEN_LOOP_SECONDS: u64 = 4;

/// The provider's answer: what a short real completion looks like on the wire.
const ANSWER: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,",
    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},",
    "\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,",
    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there!\"},",
    "\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,",
    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],",
    "\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,",
    "\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,",
    "\"total_tokens\":15}}\n\n",
    "data: [DONE]\n\n",
);

/// The body a direct caller sends: what the proxy sends for the same request.
const DIRECT_BODY: &str = concat!(
    "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a benchmark.\"},",
    "{\"role\":\"user\",\"content\":\"Say hello.\"}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let base = start_mock().await?;
    let direct = Direct::new(&base)?;
    let domain = Domain::new(&base)?;
    let proxy = Proxy::new(&base)?;
    println!(
        "llm-proxy overhead ({} cores visible)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Warm up connection pools, allocators and caches.
    sequential(WARM_UP_CALLS, || direct.call()).await?;
    sequential(WARM_UP_CALLS, || domain.call()).await?;
    sequential(WARM_UP_CALLS, || proxy.call()).await?;

    let d = sequential(SEQUENTIAL_CALLS, || direct.call()).await?;
    let p = sequential(SEQUENTIAL_CALLS, || proxy.call()).await?;
    let m = sequential(SEQUENTIAL_CALLS, || domain.call()).await?;
    report("sequential", &d, &p, &m);

    let direct_rate = closed_loop(&direct).await?;
    let proxy_rate = closed_loop(&proxy).await?;
    let domain_rate = closed_loop(&domain).await?;
    println!(
        "throughput at concurrency {CONCURRENCY}: direct {direct_rate:.0} calls/s, \
         through the proxy {proxy_rate:.0} calls/s (without gRPC {domain_rate:.0} calls/s)"
    );

    let d = open_loop(&direct).await?;
    let p = open_loop(&proxy).await?;
    let m = open_loop(&domain).await?;
    report(&format!("open loop at {OPEN_LOOP_RATE}/s"), &d, &p, &m);
    Ok(())
}

/// Serves the fixed answer on 127.0.0.1:0; returns its `api_base`.
async fn start_mock() -> anyhow::Result<String> {
    async fn answer(_body: Bytes) -> impl IntoResponse {
        ([(header::CONTENT_TYPE, "text/event-stream")], ANSWER)
    }
    let app = Router::new().route("/v1/chat/completions", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// The proxy's configuration: one OpenAI-compatible provider at the mock.
fn config(base: &str) -> LlmProxyConfig {
    let provider = ProviderConfig {
        kind: Some(ProviderKind::OpenaiCompatible),
        api_base: Some(base.to_owned()),
        default_model: Some("bench-model".into()),
        ..ProviderConfig::default()
    };
    LlmProxyConfig {
        providers: [("mock".to_owned(), provider)].into(),
        default_provider: Some("mock".into()),
        ..LlmProxyConfig::default()
    }
}

/// Something that makes one complete call.
trait Caller: Clone + Send + Sync + 'static {
    fn call(&self) -> impl Future<Output = anyhow::Result<()>> + Send + 'static;
}

/// The provider called directly: POST, then read the whole event stream.
#[derive(Clone)]
struct Direct {
    client: reqwest::Client,
    url: Arc<str>,
}

impl Direct {
    fn new(base: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
        Ok(Self {
            client,
            url: format!("{base}/chat/completions").into(),
        })
    }
}

impl Caller for Direct {
    fn call(&self) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let request = self
            .client
            .post(&*self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(DIRECT_BODY);
        async move {
            let body = request.send().await?.bytes().await?;
            anyhow::ensure!(body.ends_with(b"[DONE]\n\n"), "incomplete answer");
            Ok(())
        }
    }
}

/// The same provider through the proxy's gRPC API, in process.
#[derive(Clone)]
struct Proxy {
    client: LlmProxyClient<GrpcChannel>,
    request: Arc<CompleteRequest>,
}

impl Proxy {
    fn new(base: &str) -> anyhow::Result<Self> {
        let channel = openheim_llm_proxy::in_process(config(base), &Default::default())?;
        let request = CompleteRequest {
            system_prompt: "You are a benchmark.".into(),
            messages: vec![Message {
                role: Role::User.into(),
                content: vec![ContentBlock {
                    block: Some(Block::Text("Say hello.".into())),
                }],
            }],
            ..CompleteRequest::default()
        };
        Ok(Self {
            client: LlmProxyClient::new(channel),
            request: Arc::new(request),
        })
    }
}

impl Caller for Proxy {
    fn call(&self) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let mut client = self.client.clone();
        let request = CompleteRequest::clone(&self.request);
        async move {
            use openheim_proto::llm_proxy::v1::completion_event::Event;
            let mut stream = client.complete(request).await?.into_inner();
            let mut finished = false;
            while let Some(event) = stream.message().await? {
                finished |= matches!(event.event, Some(Event::Finished(_)));
            }
            anyhow::ensure!(finished, "the completion did not finish");
            Ok(())
        }
    }
}

/// The proxy's domain API without gRPC (`Proxy::complete`), to tell the in-process gRPC
/// hop's share of the overhead from the proxy's own.
#[derive(Clone)]
struct Domain {
    proxy: Arc<openheim_llm_proxy::Proxy>,
    request: Arc<CompleteRequest>,
}

impl Domain {
    fn new(base: &str) -> anyhow::Result<Self> {
        let grpc = Proxy::new(base)?;
        let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
        Ok(Self {
            proxy: Arc::new(openheim_llm_proxy::Proxy::new(
                config(base),
                &client.into(),
                &Default::default(),
            )),
            request: grpc.request,
        })
    }
}

impl Caller for Domain {
    fn call(&self) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        use openheim_proto::llm_proxy::v1::completion_event::Event;
        let mut events = self.proxy.complete(CompleteRequest::clone(&self.request));
        async move {
            let mut finished = false;
            while let Some(event) = events.recv().await {
                finished |= matches!(event.event, Some(Event::Finished(_)));
            }
            anyhow::ensure!(finished, "the completion did not finish");
            Ok(())
        }
    }
}

async fn sequential<F, Fut>(calls: usize, call: F) -> anyhow::Result<Vec<Duration>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        call().await?;
        latencies.push(start.elapsed());
    }
    Ok(latencies)
}

/// Calls per second with `CONCURRENCY` callers, each starting its next call at once.
async fn closed_loop(caller: &impl Caller) -> anyhow::Result<f64> {
    let per_worker = CLOSED_LOOP_CALLS / CONCURRENCY;
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let caller = caller.clone();
        workers.spawn(async move {
            for _ in 0..per_worker {
                caller.call().await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let calls = per_worker * CONCURRENCY;
    Ok(calls as f64 / start.elapsed().as_secs_f64())
}

/// Latencies at a fixed arrival rate. Tokio's timers tick once per millisecond, so the
/// calls of each millisecond start together (5 per tick at 5,000/s); each latency is
/// measured from its call's start, and a tick that falls behind starts its calls late
/// rather than dropping them.
async fn open_loop(caller: &impl Caller) -> anyhow::Result<Vec<Duration>> {
    let per_tick = usize::try_from(OPEN_LOOP_RATE / 1_000)?;
    let ticks = OPEN_LOOP_SECONDS * 1_000;
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut calls = JoinSet::new();
    for _ in 0..ticks {
        interval.tick().await;
        for _ in 0..per_tick {
            let call = caller.call();
            let started = Instant::now();
            calls.spawn(async move {
                call.await?;
                anyhow::Ok(started.elapsed())
            });
        }
    }
    let mut latencies = Vec::new();
    while let Some(done) = calls.join_next().await {
        latencies.push(done??);
    }
    let achieved = latencies.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "open loop: {} calls at an achieved {achieved:.0} calls/s",
        latencies.len()
    );
    Ok(latencies)
}

fn percentile(latencies: &mut [Duration], p: f64) -> Duration {
    latencies.sort_unstable();
    let rank = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies.get(rank).copied().unwrap_or_default()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One line per percentile: the direct call, the call through the proxy's gRPC API, the
/// added latency, and the call through the domain API alone.
fn report(phase: &str, direct: &[Duration], proxy: &[Duration], domain: &[Duration]) {
    let (mut direct, mut proxy, mut domain) = (direct.to_vec(), proxy.to_vec(), domain.to_vec());
    for (name, p) in [
        ("p50", 0.50),
        ("p90", 0.90),
        ("p99", 0.99),
        ("p99.9", 0.999),
    ] {
        let d = micros(percentile(&mut direct, p));
        let g = micros(percentile(&mut proxy, p));
        let m = micros(percentile(&mut domain, p));
        println!(
            "{phase:>22} {name:>5}: direct {d:>8.1} µs, proxy {g:>8.1} µs, added {:>8.1} µs \
             (without gRPC: {m:>8.1} µs, added {:>8.1} µs)",
            g - d,
            m - d
        );
    }
}
