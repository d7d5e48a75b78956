//! A real OTLP/gRPC receiver for telemetry scenarios: the collector's trace
//! and metrics services on a loopback port, keeping every export request it
//! receives, flattened into spans and metric points for assertions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// An attribute value, as far as the scenarios need one.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps and bytes, rendered for messages.
    Other(String),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }
}

pub type Attributes = BTreeMap<String, Value>;

/// One received span.
#[derive(Debug, Clone)]
pub struct Span {
    /// `service.name` of the process that sent it.
    pub service: String,
    /// Hex, as in a `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client.
    pub kind: i32,
    pub attributes: Attributes,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(Value::as_str)
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(Value::as_int)
    }
}

/// One received metric data point.
#[derive(Debug, Clone)]
pub struct Point {
    pub service: String,
    pub metric: String,
    pub attributes: Attributes,
    /// A counter's value, or a histogram's sum.
    pub value: f64,
    /// A histogram's count (1 for a counter point).
    pub count: u64,
}

impl Point {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    points: Vec<Point>,
}

type Shared = Arc<Mutex<Received>>;

/// The receiver; stops when dropped.
pub struct OtlpReceiver {
    addr: std::net::SocketAddr,
    received: Shared,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Serves on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// Serves on `address` (e.g. `0.0.0.0:4317` in a container).
    pub async fn start_on(address: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Shared::default();
        let stop = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(Arc::clone(&received))))
            .add_service(MetricsServiceServer::new(Collector(Arc::clone(&received))))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stop.clone().cancelled_owned(),
            );
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                panic!("OTLP receiver failed: {e}");
            }
        });
        Self {
            addr,
            received,
            stop,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `telemetry.otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.lock().spans.clone()
    }

    /// Every metric point received so far.
    pub fn points(&self) -> Vec<Point> {
        self.lock().points.clone()
    }

    /// Waits (bounded by `timeout`) until `done` holds for the spans
    /// received, and returns them; panics with what arrived otherwise.
    pub async fn wait_for_spans(
        &self,
        timeout: Duration,
        done: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let spans = self.spans();
                if done(&spans) {
                    return spans;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        waited
            .unwrap_or_else(|_| panic!("spans did not arrive in {timeout:?}: {:#?}", self.spans()))
    }

    /// Waits (bounded by `timeout`) for a point of metric `name`.
    pub async fn wait_for_metric(&self, timeout: Duration, name: &str) -> Vec<Point> {
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let points: Vec<Point> = self
                    .points()
                    .into_iter()
                    .filter(|p| p.metric == name)
                    .collect();
                if !points.is_empty() {
                    return points;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            let names: Vec<String> = self.points().into_iter().map(|p| p.metric).collect();
            panic!("no {name} point in {timeout:?}; got {names:?}")
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// The collector's services, appending to the shared record.
struct Collector(Shared);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = Vec::new();
        for resource in request.into_inner().resource_spans {
            let service = service_name(resource.resource.as_ref());
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        attributes: attributes(&span.attributes),
                        status: span.status.map_or(0, |s| s.code),
                    });
                }
            }
        }
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spans
            .extend(spans);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut points = Vec::new();
        for resource in request.into_inner().resource_metrics {
            let service = service_name(resource.resource.as_ref());
            for scope in resource.scope_metrics {
                for metric in scope.metrics {
                    let point = |attributes: &[KeyValue], value: f64, count: u64| Point {
                        service: service.clone(),
                        metric: metric.name.clone(),
                        attributes: self::attributes(attributes),
                        value,
                        count,
                    };
                    match &metric.data {
                        Some(metric::Data::Histogram(h)) => {
                            for p in &h.data_points {
                                points.push(point(&p.attributes, p.sum.unwrap_or(0.0), p.count));
                            }
                        }
                        Some(metric::Data::Sum(s)) => {
                            for p in &s.data_points {
                                points.push(point(&p.attributes, number(p.value), 1));
                            }
                        }
                        Some(metric::Data::Gauge(g)) => {
                            for p in &g.data_points {
                                points.push(point(&p.attributes, number(p.value), 1));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .points
            .extend(points);
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn number(value: Option<number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        #[allow(clippy::cast_precision_loss)]
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

fn service_name(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .map(|r| attributes(&r.attributes))
        .and_then(|a| {
            a.get("service.name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn attributes(list: &[KeyValue]) -> Attributes {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => Value::Str(s.clone()),
                Some(any_value::Value::IntValue(i)) => Value::Int(*i),
                Some(any_value::Value::DoubleValue(d)) => Value::Double(*d),
                Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
                Some(other) => Value::Other(format!("{other:?}")),
                None => Value::Other(String::new()),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Spans of one trace, by id.
pub fn traces(spans: &[Span]) -> BTreeMap<String, Vec<Span>> {
    let mut traces: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for span in spans {
        traces
            .entry(span.trace_id.clone())
            .or_default()
            .push(span.clone());
    }
    traces
}

/// The parent of `span` among `spans`.
pub fn parent_of<'a>(span: &Span, spans: &'a [Span]) -> Option<&'a Span> {
    spans
        .iter()
        .find(|s| s.span_id == span.parent_span_id && s.trace_id == span.trace_id)
}
