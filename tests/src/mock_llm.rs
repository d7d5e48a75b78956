//! A mock OpenAI-compatible LLM provider served over real HTTP, scripted per test.
//!
//! Tests point the code under test at [`MockLlm::base_url`] and give the mock a script of
//! [`Reply`]s, consumed one per request. Every request is recorded and validated against the
//! rules of the real Chat Completions API; a request that breaks them is answered `400` and
//! the problem is kept in [`MockLlm::violations`], so client bugs fail loudly instead of being
//! papered over by a lenient fake.

mod reply;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
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

pub use reply::{CREATED, Reply, ToolCallSpec, Usage};

use reply::{ReplyBody, StreamPlan};
use validate::validate_chat_request;

/// One chat-completions request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: String,
    pub headers: HeaderMap,
    /// The parsed JSON body; a body that is not JSON is kept as a JSON string of its text.
    pub body: Value,
}

impl RecordedRequest {
    /// The value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `messages` array, or an empty slice if the body has none.
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
    /// Requires `Authorization: Bearer <key>` on every request; others get `401`.
    pub fn expect_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Binds `127.0.0.1:0` and starts serving `script`.
    pub async fn start(self, script: Vec<Reply>) -> MockLlm {
        let shared = Arc::new(Shared {
            api_key: self.api_key,
            state: Mutex::new(MockState {
                script: script.into(),
                ..MockState::default()
            }),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock LLM on 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock LLM local address");
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let app = router(shared.clone());
        tokio::spawn(async move {
            // A closed channel (the MockLlm dropped) resolves the signal just like a send.
            let signal = async move {
                let _ = shutdown_rx.await;
            };
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

    /// The OpenAI-style base URL, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
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

    /// Every chat-completions request received, in arrival order (rejected ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
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

    /// The text of request `i`'s system message, if it has one.
    pub fn system_prompt(&self, i: usize) -> Option<String> {
        let request = self.request(i);
        request
            .messages()
            .iter()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("system"))
            .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
    }

    /// The names of the tools offered in request `i`, in order.
    pub fn tool_names(&self, i: usize) -> Vec<String> {
        let request = self.request(i);
        let tools = request.body.get("tools").and_then(Value::as_array);
        tools
            .into_iter()
            .flatten()
            .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
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

/// The content of the last `tool` message of a request body, for dynamic replies that quote
/// what a tool returned.
pub fn last_tool_result(request: &Value) -> Option<String> {
    request
        .get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
}

/// A message content as plain text: the string itself, or the `text` parts of an array joined.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
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
    violations: Vec<String>,
    /// Last tool-call id number handed out; ids are unique across the whole mock so tests can
    /// tell calls of different turns apart.
    last_call_id: u64,
}

impl Shared {
    /// Locks the state, ignoring poisoning: a panicking test thread must not hide the
    /// diagnostics other assertions want to read.
    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn violation(&self, message: String) {
        self.lock().violations.push(message);
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
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
        StatusCode::NOT_FOUND,
        message,
        "invalid_request_error",
        None,
    )
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&raw);
    let body = match &parsed {
        Ok(value) => value.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&raw).into_owned()),
    };
    let n = {
        let mut state = shared.lock();
        state.requests.push(RecordedRequest {
            path: uri.path().to_owned(),
            headers: headers.clone(),
            body: body.clone(),
        });
        state.requests.len()
    };
    if let Some(rejection) = check_request(&shared, n, &headers, &parsed) {
        return rejection;
    }
    // Popped in its own statement so the lock is released before `violation` takes it again.
    let next = shared.lock().script.pop_front();
    let Some(reply) = next else {
        let message = format!("request {n}: the mock LLM script ran out of replies");
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        return reject(&shared, status, message, "server_error", None);
    };
    // A panicking closure would otherwise just drop the connection, hiding why.
    let reply = match catch_unwind(AssertUnwindSafe(|| reply.resolve(&body))) {
        Ok(reply) => reply,
        Err(_) => {
            let message = format!("request {n}: the dynamic reply closure panicked");
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return reject(&shared, status, message, "server_error", None);
        }
    };
    if let Some(ms) = reply.options.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    respond(&shared, n, &body, reply)
}

/// Applies the auth and protocol checks; `Some` is the error response to send instead.
fn check_request(
    shared: &Shared,
    n: usize,
    headers: &HeaderMap,
    parsed: &Result<Value, serde_json::Error>,
) -> Option<Response> {
    if let Some(key) = &shared.api_key {
        let expected = format!("Bearer {key}");
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if got != Some(expected.as_str()) {
            let message = format!("request {n}: Authorization is {got:?}, expected {expected:?}");
            let status = StatusCode::UNAUTHORIZED;
            let code = Some("invalid_api_key");
            return Some(reject(
                shared,
                status,
                message,
                "invalid_request_error",
                code,
            ));
        }
    }
    let problems = match parsed {
        Ok(body) => validate_chat_request(body),
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
    Some(openai_error(
        StatusCode::BAD_REQUEST,
        &message,
        "invalid_request_error",
        None,
    ))
}

/// Turns a resolved reply into the HTTP response for request number `n`.
fn respond(shared: &Shared, n: usize, request: &Value, reply: Reply) -> Response {
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
            tool_calls,
            finish_reason,
            usage,
        } => {
            let tool_calls = {
                let mut state = shared.lock();
                tool_calls
                    .iter()
                    .map(|call| {
                        let id = call.id.clone().unwrap_or_else(|| {
                            state.last_call_id += 1;
                            format!("call_{}", state.last_call_id)
                        });
                        (id, call)
                    })
                    .collect()
            };
            let plan = StreamPlan {
                completion_id: &format!("chatcmpl-mock-{n}"),
                model: request.get("model").and_then(Value::as_str).unwrap_or(""),
                include_usage: request.pointer("/stream_options/include_usage")
                    == Some(&Value::Bool(true)),
                text: text.as_deref(),
                tool_calls,
                finish_reason: finish_reason.as_deref(),
                usage,
            };
            sse_response(n, plan.events(), reply.options)
        }
        // `Reply::resolve` never returns a dynamic reply; answer rather than panic in a server.
        ReplyBody::Dynamic(_) => openai_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unresolved dynamic reply",
            "server_error",
            None,
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

/// Records `message` as a violation and answers with it as an OpenAI-shaped error.
fn reject(
    shared: &Shared,
    status: StatusCode,
    message: String,
    kind: &str,
    code: Option<&str>,
) -> Response {
    let response = openai_error(status, &message, kind, code);
    shared.violation(message);
    response
}

/// An error response shaped like the OpenAI API's.
fn openai_error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({
        "error": { "message": message, "type": kind, "param": null, "code": code },
    });
    (status, axum::Json(body)).into_response()
}
