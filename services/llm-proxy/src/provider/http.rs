//! HTTP plumbing shared by every provider client: the validated endpoint
//! (base URL, key header, idle timeout), sending a streaming request,
//! reading error answers, and turning a server-sent-event body into
//! [`ProviderEvent`]s through a per-format [`Decoder`].
//!
//! Keys: the key header is marked sensitive (never shown in debug output),
//! and every error built from what a provider sent passes through
//! [`Endpoint::redact`], because some providers quote the key they rejected.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::stream::{self, BoxStream};
use futures::{FutureExt, Stream, StreamExt};
use openheim_config::{ProviderConfig, Secret};
use openheim_proto::common::v1::StopReason;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::time::timeout;

use super::ProviderEvent;
use super::wire_error::{self, ErrorBody};
use crate::error::{HttpFailure, LlmError};
use crate::http_clients::HttpClients;
use crate::retry::{parse_retry_after, parse_retry_after_ms};

/// Error bodies are read up to this size: enough for any real error message,
/// bounded against a misbehaving server.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Events read (and ignored) after the terminal event while looking for the
/// body's end.
const MAX_TRAILING_EVENTS: usize = 4;
/// Provider messages are quoted up to this many characters.
const MAX_ERROR_MESSAGE_CHARS: usize = 1000;
/// JSON answers (embeddings) are read up to this size: 256 vectors of the
/// largest common dimension (3 072) as JSON fit with room to spare.
const MAX_JSON_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How a provider wants its key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI and compatible servers).
    Bearer,
    /// The key alone in a header of this name (`x-api-key`, `x-goog-api-key`).
    Named(&'static str),
}

/// One provider's validated connection settings, shared by its requests.
pub(crate) struct Endpoint {
    pub(crate) name: String,
    /// `api_base`, parsed; request paths go after its path, before its
    /// query (`…/v1/chat/completions?api-version=…`).
    base: reqwest::Url,
    /// The key header, marked sensitive so it never shows in debug output.
    auth: Option<(HeaderName, HeaderValue)>,
    /// Kept only to scrub the key from what providers send back.
    key: Option<Secret>,
    /// What a 401 should tell the user to fix.
    pub(crate) auth_hint: String,
    /// Longest silence tolerated while waiting for headers or the next event.
    pub(crate) idle_timeout: Duration,
    client: reqwest::Client,
}

impl Endpoint {
    /// Validates the provider's settings; no network access happens here.
    pub(crate) fn new(
        name: &str,
        config: &ProviderConfig,
        clients: &HttpClients,
        key_header: KeyHeader,
    ) -> Result<Self, LlmError> {
        let base = config.api_base_for(name).ok_or_else(|| {
            LlmError::config(format!(
                "provider {name} has no api_base (required for openai_compatible providers, e.g. http://localhost:11434/v1)"
            ))
        })?;
        let shown = openheim_config::redact_url(&base);
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            LlmError::config(format!("provider {name}: invalid api_base {shown:?}: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::config(format!(
                "provider {name}: api_base {shown:?} must be an http:// or https:// URL"
            )));
        }
        let key = config.api_key.clone().filter(|k| !k.is_empty());
        if key.is_some() && parsed.scheme() == "http" && !openheim_config::is_loopback_url(&base) {
            return Err(LlmError::config(format!(
                "provider {name}: refusing to send the API key over plain http:// to non-loopback host {}; use https://",
                parsed.host_str().unwrap_or_default()
            )));
        }
        let auth = key
            .as_ref()
            .map(|key| auth_header(key, key_header))
            .transpose()?;
        let client = clients.for_scheme(parsed.scheme())?;
        Ok(Self {
            name: name.to_owned(),
            base: parsed,
            auth,
            auth_hint: auth_hint(name, config, key.is_some()),
            key,
            idle_timeout: Duration::from_secs(config.timeout_secs.max(1)),
            client,
        })
    }

    /// The URL of `path` (which may carry a query of its own) under the
    /// base: the path joined to the base's path, the queries of both kept.
    /// Built once per provider request kind, so requests do not parse it.
    pub(crate) fn url(&self, path: &str) -> reqwest::Url {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let mut url = self.base.clone();
        let joined = format!("{}{path}", self.base.path().trim_end_matches('/'));
        url.set_path(&joined);
        let merged = match (self.base.query(), query) {
            (Some(base), Some(own)) => Some(format!("{base}&{own}")),
            (base, own) => base.or(own).map(str::to_owned),
        };
        url.set_query(merged.as_deref());
        url
    }

    /// The URL of `path` beside the base's `/v1` (the base path without a
    /// trailing `/v1`), the base's query kept: Ollama's own API lives next
    /// to its OpenAI-compatible one.
    pub(crate) fn url_beside_v1(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        let base = self.base.path().trim_end_matches('/');
        let root = base.strip_suffix("/v1").unwrap_or(base);
        url.set_path(&format!("{root}{path}"));
        url
    }

    /// Sends a JSON `body` asking for an event stream; waits at most the
    /// idle timeout for the response head.
    pub(crate) async fn post(
        &self,
        url: &reqwest::Url,
        headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, LlmError> {
        let mut builder = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .body(body);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Some((name, value)) = &self.auth {
            builder = builder.header(name, value);
        }
        match timeout(self.idle_timeout, builder.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(self.transport_error(&error)),
            Err(_) => Err(self.idle_error("the response")),
        }
    }

    /// Sends a JSON `body` expecting a JSON answer; waits at most the idle
    /// timeout for the response head.
    pub(crate) async fn post_json(
        &self,
        url: &reqwest::Url,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, LlmError> {
        let mut builder = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some((name, value)) = &self.auth {
            builder = builder.header(name, value);
        }
        match timeout(self.idle_timeout, builder.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(self.transport_error(&error)),
            Err(_) => Err(self.idle_error("the response")),
        }
    }

    /// Reads a successful JSON answer, bounded in size, each chunk within
    /// the idle timeout.
    pub(crate) async fn read_json(
        &self,
        mut response: reqwest::Response,
    ) -> Result<serde_json::Value, LlmError> {
        let mut body = Vec::new();
        loop {
            match timeout(self.idle_timeout, response.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    if body.len() + bytes.len() > MAX_JSON_BODY_BYTES {
                        return Err(self.protocol_error(format!(
                            "the answer is larger than {MAX_JSON_BODY_BYTES} bytes"
                        )));
                    }
                    body.extend_from_slice(&bytes);
                }
                Ok(Ok(None)) => break,
                Ok(Err(error)) => return Err(self.transport_error(&error)),
                Err(_) => return Err(self.idle_error("the answer's body")),
            }
        }
        serde_json::from_slice(&body)
            .map_err(|e| self.protocol_error(format!("the answer is not JSON: {e}")))
    }

    pub(crate) fn protocol_error(&self, message: String) -> LlmError {
        self.redact(LlmError::Protocol {
            provider: self.name.clone(),
            message,
        })
    }

    /// A server that ignores `stream: true` answers with one JSON document;
    /// say so instead of reporting an empty stream.
    pub(crate) fn expect_event_stream(
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

    /// Reads a non-success answer: status, bounded body and `Retry-After`.
    pub(crate) async fn read_error(&self, mut response: reqwest::Response) -> ErrorAnswer {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY_BYTES {
            match timeout(self.idle_timeout, response.chunk()).await {
                Ok(Ok(Some(bytes))) => body.extend_from_slice(&bytes),
                // A body we cannot read fully still leaves the status to report.
                Ok(Ok(None) | Err(_)) | Err(_) => break,
            }
        }
        ErrorAnswer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            parsed: None,
            retry_after,
        }
        .parse()
    }

    /// The error for an HTTP failure answer, with the provider's message
    /// quoted (redacted, truncated).
    pub(crate) fn http_error(&self, answer: &ErrorAnswer, model: &str, url: &str) -> LlmError {
        let (message, context_too_long) = match &answer.parsed {
            Some(error) => {
                let too_long = wire_error::is_context_too_long(error.code(), error.message());
                (error.message().to_owned(), too_long)
            }
            None => (answer.body.trim().to_owned(), false),
        };
        let retry_after = answer
            .retry_after
            .or_else(|| answer.parsed.as_ref().and_then(ErrorBody::retry_delay));
        LlmError::from_http(HttpFailure {
            provider: &self.name,
            model,
            status: answer.status,
            message: truncate(message),
            context_too_long,
            retry_after,
            auth_hint: &self.auth_hint,
            url,
        })
        .redacted(self.secret())
    }

    /// Removes the key from an error built from a provider's answer.
    /// The key, and every URL's query values and password, out of `error`.
    pub(crate) fn redact(&self, error: LlmError) -> LlmError {
        error.redacted(self.secret())
    }

    fn secret(&self) -> &str {
        self.key.as_ref().map(Secret::expose).unwrap_or_default()
    }

    pub(crate) fn idle_error(&self, waiting_for: &str) -> LlmError {
        LlmError::Timeout {
            provider: self.name.clone(),
            status: None,
            message: format!(
                "no data for {} s while waiting for {waiting_for} (timeout_secs)",
                self.idle_timeout.as_secs()
            ),
        }
    }

    pub(crate) fn transport_error(&self, error: &reqwest::Error) -> LlmError {
        let message = error_chain(error);
        let error = if error.is_timeout() {
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
        };
        self.redact(error)
    }

    pub(crate) fn early_end(&self) -> LlmError {
        LlmError::Network {
            provider: self.name.clone(),
            message: "stream ended early, before the answer was complete".into(),
        }
    }
}

/// A provider's non-success answer.
#[derive(Debug)]
pub(crate) struct ErrorAnswer {
    pub status: u16,
    /// The body as text (bounded).
    pub body: String,
    /// The body as an error object, when it is one.
    pub parsed: Option<ErrorBody>,
    pub retry_after: Option<Duration>,
}

impl ErrorAnswer {
    fn parse(mut self) -> Self {
        self.parsed = wire_error::parse_error_body(&self.body);
        self
    }

    /// The provider's message, or the raw body when it had no known shape.
    pub(crate) fn message(&self) -> &str {
        match &self.parsed {
            Some(error) => error.message(),
            None => self.body.trim(),
        }
    }
}

fn auth_header(key: &Secret, header: KeyHeader) -> Result<(HeaderName, HeaderValue), LlmError> {
    let invalid =
        || LlmError::config("the API key contains characters not allowed in an HTTP header");
    let (name, mut value) = match header {
        KeyHeader::Bearer => (
            AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(|_| invalid())?,
        ),
        KeyHeader::Named(name) => (
            HeaderName::from_static(name),
            HeaderValue::try_from(key.expose()).map_err(|_| invalid())?,
        ),
    };
    value.set_sensitive(true);
    Ok((name, value))
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

/// OpenAI's precise `retry-after-ms`, else the standard `Retry-After`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| header("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now())))
}

pub(crate) fn truncate(mut message: String) -> String {
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

/// Turns one wire format's server-sent events into [`ProviderEvent`]s.
pub(crate) trait Decoder: Send + 'static {
    /// Decodes one event (`event` is the SSE event name, empty when the
    /// server sent none), appending what it means to `out`. Returns the stop
    /// reason when this event ends the answer.
    fn decode(
        &mut self,
        event: &str,
        data: &str,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Option<StopReason>, LlmError>;

    /// The body ended without a terminal event. Returns the stop reason when
    /// the answer is complete nonetheless (formats without a terminal event),
    /// `None` for an early end.
    fn end_of_body(&mut self, out: &mut VecDeque<ProviderEvent>) -> Option<StopReason>;
}

/// Opens a request with `open` and streams its decoded events; errors of
/// the opening become the stream's only item.
pub(crate) fn stream_with<D, F>(
    endpoint: Arc<Endpoint>,
    open: F,
) -> BoxStream<'static, Result<ProviderEvent, LlmError>>
where
    D: Decoder,
    F: Future<Output = Result<(reqwest::Response, D), LlmError>> + Send + 'static,
{
    stream::once(async move {
        match open.await {
            Ok((response, decoder)) => events(endpoint, response, decoder),
            Err(error) => stream::iter([Err(error)]).boxed(),
        }
    })
    .flatten()
    .boxed()
}

fn events<D: Decoder>(
    endpoint: Arc<Endpoint>,
    response: reqwest::Response,
    decoder: D,
) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
    let reader = SseReader {
        endpoint,
        events: Box::pin(response.bytes_stream().eventsource()),
        decoder,
        pending: VecDeque::new(),
        done: false,
    };
    stream::unfold(reader, |mut reader| async move {
        let item = reader.next_event().await?;
        Some((item, reader))
    })
    .boxed()
}

type SseEvents =
    Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// Reads one answer's event stream and hands out its events one by one.
struct SseReader<D> {
    endpoint: Arc<Endpoint>,
    events: SseEvents,
    decoder: D,
    /// Events decoded but not yet handed out.
    pending: VecDeque<ProviderEvent>,
    done: bool,
}

impl<D: Decoder> SseReader<D> {
    async fn next_event(&mut self) -> Option<Result<ProviderEvent, LlmError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let next = match timeout(self.endpoint.idle_timeout, self.events.next()).await {
                Ok(next) => next,
                Err(_) => return self.fail(self.endpoint.idle_error("the next event")),
            };
            match next {
                Some(Ok(event)) => {
                    match self
                        .decoder
                        .decode(&event.event, &event.data, &mut self.pending)
                    {
                        Ok(Some(stop)) => self.finish(stop),
                        Ok(None) => {}
                        Err(error) => return self.fail(error),
                    }
                }
                Some(Err(error)) => return self.fail(self.stream_error(error)),
                None => match self.decoder.end_of_body(&mut self.pending) {
                    Some(stop) => self.finish(stop),
                    None => return self.fail(self.endpoint.early_end()),
                },
            }
        }
    }

    fn finish(&mut self, stop: StopReason) {
        // The end of the HTTP body usually arrives with the terminal event;
        // reading it now (without waiting) lets the connection go back to
        // the pool. Bounded, in case a server keeps talking.
        for _ in 0..MAX_TRAILING_EVENTS {
            if !matches!(self.events.next().now_or_never(), Some(Some(_))) {
                break;
            }
        }
        self.pending.push_back(ProviderEvent::Finished(stop));
        self.done = true;
    }

    fn fail(&mut self, error: LlmError) -> Option<Result<ProviderEvent, LlmError>> {
        self.done = true;
        self.pending.clear();
        Some(Err(self.endpoint.redact(error)))
    }

    fn stream_error(&self, error: EventStreamError<reqwest::Error>) -> LlmError {
        match error {
            EventStreamError::Transport(error) => self.endpoint.transport_error(&error),
            EventStreamError::Utf8(e) => LlmError::Protocol {
                provider: self.endpoint.name.clone(),
                message: format!("the event stream is not valid UTF-8: {e}"),
            },
            EventStreamError::Parser(e) => LlmError::Protocol {
                provider: self.endpoint.name.clone(),
                message: format!("invalid event stream: {e}"),
            },
        }
    }
}

/// A JSON decoding failure of one event, as the error the caller sees.
pub(crate) fn parse_error(provider: &str, what: &str, error: &serde_json::Error) -> LlmError {
    LlmError::Protocol {
        provider: provider.to_owned(),
        message: format!("cannot parse {what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use openheim_config::ProviderKind;

    use super::*;

    fn endpoint(config: ProviderConfig) -> Result<Endpoint, LlmError> {
        Endpoint::new(
            "p",
            &config,
            &reqwest::Client::new().into(),
            KeyHeader::Bearer,
        )
    }

    fn endpoint_named(config: ProviderConfig) -> Result<Endpoint, LlmError> {
        let config = ProviderConfig {
            kind: Some(ProviderKind::OpenaiCompatible),
            ..config
        };
        endpoint(config)
    }

    #[test]
    fn keys_are_never_sent_over_plain_http_to_remote_hosts() {
        let remote = ProviderConfig {
            kind: Some(ProviderKind::Openai),
            api_base: Some("http://example.com/v1".into()),
            api_key: Some(Secret::new("sk-secret")),
            ..ProviderConfig::default()
        };
        let Err(err) = endpoint(remote.clone()) else {
            panic!("expected an error")
        };
        assert!(err.to_string().contains("plain http://"), "{err}");
        assert!(!err.to_string().contains("sk-secret"));
        let local = ProviderConfig {
            api_base: Some("http://127.0.0.1:11434/v1/".into()),
            ..remote.clone()
        };
        let local = endpoint(local).map_err(|e| e.to_string());
        assert_eq!(
            local.map(|e| e.url("/chat/completions").to_string()),
            Ok("http://127.0.0.1:11434/v1/chat/completions".to_owned())
        );
    }

    #[test]
    fn paths_go_before_the_base_query_and_errors_hide_its_values() {
        let azure = ProviderConfig {
            kind: Some(ProviderKind::OpenaiCompatible),
            api_base: Some("https://h.example/openai/v1?api-key=s3cr3t".into()),
            ..ProviderConfig::default()
        };
        let Ok(endpoint) = endpoint(azure) else {
            panic!("valid config")
        };
        assert_eq!(
            endpoint.url("/chat/completions").as_str(),
            "https://h.example/openai/v1/chat/completions?api-key=s3cr3t"
        );
        assert_eq!(
            endpoint
                .url("/models/m:streamGenerateContent?alt=sse")
                .as_str(),
            "https://h.example/openai/v1/models/m:streamGenerateContent?api-key=s3cr3t&alt=sse"
        );
        let error = endpoint.redact(LlmError::Network {
            provider: "p".into(),
            message: "error sending request for url (https://h.example/openai/v1/chat/completions?api-key=s3cr3t)".into(),
        });
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
        let bad = ProviderConfig {
            api_base: Some("ftp://h.example/v1?api-key=s3cr3t".into()),
            ..ProviderConfig::default()
        };
        let Err(error) = endpoint_named(bad) else {
            panic!("ftp is refused")
        };
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }

    #[test]
    fn the_key_header_is_sensitive() {
        let key = Secret::new("k-1");
        for header in [KeyHeader::Bearer, KeyHeader::Named("x-api-key")] {
            let Ok((_, value)) = auth_header(&key, header) else {
                panic!("valid key")
            };
            assert!(value.is_sensitive());
            assert!(!format!("{value:?}").contains("k-1"));
        }
        assert!(auth_header(&Secret::new("bad\nkey"), KeyHeader::Bearer).is_err());
    }

    #[test]
    fn error_answers_are_parsed_redacted_and_truncated() {
        let Ok(endpoint) = endpoint(ProviderConfig {
            kind: Some(ProviderKind::Openai),
            api_key: Some(Secret::new("sk-secret")),
            env_var: Some("OPENAI_API_KEY".into()),
            ..ProviderConfig::default()
        }) else {
            panic!("valid config")
        };
        let answer = ErrorAnswer {
            status: 400,
            body: format!(
                r#"{{"error":{{"message":"key sk-secret is odd {}","type":"invalid_request_error"}}}}"#,
                "x".repeat(2000)
            ),
            parsed: None,
            retry_after: None,
        }
        .parse();
        let error = endpoint.http_error(&answer, "m", "u").to_string();
        assert!(!error.contains("sk-secret"), "{error}");
        assert!(error.contains("key [redacted] is odd"), "{error}");
        assert!(error.ends_with('…'), "{error}");
    }
}
