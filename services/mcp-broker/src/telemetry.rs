//! The span and metric of one MCP tool call: span `tools/call {tool}`
//! (`mcp.method.name`, `gen_ai.tool.name`, `openheim.mcp.server`) and the
//! shared tool duration histogram `openheim.tool.duration` (s).
//!
//! Attributes name the server, the tool and the outcome, never arguments
//! or results. The histogram comes from the global meter provider: a no-op
//! unless `openheim-boot` installed an exporter.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use rmcp::model::CallToolResult;
use tracing::Instrument;
use tracing::field::Empty;

use crate::McpBrokerError;

fn tool_duration() -> &'static Histogram<f64> {
    static HISTOGRAM: OnceLock<Histogram<f64>> = OnceLock::new();
    HISTOGRAM.get_or_init(|| {
        opentelemetry::global::meter("openheim-mcp-broker")
            .f64_histogram("openheim.tool.duration")
            .with_unit("s")
            .with_description("Duration of tool executions")
            .build()
    })
}

/// Runs `call`, the call of `tool` on MCP server `server`, in its span and
/// records its duration.
pub(crate) async fn traced_call<F>(
    server: &str,
    tool: &str,
    call: F,
) -> Result<CallToolResult, McpBrokerError>
where
    F: Future<Output = Result<CallToolResult, McpBrokerError>>,
{
    let span = tracing::info_span!(
        "mcp_call",
        otel.name = %format_args!("tools/call {tool}"),
        otel.kind = "client",
        otel.status_code = Empty,
        mcp.method.name = "tools/call",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = tool,
        openheim.mcp.server = server,
        error.type = Empty,
    );
    let start = Instant::now();
    let result = call.instrument(span.clone()).await;
    let error = match &result {
        Ok(output) if output.is_error == Some(true) => Some("tool_error"),
        Ok(_) => None,
        Err(_) => Some("mcp_error"),
    };
    let mut attributes = vec![
        KeyValue::new("gen_ai.tool.name", tool.to_owned()),
        KeyValue::new("openheim.tool.source", "mcp"),
        KeyValue::new("openheim.mcp.server", server.to_owned()),
    ];
    if let Some(error) = error {
        span.record("otel.status_code", "error");
        span.record("error.type", error);
        attributes.push(KeyValue::new("error.type", error));
    }
    tool_duration().record(start.elapsed().as_secs_f64(), &attributes);
    result
}
