//! Telemetry of every binary: logs through the `fmt` layer (filtered by
//! `RUST_LOG`) and, when an OTLP endpoint is configured, OpenTelemetry
//! traces and metrics exported over OTLP/gRPC.
//!
//! Configuration: `telemetry.otlp_endpoint` and `telemetry.service_name`, and
//! the standard variables, which win like any environment variable over the
//! file: `OTEL_EXPORTER_OTLP_ENDPOINT` (and the per-signal
//! `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT`), `OTEL_SERVICE_NAME`,
//! `OTEL_SDK_DISABLED=true`. The SDK reads the rest of its variables itself
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_RESOURCE_ATTRIBUTES`, …).
//!
//! Without an endpoint nothing but the log layer is installed: no exporter,
//! no background thread, and the transport's server spans stay disabled.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How long the final flush at shutdown may take before spans are dropped.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OpenTelemetry export needs a Tokio runtime; start telemetry inside it")]
    NoRuntime,
    #[error("cannot build the OTLP {signal} exporter: {source}")]
    Exporter {
        signal: &'static str,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Where one signal is exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// This endpoint (from `telemetry.otlp_endpoint` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    Endpoint(String),
    /// The signal's own variable (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, …),
    /// read by the exporter.
    SignalVariable,
}

/// What to export, resolved from the config and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// `service.name` of everything this process exports.
    pub service_name: String,
    /// `None`: traces are not exported.
    pub traces: Option<Destination>,
    /// `None`: metrics are not exported.
    pub metrics: Option<Destination>,
}

impl TelemetrySettings {
    /// The settings of a process named `default_service_name`, from its
    /// `[telemetry]` config and environment `env`.
    pub fn resolve(
        config: &openheim_config::TelemetryConfig,
        env: &BTreeMap<String, String>,
        default_service_name: &str,
    ) -> Self {
        let var = |name: &str| {
            env.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let service_name = var(OTEL_SERVICE_NAME)
            .or_else(|| non_empty(config.service_name.as_deref()))
            .unwrap_or_else(|| default_service_name.to_owned());
        let disabled = var(OTEL_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let shared = var(OTEL_EXPORTER_OTLP_ENDPOINT)
            .or_else(|| non_empty(config.otlp_endpoint.as_deref()).map(|e| with_scheme(&e)));
        let destination = |signal_variable: &str| {
            if disabled {
                None
            } else if var(signal_variable).is_some() {
                Some(Destination::SignalVariable)
            } else {
                shared.clone().map(Destination::Endpoint)
            }
        };
        Self {
            service_name,
            traces: destination(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
            metrics: destination(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT),
        }
    }

    /// Logs only.
    pub fn logs_only(service_name: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
            traces: None,
            metrics: None,
        }
    }

    /// Whether anything is exported.
    pub fn exports(&self) -> bool {
        self.traces.is_some() || self.metrics.is_some()
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `host:port` means `http://host:port` (gRPC needs a URI).
fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// The installed telemetry. Call [`Telemetry::shutdown`] before the process
/// (and its Tokio runtime) ends, so the last spans and metrics are sent;
/// dropping it flushes too, on a best-effort basis.
#[must_use = "dropping the guard ends the export"]
pub struct Telemetry {
    providers: Option<Providers>,
}

struct Providers {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Providers {
    /// Flushes and stops both providers. Blocks: never call it on a thread
    /// the exporter's runtime needs.
    fn shutdown(self) {
        if let Some(tracer) = self.tracer
            && let Err(error) = tracer.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
        {
            tracing::warn!(%error, "could not flush the last spans");
        }
        if let Some(meter) = self.meter
            && let Err(error) = meter.shutdown()
        {
            tracing::warn!(%error, "could not flush the last metrics");
        }
    }
}

impl Telemetry {
    /// Whether spans or metrics are exported.
    pub fn is_exporting(&self) -> bool {
        self.providers.is_some()
    }

    /// Sends what is buffered and stops exporting. The blocking flush runs
    /// on a blocking thread, so the runtime stays free to carry it out.
    pub async fn shutdown(mut self) {
        if let Some(providers) = self.providers.take() {
            let _ = tokio::task::spawn_blocking(move || providers.shutdown()).await;
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let Some(providers) = self.providers.take() else {
            return;
        };
        // The exporter runs on the Tokio runtime: blocking the only thread
        // of a current-thread runtime would starve it, so that case only
        // starts the flush.
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| providers.shutdown());
            }
            Ok(_) => {
                std::thread::spawn(move || providers.shutdown());
            }
            Err(_) => providers.shutdown(),
        }
    }
}

/// Logs to stderr (`RUST_LOG`, else `default_filter`) plus the export of
/// `settings`. Must run inside the Tokio runtime when exporting. A second
/// initialisation in one process (tests) keeps the first subscriber.
pub fn init(
    settings: &TelemetrySettings,
    default_filter: &str,
) -> Result<Telemetry, TelemetryError> {
    install(settings, default_filter, std::io::stderr, None)
}

/// Like [`init`], with logs written to `writer` without colours (the TUI's
/// log file).
pub fn init_with_writer<W>(
    settings: &TelemetrySettings,
    default_filter: &str,
    writer: W,
) -> Result<Telemetry, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    install(settings, default_filter, writer, Some(false))
}

fn install<W>(
    settings: &TelemetrySettings,
    default_filter: &str,
    writer: W,
    ansi: Option<bool>,
) -> Result<Telemetry, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let mut logs = tracing_subscriber::fmt::layer()
        .with_writer(Redacting(writer))
        .with_target(false);
    if let Some(ansi) = ansi {
        logs = logs.with_ansi(ansi);
    }
    let logs = logs.with_filter(filter);
    if !settings.exports() {
        // A second initialisation (tests) is harmless; ignore it.
        let _ = tracing_subscriber::registry().with(logs).try_init();
        return Ok(Telemetry { providers: None });
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TelemetryError::NoRuntime);
    }
    let providers = build_providers(settings)?;
    let spans = providers.tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("openheim"))
            .with_threads(false)
            .with_filter(
                tracing_subscriber::filter::filter_fn(exported).with_max_level_hint(Level::DEBUG),
            )
    });
    if tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .is_err()
    {
        // Someone else owns the global subscriber; export what reaches the
        // global providers anyway.
        tracing::debug!("a subscriber was already installed");
    }
    set_global(&providers, settings);
    Ok(Telemetry {
        providers: Some(providers),
    })
}

/// Makes `providers` the global OpenTelemetry providers.
fn set_global(providers: &Providers, settings: &TelemetrySettings) {
    if let Some(tracer) = &providers.tracer {
        opentelemetry::global::set_tracer_provider(tracer.clone());
    }
    if let Some(meter) = &providers.meter {
        opentelemetry::global::set_meter_provider(meter.clone());
    }
    tracing::debug!(
        service = %settings.service_name,
        traces = ?settings.traces,
        metrics = ?settings.metrics,
        "OpenTelemetry export on"
    );
}

/// Log output with every URL's query values and user information redacted
/// ([`openheim_config::redact_urls_in`]): libraries (the MCP SDK, the HTTP
/// client) quote URLs in their own log lines, and a URL may carry a key.
struct Redacting<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

/// One event's output, redacted as it is written (the formatter writes an
/// event in one piece).
struct RedactingWriter<W>(W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf).map(openheim_config::redact_urls_in) {
            Ok(std::borrow::Cow::Owned(clean)) => self.0.write_all(clean.as_bytes())?,
            Ok(std::borrow::Cow::Borrowed(_)) | Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// What the OpenTelemetry layer records: `INFO` spans and above, the
/// transport's `DEBUG` server spans, and warnings and errors as span events
/// (so `info!` logs never turn into span events).
fn exported(meta: &Metadata<'_>) -> bool {
    let level = *meta.level();
    if meta.is_span() {
        level <= Level::INFO
            || (level <= Level::DEBUG && meta.target() == openheim_proto::trace::RPC_TARGET)
    } else {
        // Audit records (`openheim_access::audit`, target `audit`) are span
        // events on the span they happened in.
        level <= Level::WARN || (level <= Level::INFO && meta.target() == "audit")
    }
}

fn build_providers(settings: &TelemetrySettings) -> Result<Providers, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let tracer = match &settings.traces {
        None => None,
        Some(destination) => {
            let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if let Destination::Endpoint(endpoint) = destination {
                builder = builder.with_endpoint(endpoint.clone());
            }
            let exporter = builder.build().map_err(|source| TelemetryError::Exporter {
                signal: "trace",
                source,
            })?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource.clone())
                    .build(),
            )
        }
    };
    let meter = match &settings.metrics {
        None => None,
        Some(destination) => {
            let mut builder = opentelemetry_otlp::MetricExporter::builder().with_tonic();
            if let Destination::Endpoint(endpoint) = destination {
                builder = builder.with_endpoint(endpoint.clone());
            }
            let exporter = builder.build().map_err(|source| TelemetryError::Exporter {
                signal: "metrics",
                source,
            })?;
            Some(
                SdkMeterProvider::builder()
                    .with_periodic_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    Ok(Providers { tracer, meter })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openheim_config::TelemetryConfig;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn config(endpoint: Option<&str>, name: Option<&str>) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: endpoint.map(str::to_owned),
            service_name: name.map(str::to_owned),
        }
    }

    #[test]
    fn log_lines_hide_keys_in_urls() {
        use std::io::Write;
        let mut out = Vec::new();
        let mut writer = RedactingWriter(&mut out);
        writer
            .write_all(b"ERROR request failed url: \"https://h/mcp?key=s3cr3t\"\n")
            .unwrap();
        writer.write_all(b"INFO no url here\n").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ERROR request failed url: \"https://h/mcp?key=[redacted]\"\nINFO no url here\n"
        );
    }

    #[test]
    fn nothing_configured_exports_nothing() {
        let settings = TelemetrySettings::resolve(&config(None, None), &env(&[]), "openheim");
        assert_eq!(settings, TelemetrySettings::logs_only("openheim"));
        assert!(!settings.exports());
        let blank = env(&[(OTEL_EXPORTER_OTLP_ENDPOINT, " ")]);
        let settings = TelemetrySettings::resolve(&config(Some(""), None), &blank, "x");
        assert!(!settings.exports());
    }

    #[test]
    fn the_config_endpoint_and_name() {
        let settings = TelemetrySettings::resolve(
            &config(Some("collector:4317"), Some("agents")),
            &env(&[]),
            "openheim",
        );
        let endpoint = Destination::Endpoint("http://collector:4317".to_owned());
        assert_eq!(settings.traces, Some(endpoint.clone()));
        assert_eq!(settings.metrics, Some(endpoint));
        assert_eq!(settings.service_name, "agents");
    }

    #[test]
    fn standard_variables_win_over_the_file() {
        let vars = env(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://env:4317"),
            (OTEL_SERVICE_NAME, "from-env"),
            (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://metrics:4317"),
        ]);
        let settings = TelemetrySettings::resolve(
            &config(Some("http://file:4317"), Some("from-file")),
            &vars,
            "openheim",
        );
        assert_eq!(
            settings.traces,
            Some(Destination::Endpoint("http://env:4317".to_owned()))
        );
        assert_eq!(settings.metrics, Some(Destination::SignalVariable));
        assert_eq!(settings.service_name, "from-env");
        // A signal's own variable alone enables just that signal.
        let vars = env(&[(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://t:4317")]);
        let settings = TelemetrySettings::resolve(&config(None, None), &vars, "openheim");
        assert_eq!(settings.traces, Some(Destination::SignalVariable));
        assert_eq!(settings.metrics, None);
    }

    #[test]
    fn the_sdk_can_be_switched_off() {
        let vars = env(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://env:4317"),
            (OTEL_SDK_DISABLED, "TRUE"),
        ]);
        let settings = TelemetrySettings::resolve(&config(Some("x:1"), None), &vars, "openheim");
        assert!(!settings.exports());
    }

    #[test]
    fn what_the_span_layer_records() {
        use tracing::callsite::Identifier;
        use tracing::metadata::Kind;
        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static SITE: Site = Site;
        let fields: &'static [&'static str] = &[];
        let meta = |level, target, kind| {
            Metadata::new(
                "x",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(fields, Identifier(&SITE)),
                kind,
            )
        };
        let rpc = openheim_proto::trace::RPC_TARGET;
        assert!(exported(&meta(
            Level::INFO,
            "openheim_agent_loop",
            Kind::SPAN
        )));
        assert!(exported(&meta(Level::DEBUG, rpc, Kind::SPAN)));
        assert!(!exported(&meta(Level::DEBUG, "h2", Kind::SPAN)));
        assert!(!exported(&meta(Level::TRACE, rpc, Kind::SPAN)));
        assert!(exported(&meta(Level::WARN, "x", Kind::EVENT)));
        assert!(!exported(&meta(Level::INFO, "x", Kind::EVENT)));
    }

    #[test]
    fn exporting_needs_a_runtime() {
        let settings = TelemetrySettings::resolve(
            &config(Some("http://127.0.0.1:1"), None),
            &env(&[]),
            "openheim",
        );
        assert!(matches!(
            init(&settings, "warn"),
            Err(TelemetryError::NoRuntime)
        ));
    }
}
