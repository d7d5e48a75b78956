//! The stand-ins of the container scenarios (`make compose-e2e`,
//! docs/deployment.md), each run as its own container next to the real
//! images:
//!
//! - `compose-fixture llm --listen ADDR --control ADDR`: the wire-format mock
//!   LLM provider ([`openheim_e2e::MockLlm`]) answering by rule instead of a
//!   script, so any number of turns can be run against it:
//!   `write PATH CONTENT` asks for `write_file` then answers `Wrote PATH.`;
//!   `slow MS TEXT` answers `TEXT` after `MS` milliseconds; anything else is
//!   answered `ok: <prompt>`. The control port answers `GET /requests` with
//!   the last user text of every completion request received, and
//!   `GET /violations` with the protocol violations seen.
//! - `compose-fixture otlp --listen ADDR --control ADDR`: an OTLP/gRPC
//!   receiver ([`openheim_e2e::otlp::OtlpReceiver`]) in place of the
//!   collector; the control port answers `GET /spans` with every span
//!   received (service, trace id, span id, parent, name).

// The one line on stdout says where it listens (container logs).
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use openheim_e2e::otlp::OtlpReceiver;
use openheim_e2e::{MockLlm, RecordedRequest, Reply, ToolCallSpec};
use serde_json::{Value, json};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("missing {name} ADDR"))
    };
    let (listen, control) = (flag("--listen")?, flag("--control")?);
    let app = match args.first().map(String::as_str) {
        Some("llm") => llm(&listen).await,
        Some("otlp") => otlp(&listen).await,
        _ => anyhow::bail!("usage: compose-fixture llm|otlp --listen ADDR --control ADDR"),
    };
    let listener = tokio::net::TcpListener::bind(&control).await?;
    println!("listening on {listen}, control on {control}");
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } } => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}

async fn llm(listen: &str) -> Router {
    let mock = Arc::new(MockLlm::builder().start_on(listen, Vec::new()).await);
    mock.answer_matching(|_| true, |request| Ok(answer(request)));
    let requests = Arc::clone(&mock);
    let violations = Arc::clone(&mock);
    Router::new()
        .route(
            "/requests",
            get(move || {
                let texts: Vec<Value> = requests
                    .requests()
                    .iter()
                    .map(|r| json!({"path": r.path, "last_user_text": r.last_user_text()}))
                    .collect();
                async move { axum::Json(texts) }
            }),
        )
        .route(
            "/violations",
            get(move || {
                let seen = violations.violations();
                async move { axum::Json(seen) }
            }),
        )
}

/// What the rule-based model says to `request`.
fn answer(request: &RecordedRequest) -> Reply {
    let prompt = request.last_user_text().unwrap_or_default();
    let words: Vec<&str> = prompt.splitn(3, ' ').collect();
    match words.as_slice() {
        ["write", path, content] if !ends_with_tool_result(&request.body) => {
            let args = json!({"path": path, "content": content});
            Reply::tool_calls(vec![ToolCallSpec::new("write_file", args)])
        }
        ["write", path, _] => Reply::text(format!("Wrote {path}.")),
        ["slow", ms, text] => {
            Reply::text(text.to_string()).with_delay_ms(ms.parse().unwrap_or(1000))
        }
        _ => Reply::text(format!("ok: {prompt}")),
    }
}

/// Whether the conversation's last item is a tool result (the model asked
/// for a tool in this turn already), in any of the four formats.
fn ends_with_tool_result(body: &Value) -> bool {
    let last = |key: &str| {
        body.get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.last())
    };
    if let Some(message) = last("messages") {
        let in_content = message["content"]
            .as_array()
            .is_some_and(|parts| parts.iter().any(|p| p["type"] == "tool_result"));
        return message["role"] == "tool" || in_content;
    }
    if let Some(item) = last("input") {
        return item["type"] == "function_call_output";
    }
    if let Some(content) = last("contents") {
        return content["parts"]
            .as_array()
            .is_some_and(|parts| parts.iter().any(|p| p.get("functionResponse").is_some()));
    }
    false
}

async fn otlp(listen: &str) -> Router {
    let receiver = Arc::new(OtlpReceiver::start_on(listen).await);
    Router::new().route(
        "/spans",
        get(move || {
            let spans: Vec<Value> = receiver
                .spans()
                .iter()
                .map(|s| {
                    json!({
                        "service": s.service,
                        "trace_id": s.trace_id,
                        "span_id": s.span_id,
                        "parent_span_id": s.parent_span_id,
                        "name": s.name,
                    })
                })
                .collect();
            async move { axum::Json(spans) }
        }),
    )
}
