//! The spans of a turn, with OpenTelemetry GenAI semantic-convention
//! attributes: `turn` (`invoke_agent openheim`, with the turn's token
//! totals), one `llm_call` (`llm_call {model}`) per LLM call and one
//! `tool_call` (`execute_tool {name}`) per executed tool.
//!
//! An `llm_call` covers the whole call as the loop sees it (retries and
//! fallbacks included); the `chat {model}` span of each provider request,
//! with the per-request token usage, is llm-proxy's, under it. So token
//! counts appear once per request and once per turn, never twice for one
//! request.
//!
//! They are plain `tracing` spans: without an exporter (and at the default
//! log levels) nothing records them. Attributes name models, token counts,
//! tool names and outcomes; never prompt or tool contents.

use futures::{Stream, StreamExt};
use openheim_proto::agent_loop::v1::TurnEnded;
use openheim_proto::common::v1::ToolCall;
use openheim_proto::llm_proxy::v1::{CompletionEvent, completion_event::Event};
use openheim_proto::trace::finish_reason;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::backends::ToolRoute;
use crate::error::AgentError;
use crate::outcome::Outcome;

/// `gen_ai.agent.name` of every turn.
const AGENT_NAME: &str = "openheim";

/// The span of one turn of `session_id`.
pub(crate) fn turn(session_id: &str) -> Span {
    tracing::info_span!(
        "turn",
        otel.name = "invoke_agent openheim",
        otel.status_code = Empty,
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = AGENT_NAME,
        gen_ai.conversation.id = session_id,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        openheim.turn.stop_reason = Empty,
        openheim.turn.llm_calls = Empty,
        error.type = Empty,
    )
}

/// Records how a turn ended on its span.
pub(crate) fn turn_ended(span: &Span, result: &Result<TurnEnded, AgentError>) {
    match result {
        Ok(ended) => {
            let usage = ended.usage.unwrap_or_default();
            span.record("gen_ai.usage.input_tokens", int(usage.input_tokens));
            span.record("gen_ai.usage.output_tokens", int(usage.output_tokens));
            span.record(
                "openheim.turn.stop_reason",
                ended.stop_reason().as_str_name(),
            );
            span.record("openheim.turn.llm_calls", i64::from(ended.llm_calls));
        }
        Err(error) => {
            span.record("otel.status_code", "error");
            span.record("error.type", error.turn_error_kind().as_str_name());
        }
    }
}

/// The span of one LLM call for the session's `model` (`model` or
/// `provider/model`).
pub(crate) fn llm_call(model: &str) -> Span {
    tracing::info_span!(
        "llm_call",
        otel.name = %CallName(model),
        otel.status_code = Empty,
        gen_ai.request.model = (!model.is_empty()).then_some(model),
        gen_ai.response.model = Empty,
        gen_ai.response.finish_reasons = Empty,
        openheim.provider = Empty,
        openheim.fallback = Empty,
        error.type = Empty,
    )
}

/// `llm_call {model}`, or `llm_call` for the default model (an empty
/// `model`).
struct CallName<'a>(&'a str);

impl std::fmt::Display for CallName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            "" => f.write_str("llm_call"),
            model => write!(f, "llm_call {model}"),
        }
    }
}

/// `events` of one LLM call, recording on `span` the model that served it,
/// why it finished or how it failed.
pub(crate) fn observe<S>(events: S, span: Span) -> impl Stream<Item = S::Item>
where
    S: Stream<Item = Result<CompletionEvent, AgentError>>,
{
    events.inspect(move |item| match item {
        Ok(CompletionEvent { event: Some(event) }) => record_event(&span, event),
        Ok(CompletionEvent { event: None }) => {}
        Err(error) => {
            span.record("otel.status_code", "error");
            span.record("error.type", error.turn_error_kind().as_str_name());
        }
    })
}

fn record_event(span: &Span, event: &Event) {
    match event {
        Event::ModelSelected(selected) => {
            span.record("openheim.provider", selected.provider.as_str());
            span.record("gen_ai.response.model", selected.model.as_str());
            span.record("openheim.fallback", selected.is_fallback);
        }
        Event::Finished(finished) => {
            span.record(
                "gen_ai.response.finish_reasons",
                finish_reason(finished.stop_reason()),
            );
        }
        Event::Error(error) => {
            span.record("otel.status_code", "error");
            span.record("error.type", error.kind().as_str_name());
        }
        Event::Usage(_)
        | Event::TextDelta(_)
        | Event::ThinkingDelta(_)
        | Event::ToolCallDelta(_)
        | Event::Interrupted(_)
        | Event::Retrying(_) => {}
    }
}

/// The span of executing `call` where `route` sends it.
fn tool_call(call: &ToolCall, route: ToolRoute) -> Span {
    let route = match route {
        ToolRoute::Executor => "tool-executor",
        ToolRoute::Mcp => "mcp",
        ToolRoute::Memory => "memory",
        ToolRoute::Delegate | ToolRoute::Plan => "agent-loop",
    };
    tracing::info_span!(
        "tool_call",
        otel.name = %format_args!("execute_tool {}", call.name),
        otel.status_code = Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = call.name.as_str(),
        gen_ai.tool.call.id = call.id.as_str(),
        gen_ai.tool.type = "function",
        openheim.tool.route = route,
        error.type = Empty,
    )
}

/// Runs `work`, the execution of `call`, in its span; a result that is an
/// error marks the span.
pub(crate) async fn traced_tool<F>(call: &ToolCall, route: ToolRoute, work: F) -> Outcome
where
    F: Future<Output = Outcome>,
{
    let span = tool_call(call, route);
    let outcome = work.instrument(span.clone()).await;
    if outcome.is_error {
        span.record("otel.status_code", "error");
        span.record("error.type", "tool_error");
    }
    outcome
}

/// Counts as signed integers: the OpenTelemetry bridge exports unsigned
/// values as text.
fn int(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
