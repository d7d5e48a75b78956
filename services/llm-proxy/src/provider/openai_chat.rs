//! OpenAI Chat Completions client, for OpenAI itself and every
//! OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp, …): one
//! streaming `POST {api_base}/chat/completions`, read as server-sent events.

mod chunk;
mod request;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::stream::{self, BoxStream};
use futures::{FutureExt, Stream, StreamExt};
use openheim_config::{ProviderConfig, ProviderKind, Secret};
use openheim_proto::common::v1::StopReason;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::time::timeout;

use self::chunk::ChunkDecoder;
use self::request::BodyOptions;
use super::{LlmProvider, ProviderEvent, ProviderRequest};
use crate::error::{HttpFailure, LlmError};
use crate::retry::{parse_retry_after, parse_retry_after_ms};

/// Error bodies are read up to this size: enough for any real error message,
/// bounded against a misbehaving server.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Events read (and ignored) after `[DONE]` while looking for the body's end.
const MAX_TRAILING_EVENTS: usize = 4;
/// Provider messages are quoted up to this many characters.
const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// A provider speaking Chat Completions.
pub struct OpenAiChat {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    kind: ProviderKind,
    url: String,
    /// `Bearer <key>`, marked sensitive so it never shows in debug output.
    authorization: Option<HeaderValue>,
    /// Kept only to scrub the key from provider error messages.
    key: Option<Secret>,
    /// What a 401 should tell the user to fix.
    auth_hint: String,
    /// Longest silence tolerated while waiting for headers or the next chunk.
    idle_timeout: Duration,
    max_tokens: Option<u32>,
    client: reqwest::Client,
    /// Cleared the first time an OpenAI-compatible server rejects
    /// `stream_options`, so later requests do not pay a failed round trip.
    stream_options: AtomicBool,
}

impl OpenAiChat {
    /// Validates the provider's settings; no network access happens here.
    pub fn new(
        name: &str,
        kind: ProviderKind,
        config: &ProviderConfig,
        client: reqwest::Client,
    ) -> Result<Self, LlmError> {
        let base = config.api_base_for(name).ok_or_else(|| {
            LlmError::config(format!(
                "provider {name} has no api_base (required for openai_compatible providers, e.g. http://localhost:11434/v1)"
            ))
        })?;
        let base = base.trim_end_matches('/');
        let parsed = reqwest::Url::parse(base).map_err(|e| {
            LlmError::config(format!("provider {name}: invalid api_base {base:?}: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::config(format!(
                "provider {name}: api_base {base:?} must be an http:// or https:// URL"
            )));
        }
        let key = config.api_key.clone().filter(|k| !k.is_empty());
        if key.is_some() && parsed.scheme() == "http" && !openheim_config::is_loopback_url(base) {
            return Err(LlmError::config(format!(
                "provider {name}: refusing to send the API key over plain http:// to non-loopback host {}; use https://",
                parsed.host_str().unwrap_or_default()
            )));
        }
        let authorization = key.as_ref().map(bearer).transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                kind,
                url: format!("{base}/chat/completions"),
                authorization,
                auth_hint: auth_hint(name, config, key.is_some()),
                key,
                idle_timeout: Duration::from_secs(config.timeout_secs.max(1)),
                max_tokens: config.max_tokens,
                client,
                stream_options: AtomicBool::new(true),
            }),
        })
    }
}

fn bearer(key: &Secret) -> Result<HeaderValue, LlmError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(|_| {
        LlmError::config("the API key contains characters not allowed in an HTTP header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn auth_hint(name: &str, config: &ProviderConfig, has_key: bool) -> String {
    match (&config.env_var, has_key) {
        (Some(var), true) => format!("check {var}"),
        (Some(var), false) => format!("no API key is configured: set {var}"),
        (None, true) => format!("check providers.{name}.api_key"),
        (None, false) => format!(
            "no API key is configured: set providers.{name}.env_var to the variable that holds it"
        ),
    }
}

impl LlmProvider for OpenAiChat {
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        let inner = Arc::clone(&self.inner);
        stream::once(async move {
            match inner.open(&request).await {
                Ok(response) => inner.events(response, &request.model),
                Err(error) => stream::iter([Err(error)]).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

impl Inner {
    /// Sends the request and returns the successful (streaming) response.
    async fn open(&self, request: &ProviderRequest) -> Result<reqwest::Response, LlmError> {
        let compatible = self.kind == ProviderKind::OpenaiCompatible;
        let mut stream_options = !compatible || self.stream_options.load(Ordering::Relaxed);
        loop {
            let body = request::encode(
                &request.model,
                &request.conversation,
                BodyOptions {
                    stream_options,
                    max_completion_tokens: self.kind == ProviderKind::Openai,
                    default_max_tokens: self.max_tokens,
                },
            )?;
            let response = self.send(body).await?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                return self.check_content_type(response);
            }
            let answer = self.read_error(response).await;
            // Some compatible servers reject the field outright; the only
            // signal is their message. Drop it once, for good.
            if compatible
                && stream_options
                && status == 400
                && answer.message.contains("stream_options")
            {
                tracing::info!(provider = %self.name, "server rejects stream_options; retrying without it");
                self.stream_options.store(false, Ordering::Relaxed);
                stream_options = false;
                continue;
            }
            return Err(LlmError::from_http(HttpFailure {
                provider: &self.name,
                model: &request.model,
                status,
                message: answer.message,
                context_too_long: answer.context_too_long,
                retry_after: answer.retry_after,
                auth_hint: &self.auth_hint,
                url: &self.url,
            }));
        }
    }

    async fn send(&self, body: Vec<u8>) -> Result<reqwest::Response, LlmError> {
        let mut builder = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .body(body);
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        match timeout(self.idle_timeout, builder.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(self.transport_error(&error)),
            Err(_) => Err(self.idle_error("the response")),
        }
    }

    /// A server that ignores `stream: true` answers with one JSON document;
    /// say so instead of reporting an empty stream.
    fn check_content_type(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, LlmError> {
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type.starts_with("application/json") {
            return Err(LlmError::Protocol {
                provider: self.name.clone(),
                message: "expected a text/event-stream answer, got application/json".into(),
            });
        }
        Ok(response)
    }

    async fn read_error(&self, mut response: reqwest::Response) -> ErrorAnswer {
        let retry_after = retry_after(response.headers());
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY_BYTES {
            match timeout(self.idle_timeout, response.chunk()).await {
                Ok(Ok(Some(bytes))) => body.extend_from_slice(&bytes),
                // A body we cannot read fully still leaves the status to report.
                Ok(Ok(None) | Err(_)) | Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&body);
        let (message, context_too_long) = match chunk::parse_error_body(&text) {
            Some(error) => {
                let too_long = chunk::is_context_too_long(error.code(), error.message());
                (error.message().to_owned(), too_long)
            }
            None => (text.trim().to_owned(), false),
        };
        ErrorAnswer {
            message: self.redact(truncate(message)),
            context_too_long,
            retry_after,
        }
    }

    /// Removes the key from text that came from the provider.
    fn redact(&self, message: String) -> String {
        match &self.key {
            Some(key) if message.contains(key.expose()) => {
                message.replace(key.expose(), "[redacted]")
            }
            _ => message,
        }
    }

    fn events(
        self: &Arc<Self>,
        response: reqwest::Response,
        model: &str,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        let state = SseReader {
            provider: Arc::clone(self),
            events: Box::pin(response.bytes_stream().eventsource()),
            decoder: ChunkDecoder::new(&self.name, model),
            pending: VecDeque::new(),
            done: false,
        };
        stream::unfold(state, |mut state| async move {
            let item = state.next_event().await?;
            Some((item, state))
        })
        .boxed()
    }

    fn idle_error(&self, waiting_for: &str) -> LlmError {
        LlmError::Timeout {
            provider: self.name.clone(),
            status: None,
            message: format!(
                "no data for {} s while waiting for {waiting_for} (timeout_secs)",
                self.idle_timeout.as_secs()
            ),
        }
    }

    fn transport_error(&self, error: &reqwest::Error) -> LlmError {
        let message = self.redact(error_chain(error));
        if error.is_timeout() {
            LlmError::Timeout {
                provider: self.name.clone(),
                status: None,
                message,
            }
        } else {
            LlmError::Network {
                provider: self.name.clone(),
                message,
            }
        }
    }
}

struct ErrorAnswer {
    message: String,
    context_too_long: bool,
    retry_after: Option<Duration>,
}

/// OpenAI's precise `retry-after-ms`, else the standard `Retry-After`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| header("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now())))
}

fn truncate(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// `error: cause: cause`, since reqwest's own message alone rarely says
/// what went wrong (refused, DNS, TLS…).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

type SseEvents =
    Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// Reads one answer's event stream and hands out its events one by one.
struct SseReader {
    provider: Arc<Inner>,
    events: SseEvents,
    decoder: ChunkDecoder,
    /// Events decoded from a chunk but not yet handed out.
    pending: VecDeque<ProviderEvent>,
    done: bool,
}

impl SseReader {
    async fn next_event(&mut self) -> Option<Result<ProviderEvent, LlmError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let next = match timeout(self.provider.idle_timeout, self.events.next()).await {
                Ok(next) => next,
                Err(_) => return self.fail(self.provider.idle_error("the next chunk")),
            };
            match next {
                Some(Ok(event)) if event.data == "[DONE]" => self.finish(),
                Some(Ok(event)) => {
                    if let Err(error) = self.decoder.decode(&event.data, &mut self.pending) {
                        return self.fail(error);
                    }
                }
                Some(Err(error)) => return self.fail(self.stream_error(error)),
                // Servers that omit `[DONE]` still end with a finish_reason.
                None => match self.decoder.stop_reason() {
                    Some(_) => self.finish(),
                    None => {
                        return self.fail(LlmError::Network {
                            provider: self.provider.name.clone(),
                            message: "stream ended early, before the answer was complete".into(),
                        });
                    }
                },
            }
        }
    }

    fn finish(&mut self) {
        // The end of the HTTP body usually arrives with `[DONE]`; reading it
        // now (without waiting) lets the connection go back to the pool.
        // Bounded, in case a server keeps talking after `[DONE]`.
        for _ in 0..MAX_TRAILING_EVENTS {
            if !matches!(self.events.next().now_or_never(), Some(Some(_))) {
                break;
            }
        }
        let stop = self.decoder.stop_reason().unwrap_or(StopReason::EndTurn);
        self.pending.push_back(ProviderEvent::Finished(stop));
        self.done = true;
    }

    fn fail(&mut self, error: LlmError) -> Option<Result<ProviderEvent, LlmError>> {
        self.done = true;
        self.pending.clear();
        Some(Err(error))
    }

    fn stream_error(&self, error: EventStreamError<reqwest::Error>) -> LlmError {
        match error {
            EventStreamError::Transport(error) => self.provider.transport_error(&error),
            EventStreamError::Utf8(e) => LlmError::Protocol {
                provider: self.provider.name.clone(),
                message: format!("the event stream is not valid UTF-8: {e}"),
            },
            EventStreamError::Parser(e) => LlmError::Protocol {
                provider: self.provider.name.clone(),
                message: format!("invalid event stream: {e}"),
            },
        }
    }
}
