//! W3C trace context on every gRPC hop, in-process and remote alike.
//!
//! The client side of every [`GrpcChannel`](crate::GrpcChannel) runs
//! [`PropagateLayer`], which writes the current span's context into the
//! request's `traceparent` (and `tracestate`) header. The server side,
//! [`ServerPolicy`](crate::transport::ServerPolicy), reads it back with
//! [`extract`] and opens the server span of the call (`rpc.system`,
//! `rpc.service`, `rpc.method`, the gRPC status) under it, and records the
//! call's duration. The gateway uses the same [`extract`] on its clients'
//! HTTP requests.
//!
//! The codec is written out here (W3C Trace Context level 1) instead of using
//! the SDK's propagator, so this crate needs only the OpenTelemetry API;
//! `openheim-boot` installs the SDK when export is configured.
//!
//! Cost when telemetry is off: the client layer reads the current span and
//! returns before allocating anything when it carries no valid OpenTelemetry
//! context; the server span is a `DEBUG` span of target [`RPC_TARGET`], which
//! only the OpenTelemetry layer enables by default, so without it the call
//! takes the plain path.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use tonic::body::Body;
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header carrying trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";
/// Target of the gRPC server spans; `openheim-boot` exports it at `DEBUG`.
pub const RPC_TARGET: &str = "openheim::rpc";

/// The OpenTelemetry context carried by `headers`; `None` when there is no
/// `traceparent` or it is malformed (a bad header is ignored, never an
/// error: the call proceeds as a new trace).
pub fn extract(headers: &HeaderMap) -> Option<Context> {
    let parent = headers.get(TRACEPARENT)?.to_str().ok()?;
    let state = headers
        .get(TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceState>().ok())
        .unwrap_or_default();
    let span = parse_traceparent(parent, state)?;
    Some(Context::new().with_remote_span_context(span))
}

/// Parents `span` on the trace context `headers` carry (a caller's or a
/// client's `traceparent`), if any; returns whether it did. A span without
/// an OpenTelemetry layer behind it stays as it is.
pub fn set_parent_from(span: &tracing::Span, headers: &HeaderMap) -> bool {
    if span.is_disabled() {
        return false;
    }
    match extract(headers) {
        Some(parent) => span.set_parent(parent).is_ok(),
        None => false,
    }
}

/// Writes the span context of `cx` into `headers`; writes nothing when
/// `cx` has no valid span context.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    let span = cx.span();
    let span = span.span_context();
    if !span.is_valid() {
        return;
    }
    if let Ok(value) = HeaderValue::try_from(format_traceparent(span)) {
        headers.insert(TRACEPARENT, value);
    }
    let state = span.trace_state().header();
    if !state.is_empty()
        && let Ok(value) = HeaderValue::try_from(state)
    {
        headers.insert(TRACESTATE, value);
    }
}

/// Writes the context of the current `tracing` span into `headers`, if it
/// has one (only when an OpenTelemetry layer is installed).
pub fn inject_current(headers: &mut HeaderMap) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    inject(&span.context(), headers);
}

/// `00-<trace id>-<span id>-<flags>`.
fn format_traceparent(span: &SpanContext) -> String {
    format!(
        "00-{:032x}-{:016x}-{:02x}",
        span.trace_id(),
        span.span_id(),
        span.trace_flags() & TraceFlags::SAMPLED
    )
}

/// Parses a `traceparent` value (W3C Trace Context, version 00 and the
/// forward-compatible rules for later versions).
fn parse_traceparent(value: &str, state: TraceState) -> Option<SpanContext> {
    let value = value.trim();
    let bytes = value.as_bytes();
    // version(2) - trace-id(32) - parent-id(16) - flags(2)
    const LEN: usize = 55;
    if bytes.len() < LEN {
        return None;
    }
    let field = |range: std::ops::Range<usize>| {
        let part = &value[range];
        part.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            .then_some(part)
    };
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let version = field(0..2)?;
    match version {
        "ff" => return None,
        // Version 00 is exactly 55 characters; later versions may append
        // fields after another dash.
        "00" if bytes.len() != LEN => return None,
        _ if bytes.len() > LEN && bytes[LEN] != b'-' => return None,
        _ => {}
    }
    let trace_id = TraceId::from_hex(field(3..35)?).ok()?;
    let span_id = SpanId::from_hex(field(36..52)?).ok()?;
    let flags = u8::from_str_radix(field(53..55)?, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = TraceFlags::new(flags) & TraceFlags::SAMPLED;
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// Client-side layer of every channel: injects the current trace context.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateLayer;

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Propagate { inner }
    }
}

/// See [`PropagateLayer`].
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for Propagate<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        inject_current(request.headers_mut());
        self.inner.call(request)
    }
}

/// The server side of one traced call: its span, parented to the caller's
/// context, and what its duration metric needs.
pub(crate) struct ServerCall {
    span: tracing::Span,
    start: Instant,
    service: String,
    method: String,
}

impl ServerCall {
    /// Opens the server span of `request`; `None` when nothing records it
    /// (telemetry off), so the caller takes its plain path.
    pub(crate) fn start<B>(request: &http::Request<B>) -> Option<Self> {
        let path = request.uri().path();
        // Health probes (every few seconds per container) are not traffic.
        if path.starts_with(HEALTH_PREFIX) {
            return None;
        }
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        let span = tracing::debug_span!(
            target: RPC_TARGET,
            "grpc.server",
            otel.name = path.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        if span.is_disabled() {
            return None;
        }
        set_parent_from(&span, request.headers());
        Some(Self {
            span,
            start: Instant::now(),
            service: service.to_owned(),
            method: method.to_owned(),
        })
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Hands the response on with a body that ends the call when it ends.
    pub(crate) fn respond(self, response: http::Response<Body>) -> http::Response<Body> {
        let status = grpc_status(response.headers());
        let (parts, body) = response.into_parts();
        let body = TracedBody {
            inner: body,
            status,
            call: Some(self),
        };
        http::Response::from_parts(parts, Body::new(body))
    }

    /// Records the outcome on the span and the duration metric.
    fn finish(self, status: i32) {
        self.span.record("rpc.grpc.status_code", status);
        if is_server_error(status) {
            self.span.record("otel.status_code", "error");
        }
        let attributes = [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", self.service),
            KeyValue::new("rpc.method", self.method),
            KeyValue::new("rpc.grpc.status_code", i64::from(status)),
        ];
        rpc_metrics()
            .server_duration
            .record(self.start.elapsed().as_secs_f64(), &attributes);
    }
}

/// Path prefix of the standard gRPC health service, which is not traced.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// gRPC codes that mean the server failed (OpenTelemetry RPC conventions):
/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
/// DATA_LOSS.
fn is_server_error(status: i32) -> bool {
    matches!(status, 2 | 4 | 12 | 13 | 14 | 15)
}

/// gRPC status CANCELLED: the caller dropped the response before its end.
const CANCELLED: i32 = 1;

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A response body that ends its call's span (with the gRPC status from
/// the trailers) when the body ends or is dropped.
struct TracedBody {
    inner: Body,
    status: Option<i32>,
    call: Option<ServerCall>,
}

impl http_body::Body for TracedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        let poll = match &this.call {
            Some(call) => call.span.in_scope(|| Pin::new(inner).poll_frame(cx)),
            None => Pin::new(inner).poll_frame(cx),
        };
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(grpc_status) {
                    this.status = Some(status);
                }
            }
            Poll::Ready(Some(Err(status))) => this.status = Some(status.code() as i32),
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    call.finish(this.status.unwrap_or(0));
                }
            }
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TracedBody {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(self.status.unwrap_or(CANCELLED));
        }
    }
}

/// Instruments of the transport, from the global meter provider (a no-op
/// unless `openheim-boot` installed one).
struct RpcMetrics {
    server_duration: opentelemetry::metrics::Histogram<f64>,
}

fn rpc_metrics() -> &'static RpcMetrics {
    static METRICS: std::sync::OnceLock<RpcMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = opentelemetry::global::meter("openheim-proto");
        RpcMetrics {
            server_duration: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Duration of gRPC calls handled, to the end of the response")
                .build(),
        }
    })
}

/// The OpenTelemetry GenAI convention's finish reason
/// (`gen_ai.response.finish_reasons`) for `stop`, as every span that records
/// one names it.
pub fn finish_reason(stop: crate::common::v1::StopReason) -> &'static str {
    use crate::common::v1::StopReason;
    match stop {
        StopReason::EndTurn | StopReason::Unspecified => "stop",
        StopReason::ToolUse => "tool_call",
        StopReason::MaxTokens => "length",
        StopReason::Refusal => "content_filter",
        StopReason::Cancelled => "cancelled",
        StopReason::MaxTurnRequests => "max_turn_requests",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_have_the_conventions_finish_reasons() {
        use crate::common::v1::StopReason as S;
        let names: Vec<&str> = [S::EndTurn, S::ToolUse, S::MaxTokens, S::Refusal]
            .into_iter()
            .map(finish_reason)
            .collect();
        assert_eq!(names, ["stop", "tool_call", "length", "content_filter"]);
    }
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn remote(headers: &HeaderMap) -> Option<SpanContext> {
        extract(headers).map(|cx| cx.span().span_context().clone())
    }

    #[test]
    fn a_traceparent_round_trips() {
        let incoming = headers(&[(TRACEPARENT, PARENT), (TRACESTATE, "vendor=x,other=y")]);
        let cx = extract(&incoming).unwrap();
        let span = cx.span().span_context().clone();
        assert_eq!(
            span.trace_id(),
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
        );
        assert_eq!(
            span.span_id(),
            SpanId::from_hex("b7ad6b7169203331").unwrap()
        );
        assert!(span.is_sampled() && span.is_remote());
        let mut outgoing = HeaderMap::new();
        inject(&cx, &mut outgoing);
        assert_eq!(outgoing[TRACEPARENT], PARENT);
        assert_eq!(outgoing[TRACESTATE], "vendor=x,other=y");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        let bad = [
            "",
            "garbage",
            // upper case, all-zero ids, version ff, wrong separators, lengths
            "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
        ];
        for value in bad {
            assert!(
                remote(&headers(&[(TRACEPARENT, value)])).is_none(),
                "{value:?} was accepted"
            );
        }
        assert!(remote(&HeaderMap::new()).is_none());
        // A later version may carry more fields after a dash.
        let future = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03-more";
        let span = remote(&headers(&[(TRACEPARENT, future)])).unwrap();
        assert_eq!(span.trace_flags(), TraceFlags::SAMPLED);
        // A broken tracestate does not spoil a good traceparent.
        let span = remote(&headers(&[(TRACEPARENT, PARENT), (TRACESTATE, "=,=")])).unwrap();
        assert!(span.is_valid());
    }

    #[test]
    fn no_header_without_a_context() {
        let mut outgoing = HeaderMap::new();
        inject_current(&mut outgoing);
        inject(&Context::new(), &mut outgoing);
        // A span recorded by a plain log subscriber has no OpenTelemetry
        // context either.
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
        );
        tracing::subscriber::with_default(subscriber, || {
            let _span = tracing::info_span!("work").entered();
            inject_current(&mut outgoing);
        });
        assert!(outgoing.is_empty(), "{outgoing:?}");
    }

    /// Logging at `info` (a service's default) does not pay for server
    /// spans: without an OpenTelemetry layer the call takes the plain path.
    #[test]
    fn no_server_span_for_a_log_subscriber() {
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        );
        let request = http::Request::builder()
            .uri("/openheim.test.v1.Echo/Say")
            .header(TRACEPARENT, PARENT)
            .body(())
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            assert!(ServerCall::start(&request).is_none());
        });
    }

    #[test]
    fn health_probes_are_not_traced() {
        let (_exporter, provider) = recording();
        let request = http::Request::builder()
            .uri("/grpc.health.v1.Health/Check")
            .body(())
            .unwrap();
        tracing::subscriber::with_default(subscriber(&provider), || {
            assert!(ServerCall::start(&request).is_none());
        });
    }

    /// A tracer provider recording into memory, and a subscriber bridging
    /// `tracing` to it (as `openheim-boot` installs one).
    fn recording() -> (InMemorySpanExporter, SdkTracerProvider) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        (exporter, provider)
    }

    fn subscriber(provider: &SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
        let tracer = provider.tracer("test");
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    #[test]
    fn the_current_span_is_injected() {
        let (exporter, provider) = recording();
        let mut outgoing = HeaderMap::new();
        tracing::subscriber::with_default(subscriber(&provider), || {
            let _span = tracing::info_span!("caller").entered();
            inject_current(&mut outgoing);
        });
        let _ = provider.force_flush();
        let spans = exporter.get_finished_spans().unwrap();
        let caller = &spans[0].span_context;
        let sent = remote(&outgoing).unwrap();
        assert_eq!(sent.trace_id(), caller.trace_id());
        assert_eq!(sent.span_id(), caller.span_id());
    }

    /// Through a channel's client layer and a server's policy, in process:
    /// the server span belongs to the caller's trace, with the RPC
    /// attributes and the status of the call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_call_is_traced_from_client_to_server() {
        use tower::ServiceExt;
        let (exporter, provider) = recording();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen_by_server = std::sync::Arc::clone(&seen);
        let server = tower::service_fn(move |request: http::Request<Body>| {
            *seen_by_server.lock().unwrap() = request.headers().get(TRACEPARENT).cloned();
            async {
                let mut response = http::Response::new(Body::empty());
                response
                    .headers_mut()
                    .insert("grpc-status", HeaderValue::from_static("0"));
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let channel = crate::transport::in_process(server);
        let dispatch = tracing::Dispatch::new(subscriber(&provider));
        let call = async {
            let request = http::Request::builder()
                .uri("/openheim.test.v1.Echo/Say")
                .body(Body::empty())
                .unwrap();
            let response = channel.oneshot(request).await.unwrap();
            drop(response);
        };
        let caller = {
            let _guard = tracing::dispatcher::set_default(&dispatch);
            tracing::info_span!("caller")
        };
        {
            use tracing::Instrument;
            use tracing::instrument::WithSubscriber;
            call.instrument(caller)
                .with_subscriber(dispatch.clone())
                .await;
        }
        let _ = provider.force_flush();
        let spans = exporter.get_finished_spans().unwrap();
        let caller = spans.iter().find(|s| s.name == "caller").unwrap();
        let server = spans
            .iter()
            .find(|s| s.name == "openheim.test.v1.Echo/Say")
            .unwrap_or_else(|| panic!("no server span in {spans:#?}"));
        assert_eq!(
            server.span_context.trace_id(),
            caller.span_context.trace_id()
        );
        assert_eq!(server.parent_span_id, caller.span_context.span_id());
        assert_eq!(server.span_kind, opentelemetry::trace::SpanKind::Server);
        let attribute = |key: &str| {
            server
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(attribute("rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            attribute("rpc.service").as_deref(),
            Some("openheim.test.v1.Echo")
        );
        assert_eq!(attribute("rpc.method").as_deref(), Some("Say"));
        assert_eq!(attribute("rpc.grpc.status_code").as_deref(), Some("0"));
        let sent = seen.lock().unwrap().clone().unwrap();
        assert!(
            sent.to_str()
                .unwrap()
                .contains(&format!("{:032x}", caller.span_context.trace_id()))
        );
    }
}
