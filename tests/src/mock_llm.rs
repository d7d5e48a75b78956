//! A mock LLM provider served over real HTTP, scripted per test, speaking four wire formats:
//! OpenAI Chat Completions (`POST /v1/chat/completions`), Anthropic Messages
//! (`POST /v1/messages`), Gemini (`POST /v1beta/models/{model}:streamGenerateContent?alt=sse`)
//! and the OpenAI Responses API (`POST /v1/responses`); and three embeddings APIs (`embed.rs`:
//! OpenAI `/v1/embeddings`, Ollama `/api/embed`, Gemini `batchEmbedContents`).
//!
//! Tests point the code under test at [`MockLlm::base_url`] (or [`MockLlm::gemini_base_url`])
//! and give the mock a script of [`Reply`]s, consumed one per request whatever its format, and
//! rendered in the format of the request with that API's exact SSE events. Every request is
//! recorded and validated against the rules of the real API it targets; a request that breaks
//! them is answered `400` and the problem is kept in [`MockLlm::violations`], so client bugs
//! fail loudly instead of being papered over by a lenient fake.

mod anthropic;
mod chat;
pub mod embed;
mod gemini;
mod images;
mod reasoning;
mod reply;
mod responses;
mod validate;
mod wire;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod format_tests;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use anthropic::ANTHROPIC_VERSION;
pub use reply::{CREATED, Reply, ToolCallSpec, Usage};
pub use wire::Wire;

use reply::{ReplyBody, StreamPlan};
use validate::validate_chat_request;

/// One completion request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The query string, e.g. `alt=sse` (Gemini).
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The parsed JSON body; a body that is not JSON is kept as a JSON string of its text.
    pub body: Value,
    /// When the request arrived (tests measure concurrency with it).
    pub received_at: std::time::Instant,
}

impl RecordedRequest {
    /// The value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The wire format the request was sent in.
    pub fn wire(&self) -> Option<Wire> {
        Wire::from_path(&self.path)
    }

    /// The system prompt, whatever the format.
    pub fn system_prompt(&self) -> Option<String> {
        wire::system_prompt(self.wire()?, &self.body)
    }

    /// The text of the last user message (tool results excluded), whatever the format.
    pub fn last_user_text(&self) -> Option<String> {
        wire::last_user_text(self.wire()?, &self.body)
    }

    /// The `messages` array (Chat Completions, Anthropic), or an empty slice if the body has
    /// none.
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// Configures a [`MockLlm`] before it starts.
#[derive(Debug, Default)]
pub struct MockLlmBuilder {
    api_key: Option<String>,
}

impl MockLlmBuilder {
    /// Requires the key on every request, where its format puts it (`Authorization: Bearer`
    /// for the OpenAI formats, `x-api-key` for Anthropic, `x-goog-api-key` for Gemini); others
    /// get `401`.
    pub fn expect_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Binds `127.0.0.1:0` and starts serving `script`.
    pub async fn start(self, script: Vec<Reply>) -> MockLlm {
        self.start_on("127.0.0.1:0", script).await
    }

    /// Binds `address` (e.g. `0.0.0.0:8080` in a container) and starts serving `script`.
    pub async fn start_on(self, address: &str, script: Vec<Reply>) -> MockLlm {
        let shared = Arc::new(Shared {
            api_key: self.api_key,
            state: Mutex::new(MockState {
                script: script.into(),
                ..MockState::default()
            }),
        });
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .unwrap_or_else(|e| panic!("bind mock LLM on {address}: {e}"));
        let addr = listener.local_addr().expect("mock LLM local address");
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let app = router(shared.clone());
        tokio::spawn(async move {
            // A closed channel (the MockLlm dropped) resolves the signal just like a send.
            let signal = async move {
                let _ = shutdown_rx.await;
            };
            // As real providers' servers do: without it a reply whose
            // headers go out before its body waits for the client's
            // delayed ACK (about 40 ms) between the two.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await;
        });
        MockLlm {
            addr,
            shared,
            _shutdown: shutdown,
        }
    }
}

/// A running mock provider; stops accepting connections when dropped.
#[derive(Debug)]
pub struct MockLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping this sender starts the server's graceful shutdown: it stops accepting, closes
    /// idle keep-alive connections and lets in-flight streams finish.
    _shutdown: oneshot::Sender<()>,
}

impl MockLlm {
    /// Starts a mock without an API-key check.
    pub async fn start(script: Vec<Reply>) -> MockLlm {
        Self::builder().start(script).await
    }

    pub fn builder() -> MockLlmBuilder {
        MockLlmBuilder::default()
    }

    /// The base URL of the OpenAI and Anthropic formats, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Gemini base URL, `http://127.0.0.1:PORT/v1beta`.
    pub fn gemini_base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends a reply to the script, for tests that decide later what the model says.
    pub fn push_reply(&self, reply: Reply) {
        self.shared.lock().script.push_back(reply);
    }

    /// Replies not consumed yet; `0` at the end of a test proves every scripted turn happened.
    pub fn remaining_replies(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// Every completion request received, in arrival order (rejected ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Drops the recorded requests (a long benchmark would keep every
    /// growing history otherwise); counting starts again at zero.
    pub fn forget_requests(&self) {
        self.shared.lock().requests.clear();
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Request `i`; panics if fewer requests arrived.
    pub fn request(&self, i: usize) -> RecordedRequest {
        let state = self.shared.lock();
        match state.requests.get(i) {
            Some(request) => request.clone(),
            None => panic!(
                "mock LLM received {} request(s), no request {i}",
                state.requests.len()
            ),
        }
    }

    /// The system prompt of request `i`, whatever its format (Chat system message, Anthropic
    /// `system`, Gemini `systemInstruction`, Responses `instructions`).
    pub fn system_prompt(&self, i: usize) -> Option<String> {
        let request = self.request(i);
        wire::system_prompt(request.wire()?, &request.body)
    }

    /// The names of the tools offered in request `i`, in order, whatever its format.
    pub fn tool_names(&self, i: usize) -> Vec<String> {
        let request = self.request(i);
        request
            .wire()
            .map(|w| wire::tool_names(w, &request.body))
            .unwrap_or_default()
    }

    /// The text of the last user message of request `i` (tool results excluded).
    pub fn last_user_text(&self, i: usize) -> Option<String> {
        let request = self.request(i);
        wire::last_user_text(request.wire()?, &request.body)
    }

    /// Answers every request `matches` accepts with `answer` instead of the script (the
    /// script is not consumed), e.g. the summary requests of a compaction, which come whenever
    /// the client decides. `answer` checks the request: an `Err` is a violation, answered `400`.
    pub fn answer_matching(
        &self,
        matches: impl Fn(&RecordedRequest) -> bool + Send + Sync + 'static,
        answer: impl Fn(&RecordedRequest) -> Result<Reply, String> + Send + Sync + 'static,
    ) {
        self.shared.lock().routes.push(Route {
            matches: Arc::new(matches),
            answer: Arc::new(answer),
        });
    }

    /// Every embeddings request received, in arrival order (rejected ones included).
    pub fn embedding_requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().embedding_requests.clone()
    }

    /// Makes every embeddings request fail with `status` (`None`: answer again).
    pub fn fail_embeddings(&self, status: Option<u16>) {
        self.shared.lock().embeddings_failure = status;
    }

    /// Every protocol violation seen so far, each naming the request it came from.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Panics with the list of violations if there are any.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "mock LLM saw protocol violations:\n  {}",
            violations.join("\n  ")
        );
    }
}

/// The content of the last tool result of a request body, in any format (a Chat `tool`
/// message, an Anthropic `tool_result`, a Gemini `functionResponse`, a Responses
/// `function_call_output`), for dynamic replies that quote what a tool returned.
pub fn last_tool_result(request: &Value) -> Option<String> {
    wire::last_tool_result(request)
}

#[derive(Debug)]
struct Shared {
    api_key: Option<String>,
    state: Mutex<MockState>,
}

#[derive(Debug, Default)]
struct MockState {
    script: VecDeque<Reply>,
    requests: Vec<RecordedRequest>,
    embedding_requests: Vec<RecordedRequest>,
    /// Status every embeddings request is answered with, when set.
    embeddings_failure: Option<u16>,
    violations: Vec<String>,
    /// Tool-call id → the thinking blocks (type, signature or data) of the
    /// Anthropic reply that made the call (the follow-up must bring them
    /// back, in order).
    signed_calls: HashMap<String, Vec<(String, String)>>,
    /// Requests answered outside the script (see [`MockLlm::answer_matching`]).
    routes: Vec<Route>,
    /// Last tool-call id number handed out; ids are unique across the whole mock so tests can
    /// tell calls of different turns apart.
    last_call_id: u64,
}

type RouteMatch = dyn Fn(&RecordedRequest) -> bool + Send + Sync;
type RouteAnswer = dyn Fn(&RecordedRequest) -> Result<Reply, String> + Send + Sync;

/// A kind of request answered outside the script.
#[derive(Clone)]
struct Route {
    matches: Arc<RouteMatch>,
    answer: Arc<RouteAnswer>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Route")
    }
}

impl Shared {
    /// The answer of the first route matching the request, if any. The routes run without
    /// the lock held.
    fn route(
        &self,
        _wire: Wire,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Value,
    ) -> Option<Result<Reply, String>> {
        let routes = self.lock().routes.clone();
        if routes.is_empty() {
            return None;
        }
        let request = RecordedRequest {
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: headers.clone(),
            body: body.clone(),
            received_at: std::time::Instant::now(),
        };
        let route = routes.iter().find(|r| (r.matches)(&request))?;
        Some((route.answer)(&request))
    }

    /// Locks the state, ignoring poisoning: a panicking test thread must not hide the
    /// diagnostics other assertions want to read.
    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn violation(&self, message: String) {
        self.lock().violations.push(message);
    }

    /// Records a request; returns its number (1-based).
    fn record(&self, uri: &Uri, headers: &HeaderMap, body: &Value) -> usize {
        let mut state = self.lock();
        state.requests.push(RecordedRequest {
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: headers.clone(),
            body: body.clone(),
            received_at: std::time::Instant::now(),
        });
        state.requests.len()
    }

    /// Gives each scripted call its id: the script's own, or the next of the mock's counter
    /// in the format's style.
    fn assign_ids<'a>(
        &self,
        wire: Wire,
        calls: &'a [ToolCallSpec],
    ) -> Vec<(String, &'a ToolCallSpec)> {
        let mut state = self.lock();
        calls
            .iter()
            .map(|call| {
                let id = call.id.clone().unwrap_or_else(|| {
                    state.last_call_id += 1;
                    match wire {
                        Wire::Anthropic => format!("toolu_mock_{}", state.last_call_id),
                        _ => format!("call_{}", state.last_call_id),
                    }
                });
                (id, call)
            })
            .collect()
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(completion))
        .route("/chat/completions", post(completion))
        .route("/v1/messages", post(completion))
        .route("/v1/responses", post(completion))
        .route("/v1beta/models/{model_action}", post(completion))
        .route("/v1/models", get(models))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/api/embed", post(embeddings))
        .fallback(unknown_route)
        // Long conversations exceed axum's 2 MB default; the real API takes far more.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn models() -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{ "id": "mock-model", "object": "model", "created": CREATED, "owned_by": "openheim-mock" }],
    }))
    .into_response()
}

async fn unknown_route(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let message = format!("unexpected request {method} {uri}");
    reject(
        &shared,
        Wire::Chat,
        StatusCode::NOT_FOUND,
        message,
        "invalid_request_error",
    )
}

/// Every embeddings request, whatever its API (told by its path).
async fn embeddings(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    match embed::EmbedWire::from_path(uri.path()) {
        Some(wire) => embed::answer(&shared, wire, &uri, &headers, &raw),
        None => unknown_route(State(shared), Method::POST, uri).await,
    }
}

/// Every completion request, whatever its format (told by its path).
async fn completion(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    // Gemini's embeddings share the `models/{model}:{action}` route.
    if let Some(wire @ (embed::EmbedWire::GeminiBatch | embed::EmbedWire::GeminiSingle)) =
        embed::EmbedWire::from_path(uri.path())
    {
        return embed::answer(&shared, wire, &uri, &headers, &raw);
    }
    let Some(wire) = Wire::from_path(uri.path()) else {
        let message = format!("unexpected request POST {uri}");
        return reject(
            &shared,
            Wire::Chat,
            StatusCode::NOT_FOUND,
            message,
            "invalid_request_error",
        );
    };
    let parsed = serde_json::from_slice::<Value>(&raw);
    let body = match &parsed {
        Ok(value) => value.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&raw).into_owned()),
    };
    let n = shared.record(&uri, &headers, &body);
    if let Some(rejection) = check_request(&shared, n, wire, &uri, &headers, &parsed) {
        return rejection;
    }
    if let Some(answer) = shared.route(wire, &uri, &headers, &body) {
        return match answer {
            Ok(reply) => {
                let reply = reply.resolve(&body);
                if let Some(ms) = reply.options.delay_ms {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                respond(&shared, n, wire, &model_of(wire, &uri, &body), &body, reply)
            }
            Err(problem) => {
                let message = format!("request {n}: {problem}");
                reject(
                    &shared,
                    wire,
                    StatusCode::BAD_REQUEST,
                    message,
                    "invalid_request_error",
                )
            }
        };
    }
    // Popped in its own statement so the lock is released before `violation` takes it again.
    let next = shared.lock().script.pop_front();
    let Some(reply) = next else {
        let message = format!("request {n}: the mock LLM script ran out of replies");
        return reject(
            &shared,
            wire,
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
            "server_error",
        );
    };
    // A panicking closure would otherwise just drop the connection, hiding why.
    let reply = match catch_unwind(AssertUnwindSafe(|| reply.resolve(&body))) {
        Ok(reply) => reply,
        Err(_) => {
            let message = format!("request {n}: the dynamic reply closure panicked");
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return reject(&shared, wire, status, message, "server_error");
        }
    };
    if let Some(ms) = reply.options.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    respond(&shared, n, wire, &model_of(wire, &uri, &body), &body, reply)
}

/// The model a request names: in the path (Gemini) or the body.
fn model_of(wire: Wire, uri: &Uri, body: &Value) -> String {
    match wire {
        Wire::Gemini => gemini::model_of(uri.path()).to_owned(),
        _ => body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

/// Where each format carries the key.
fn key_header(wire: Wire) -> (header::HeaderName, &'static str) {
    match wire {
        Wire::Chat | Wire::Responses => (header::AUTHORIZATION, "Bearer "),
        Wire::Anthropic => (header::HeaderName::from_static("x-api-key"), ""),
        Wire::Gemini => (header::HeaderName::from_static("x-goog-api-key"), ""),
    }
}

/// Applies the auth and protocol checks; `Some` is the error response to send instead.
fn check_request(
    shared: &Shared,
    n: usize,
    wire: Wire,
    uri: &Uri,
    headers: &HeaderMap,
    parsed: &Result<Value, serde_json::Error>,
) -> Option<Response> {
    if let Some(key) = &shared.api_key {
        let (name, prefix) = key_header(wire);
        let expected = format!("{prefix}{key}");
        let got = headers.get(&name).and_then(|v| v.to_str().ok());
        if got != Some(expected.as_str()) {
            let message = format!("request {n}: {name} is {got:?}, expected {expected:?}");
            let status = StatusCode::UNAUTHORIZED;
            return Some(reject(
                shared,
                wire,
                status,
                message,
                "invalid_request_error",
            ));
        }
    }
    let problems = match parsed {
        Ok(body) => {
            let mut problems = match wire {
                Wire::Chat => validate_chat_request(body),
                Wire::Anthropic => anthropic::validate(headers, body),
                Wire::Gemini => gemini::validate(uri, headers, body),
                Wire::Responses => responses::validate(body),
            };
            let signed = shared.lock().signed_calls.clone();
            problems.extend(reasoning::check(wire, body, &signed));
            problems
        }
        Err(e) => vec![format!("request body is not valid JSON: {e}")],
    };
    if problems.is_empty() {
        return None;
    }
    let problems: Vec<String> = problems
        .into_iter()
        .map(|p| format!("request {n}: {p}"))
        .collect();
    let message = problems.join("; ");
    shared.lock().violations.extend(problems);
    Some(error_response(
        wire,
        StatusCode::BAD_REQUEST,
        &message,
        "invalid_request_error",
    ))
}

/// Turns a resolved reply into the HTTP response for request number `n`.
fn respond(
    shared: &Shared,
    n: usize,
    wire: Wire,
    model: &str,
    request: &Value,
    reply: Reply,
) -> Response {
    match reply.body {
        ReplyBody::HttpError {
            status,
            body,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, axum::Json(body)).into_response();
            if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        ReplyBody::Stream {
            text,
            thinking,
            tool_calls,
            finish_reason,
            usage,
            stream_error,
        } => {
            let plan = StreamPlan {
                n,
                completion_id: &format!("chatcmpl-mock-{n}"),
                model,
                include_usage: request.pointer("/stream_options/include_usage")
                    == Some(&Value::Bool(true)),
                text: text.as_deref(),
                thinking: thinking.as_deref(),
                split_thinking: reply.options.split_thinking.unwrap_or(false),
                tool_calls: shared.assign_ids(wire, &tool_calls),
                finish_reason: finish_reason.as_deref(),
                usage,
                stream_error: stream_error.as_deref(),
            };
            if wire == Wire::Anthropic && plan.thinking.is_some() {
                let mut state = shared.lock();
                for (id, _) in &plan.tool_calls {
                    let blocks = anthropic::thinking_blocks(n, plan.split_thinking);
                    state.signed_calls.insert(id.clone(), blocks);
                }
            }
            let events = match wire {
                Wire::Chat => plan.chat_events(),
                Wire::Anthropic => anthropic::render(&plan),
                Wire::Gemini => gemini::render(&plan),
                Wire::Responses => responses::render(&plan),
            };
            sse_response(n, events, reply.options)
        }
        // `Reply::resolve` never returns a dynamic reply; answer rather than panic in a server.
        ReplyBody::Dynamic(_) => error_response(
            wire,
            StatusCode::INTERNAL_SERVER_ERROR,
            "unresolved dynamic reply",
            "server_error",
        ),
    }
}

/// Streams `events` as `text/event-stream`, applying the chunk delay and the cut fault.
fn sse_response(n: usize, events: Vec<String>, options: reply::ReplyOptions) -> Response {
    let delay = Duration::from_millis(options.chunk_delay_ms.unwrap_or(0));
    let cut = options.cut_after.filter(|&k| k < events.len());
    let sent = events.into_iter().take(cut.unwrap_or(usize::MAX));
    let chunks = futures::stream::iter(sent.enumerate()).then(move |(i, event)| async move {
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, io::Error>(Bytes::from(event))
    });
    // A body error makes hyper drop the connection without the terminating chunk, which is
    // what a client sees when a provider dies mid-stream. Hyper discards unflushed output when
    // the body fails, so the error first yields once: hyper flushes whenever the body is
    // pending, and the few small events sent before a cut fit in the socket buffer at once.
    let failure = futures::stream::iter(cut).then(|k| async move {
        tokio::task::yield_now().await;
        Err(io::Error::other(format!(
            "mock LLM cut the stream after {k} chunk(s)"
        )))
    });
    let mut response = Response::new(Body::from_stream(chunks.chain(failure)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(id) = HeaderValue::from_str(&format!("req_mock_{n}")) {
        headers.insert("x-request-id", id);
    }
    response
}

/// Records `message` as a violation and answers with it as the format's error.
fn reject(
    shared: &Shared,
    wire: Wire,
    status: StatusCode,
    message: String,
    kind: &str,
) -> Response {
    let response = error_response(wire, status, &message, kind);
    shared.violation(message);
    response
}

/// An error response shaped like the format's API's.
fn error_response(wire: Wire, status: StatusCode, message: &str, kind: &str) -> Response {
    let body = wire::error_body(wire, status.as_u16(), message, kind);
    (status, axum::Json(body)).into_response()
}
