//! Test support: a scripted fake provider server (every wire format: it
//! replays the exact SSE frames a test gives it and records each request),
//! and helpers to build configs, call the proxy and summarise its events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::Uri;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use openheim_config::{ProviderConfig, ProviderKind, Secret};
use openheim_llm_proxy::LlmProxyConfig;
use openheim_proto::GrpcChannel;
use openheim_proto::llm_proxy::v1::CompleteRequest;
use openheim_proto::llm_proxy::v1::completion_event::Event;
use openheim_proto::llm_proxy::v1::llm_proxy_client::LlmProxyClient;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The API key every test provider uses; it must never show up in an event.
pub const TEST_KEY: &str = "sk-test-0123456789abcdef";

/// How one request to the fake server is answered.
pub enum Reply {
    /// `200 text/event-stream` with these `data:` payloads, then `end`.
    Stream { data: Vec<String>, end: End },
    /// `200 text/event-stream` with these frames sent verbatim (each a whole
    /// SSE event with its blank line), then `end`.
    Frames { frames: Vec<String>, end: End },
    /// A non-success answer with a JSON body.
    Status {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: Value,
    },
}

pub enum End {
    /// The body ends normally after the last payload.
    Clean,
    /// The connection is aborted after the last payload.
    Cut,
    /// The body stays open; the sender fires when the server drops it
    /// (the client went away).
    Hang(oneshot::Sender<()>),
}

/// A request the fake server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub authorization: Option<String>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct FakeState {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

/// A fake provider on 127.0.0.1:0 that answers every POST, whatever the
/// path, with the next scripted reply.
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT/v1`, to use as `api_base` (OpenAI, Anthropic).
    pub base: String,
    /// `http://127.0.0.1:PORT/v1beta`, to use as a Gemini `api_base`.
    pub gemini_base: String,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let state = Arc::new(FakeState {
            replies: Mutex::new(replies.into()),
            requests: Mutex::default(),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base: format!("http://{address}/v1"),
            gemini_base: format!("http://{address}/v1beta"),
            state,
            task,
        }
    }

    /// How many replies the server was scripted with and has not used.
    pub fn replies_left(&self) -> usize {
        self.state.replies.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }
}

async fn answer(
    State(state): State<Arc<FakeState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.requests.lock().unwrap().push(Recorded {
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        headers,
        body: serde_json::from_slice(&body).expect("the proxy sends JSON"),
    });
    let reply = state.replies.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Stream { data, end }) => {
            let frames = data.iter().map(|d| format!("data: {d}\n\n")).collect();
            sse_response(frames, end)
        }
        Some(Reply::Frames { frames, end }) => sse_response(frames, end),
        Some(Reply::Status {
            status,
            headers,
            body,
        }) => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "application/json");
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body.to_string())).unwrap()
        }
        None => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from("the test scripted no more replies"))
            .unwrap(),
    }
}

/// Fires its sender when dropped: hyper drops a response body when the
/// connection it was written to is gone.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

fn sse_response(events: Vec<String>, end: End) -> Response {
    // Each event is split in two frames, so the client must reassemble
    // events (and UTF-8 characters) across network reads.
    let frames: Vec<Result<Bytes, std::io::Error>> = events
        .iter()
        .flat_map(|event| {
            let event = event.as_bytes();
            let (a, b) = event.split_at(event.len() / 2);
            [Ok(Bytes::copy_from_slice(a)), Ok(Bytes::copy_from_slice(b))]
        })
        .collect();
    let head = futures::stream::iter(frames);
    let body = match end {
        End::Clean => Body::from_stream(head),
        End::Cut => Body::from_stream(head.chain(cut())),
        End::Hang(tx) => {
            let signal = DropSignal(Some(tx));
            let pending =
                futures::stream::pending::<Result<Bytes, std::io::Error>>().map(move |item| {
                    let _keep = &signal;
                    item
                });
            Body::from_stream(head.chain(pending))
        }
    };
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap()
}

/// Fails the body, which makes hyper abort the connection. It first yields
/// once so hyper flushes what was written before (it flushes when the body
/// has nothing ready), making "text, then a cut" deterministic.
fn cut() -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let mut yielded = false;
    futures::stream::poll_fn(move |cx| {
        if yielded {
            std::task::Poll::Ready(Some(Err(std::io::Error::other(
                "connection cut by the test",
            ))))
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}

/// An SSE event with a name, as Anthropic and the Responses API send them.
pub fn named_event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A Responses API event: named after its own `type`.
pub fn responses_event(data: Value) -> String {
    let name = data["type"].as_str().unwrap().to_owned();
    named_event(&name, &data)
}

/// A Gemini chunk, with the CRLF line ends Google's SSE uses.
pub fn gemini_chunk(data: Value) -> String {
    format!("data: {data}\r\n\r\n")
}

/// OpenAI's chunk envelope around one `choices[0]` value.
pub fn chunk(choice: Value) -> String {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-test-2025",
        "system_fingerprint": "fp_test",
        "choices": [choice],
        "usage": null
    })
    .to_string()
}

pub fn role_chunk() -> String {
    chunk(
        json!({"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null, "finish_reason": null}),
    )
}

pub fn text_chunk(text: &str) -> String {
    chunk(json!({"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}))
}

pub fn finish_chunk(reason: &str) -> String {
    chunk(json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason}))
}

pub fn usage_chunk(prompt: u64, completion: u64, cached: u64) -> String {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-test-2025",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
        }
    })
    .to_string()
}

pub fn done() -> String {
    "[DONE]".into()
}

/// A complete answer with `text`.
pub fn text_reply(text: &str) -> Reply {
    Reply::Stream {
        data: vec![
            role_chunk(),
            text_chunk(text),
            finish_chunk("stop"),
            usage_chunk(10, 2, 0),
            done(),
        ],
        end: End::Clean,
    }
}

/// An OpenAI provider at `base` with the test key, fast retries and
/// a known context window.
pub fn provider(base: &str) -> ProviderConfig {
    ProviderConfig {
        kind: Some(ProviderKind::Openai),
        api_base: Some(base.to_owned()),
        default_model: Some("gpt-test".into()),
        env_var: Some("OPENAI_API_KEY".into()),
        api_key: Some(Secret::new(TEST_KEY)),
        timeout_secs: 30,
        context_window: Some(128_000),
        max_retries: 2,
        retry_base_delay_ms: 1,
        retry_max_delay_ms: 5,
        ..ProviderConfig::default()
    }
}

/// A provider of `kind` at the fake server, with the test key and its
/// kind's usual env var.
pub fn provider_of(kind: ProviderKind, fake: &FakeProvider) -> ProviderConfig {
    let (base, env_var) = match kind {
        ProviderKind::Anthropic => (&fake.base, "ANTHROPIC_API_KEY"),
        ProviderKind::Gemini => (&fake.gemini_base, "GEMINI_API_KEY"),
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => (&fake.base, "OPENAI_API_KEY"),
        ProviderKind::Custom => panic!("a custom provider has no wire format to fake"),
    };
    ProviderConfig {
        kind: Some(kind),
        env_var: Some(env_var.into()),
        ..provider(base)
    }
}

pub fn config(providers: Vec<(&str, ProviderConfig)>) -> LlmProxyConfig {
    LlmProxyConfig {
        default_provider: providers.first().map(|(name, _)| (*name).to_owned()),
        providers: providers
            .into_iter()
            .map(|(name, p)| (name.to_owned(), p))
            .collect::<BTreeMap<_, _>>(),
        ..LlmProxyConfig::default()
    }
}

pub fn client(config: LlmProxyConfig) -> LlmProxyClient<GrpcChannel> {
    LlmProxyClient::new(openheim_llm_proxy::in_process(config, &Default::default()).unwrap())
}

/// Runs one completion through gRPC and returns all its events.
pub async fn complete(config: LlmProxyConfig, request: CompleteRequest) -> Vec<Event> {
    let mut client = client(config);
    let mut stream = client.complete(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event.event.expect("every event has a body"));
    }
    events
}

pub fn prompt(text: &str) -> CompleteRequest {
    use openheim_proto::common::v1::{ContentBlock, Message, Role, content_block::Block};
    CompleteRequest {
        messages: vec![Message {
            role: Role::User.into(),
            content: vec![ContentBlock {
                block: Some(Block::Text(text.into())),
            }],
        }],
        ..CompleteRequest::default()
    }
}

/// One line per event, for readable assertions.
pub fn shape(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::ModelSelected(m) => {
                format!(
                    "selected {}/{} fallback={}",
                    m.provider, m.model, m.is_fallback
                )
            }
            Event::TextDelta(t) => format!("text {t}"),
            Event::ThinkingDelta(t) => format!("thinking {}", t.text),
            Event::ToolCallDelta(t) => format!(
                "tool {} {} {} {}",
                t.index, t.id, t.name, t.arguments_fragment
            ),
            Event::Usage(u) => format!(
                "usage in={} out={} cache_read={}",
                u.input_tokens, u.output_tokens, u.cache_read_tokens
            ),
            Event::Interrupted(i) => format!(
                "interrupted {:?} will_retry={}",
                i.error.as_ref().unwrap().kind(),
                i.will_retry
            ),
            Event::Retrying(r) => format!(
                "retrying {:?} attempt={} delay_ms={}",
                r.error.as_ref().unwrap().kind(),
                r.attempt,
                r.delay_ms
            ),
            Event::Finished(f) => format!("finished {:?}", f.stop_reason()),
            Event::Error(e) => format!("error {:?}", e.kind()),
        })
        .collect()
}

/// The tool calls of an event stream, reassembled the way a caller does it
/// (by index): `(id, name, arguments)`, the arguments parsed.
pub fn tool_calls(events: &[Event]) -> Vec<(String, String, Value)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for event in events {
        if let Event::ToolCallDelta(delta) = event {
            let index = delta.index as usize;
            if calls.len() <= index {
                calls.resize(index + 1, Default::default());
            }
            let call = &mut calls[index];
            call.0.push_str(&delta.id);
            call.1.push_str(&delta.name);
            call.2.push_str(&delta.arguments_fragment);
        }
    }
    calls
        .into_iter()
        .map(|(id, name, args)| (id, name, serde_json::from_str(&args).unwrap()))
        .collect()
}
