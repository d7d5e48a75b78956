//! The tool duration histogram `openheim.tool.duration` (s) of the built-in
//! and custom tools this service executes, by `gen_ai.tool.name` and
//! outcome. The call's span is the transport's server span under the
//! agent loop's `execute_tool` span.
//!
//! From the global meter provider: a no-op unless `openheim-boot` installed
//! an exporter.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use openheim_proto::tool_executor::v1::ExecuteResponse;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;

fn tool_duration() -> &'static Histogram<f64> {
    static HISTOGRAM: OnceLock<Histogram<f64>> = OnceLock::new();
    HISTOGRAM.get_or_init(|| {
        opentelemetry::global::meter("openheim-tool-executor")
            .f64_histogram("openheim.tool.duration")
            .with_unit("s")
            .with_description("Duration of tool executions")
            .build()
    })
}

/// Runs `execution` of tool `name` and records its duration.
pub(crate) async fn timed<F>(name: &str, execution: F) -> ExecuteResponse
where
    F: Future<Output = ExecuteResponse>,
{
    let start = Instant::now();
    let response = execution.await;
    let mut attributes = vec![
        KeyValue::new("gen_ai.tool.name", name.to_owned()),
        KeyValue::new("openheim.tool.source", "tool-executor"),
    ];
    if response.is_error {
        attributes.push(KeyValue::new("error.type", "tool_error"));
    }
    tool_duration().record(start.elapsed().as_secs_f64(), &attributes);
    response
}
