//! Embedding openheim with a custom LLM provider:
//! `cargo run -p openheim --example custom_provider`.
//!
//! `AcmeGateway` is a provider openheim does not ship: an in-house model
//! gateway with its own token header and its own streaming wire format
//! (newline-delimited JSON, described at `decode`). So that the example runs
//! anywhere, it starts a tiny stand-in for that gateway on 127.0.0.1 (at
//! the bottom of this file), whose scripted model reads a file with a tool
//! and answers; its first answer is "503, retry in 200 ms", to show that
//! openheim retries a custom provider like a built-in one. Guide:
//! docs/custom-llm-provider.md.

// An example program prints its answer.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use openheim::config::ProviderConfig;
use openheim::events::{ApprovalMode, Event};
use openheim::llm::{
    Block, CompletionRequest, ErrorKind, EventSink, FinishReason, LlmProvider, ProviderError,
    ProviderEvent, Role, Usage, async_trait,
};
use openheim::{Openheim, SessionOptions};
use serde_json::{Value, json};

/// The provider: one HTTP request per attempt, its answer decoded line by
/// line into openheim's events.
struct AcmeGateway {
    http: reqwest::Client,
    url: String,
    token: String,
}

#[async_trait]
impl LlmProvider for AcmeGateway {
    async fn stream(
        &self,
        request: &CompletionRequest,
        events: &mut EventSink,
    ) -> Result<FinishReason, ProviderError> {
        let mut response = self
            .http
            .post(&self.url)
            .header("x-acme-token", &self.token)
            .json(&request_body(request))
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get("retry-after-ms")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map(Duration::from_millis);
            let body: Value = response.json().await.unwrap_or_default();
            let message = body["message"].as_str().unwrap_or("no message").to_owned();
            let error = ProviderError::from_http_status(status.as_u16(), message);
            return Err(match retry_after {
                Some(wait) => error.with_retry_after(wait),
                None => error,
            });
        }
        // Lines may be split across chunks: keep the unfinished tail.
        let mut pending = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                match decode(&line)? {
                    Line::Event(event) => events.send(event).await,
                    Line::Done(reason) => return Ok(reason),
                    Line::Skip => {}
                }
            }
        }
        Err(ProviderError::new(
            ErrorKind::Network,
            "the answer ended before its \"done\" line",
        ))
    }
}

fn network(error: reqwest::Error) -> ProviderError {
    ProviderError::new(ErrorKind::Network, error.to_string())
}

/// The conversation in the gateway's request format: `turns` of roles
/// `user`, `model` (text and tool calls) and `result` (one per call).
fn request_body(request: &CompletionRequest) -> Value {
    let mut turns = Vec::new();
    for message in request.messages() {
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in message.content.iter().filter_map(|c| c.block.as_ref()) {
            match block {
                Block::Text(t) => text.push_str(t),
                Block::ToolCall(call) => calls.push(json!({
                    "id": call.id, "name": call.name, "args": call.arguments_json,
                })),
                Block::ToolResult(result) => turns.push(json!({
                    "role": "result", "id": result.tool_call_id,
                    "text": result.content, "error": result.is_error,
                })),
                // This gateway neither shows reasoning nor takes images.
                Block::Thinking(_) | Block::Image(_) => {}
            }
        }
        match message.role() {
            Role::User => turns.push(json!({"role": "user", "text": text})),
            Role::Assistant => turns.push(json!({"role": "model", "text": text, "calls": calls})),
            Role::Tool | Role::Unspecified => {}
        }
    }
    let tools: Vec<Value> = request
        .tools()
        .iter()
        .map(|t| {
            let schema: Value = serde_json::from_str(&t.input_schema_json).unwrap_or_default();
            json!({"name": t.name, "description": t.description, "schema": schema})
        })
        .collect();
    json!({
        "model": request.model(),
        "system": request.system_prompt(),
        "max_tokens": request.max_tokens(),
        "turns": turns,
        "tools": tools,
    })
}

/// One decoded line of the gateway's answer.
enum Line {
    Event(ProviderEvent),
    Done(FinishReason),
    Skip,
}

/// The gateway's wire format, one JSON object per line:
/// `{"say": TEXT}`, `{"call": {"n": 0, "id": ID, "tool": NAME}}`,
/// `{"args": {"n": 0, "part": JSON_FRAGMENT}}`,
/// `{"tokens": {"prompt": N, "completion": N}}`, `{"done": "stop"|"tools"|"length"}`,
/// and `{"fail": {"busy": BOOL, "message": TEXT}}` for an error mid-answer.
/// A pure function, so it is easy to test on its own.
fn decode(line: &[u8]) -> Result<Line, ProviderError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(Line::Skip);
    }
    let invalid = |what: &str| ProviderError::new(ErrorKind::Protocol, format!("bad line: {what}"));
    let value: Value = serde_json::from_slice(line).map_err(|e| invalid(&e.to_string()))?;
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid("not a string"))
    };
    let index = |v: &Value| {
        let n = v["n"].as_u64().ok_or_else(|| invalid("no call number"))?;
        u32::try_from(n).map_err(|_| invalid("call number too large"))
    };
    let event = if let Some(say) = value.get("say") {
        ProviderEvent::Text(text(say)?)
    } else if let Some(call) = value.get("call") {
        ProviderEvent::ToolCallStart {
            index: index(call)?,
            id: text(&call["id"])?,
            name: text(&call["tool"])?,
        }
    } else if let Some(args) = value.get("args") {
        ProviderEvent::ToolCallArguments {
            index: index(args)?,
            fragment: text(&args["part"])?,
        }
    } else if let Some(tokens) = value.get("tokens") {
        ProviderEvent::Usage(Usage {
            input_tokens: tokens["prompt"].as_u64().unwrap_or(0),
            output_tokens: tokens["completion"].as_u64().unwrap_or(0),
            ..Usage::default()
        })
    } else if let Some(done) = value.get("done") {
        return Ok(Line::Done(match done.as_str() {
            Some("tools") => FinishReason::ToolUse,
            Some("length") => FinishReason::MaxTokens,
            _ => FinishReason::EndTurn,
        }));
    } else if let Some(fail) = value.get("fail") {
        let kind = match fail["busy"].as_bool() {
            Some(true) => ErrorKind::Overloaded,
            _ => ErrorKind::Failed,
        };
        return Err(ProviderError::new(kind, text(&fail["message"])?));
    } else {
        // Lines of kinds added later are skipped, as the format promises.
        return Ok(Line::Skip);
    };
    Ok(Line::Event(event))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (workspace, home) = (dir.path().join("workspace"), dir.path().join("home"));
    std::fs::create_dir_all(&workspace)?;
    std::fs::create_dir_all(&home)?;
    std::fs::write(workspace.join("notes.txt"), "buy milk, call Ada")?;
    std::fs::write(home.join("system.md"), "You are concise.")?;

    let token = "acme-example-token";
    let url = gateway::start(token).await?;
    let acme = AcmeGateway {
        http: reqwest::Client::new(),
        url,
        token: token.to_owned(),
    };
    // The provider's policy settings, as for any provider.
    let settings = ProviderConfig {
        default_model: Some("acme-1".into()),
        context_window: Some(32_000),
        retry_base_delay_ms: 100,
        ..ProviderConfig::default()
    };
    let openheim = Openheim::builder()
        .llm_provider("acme", acme)
        .provider("acme", settings)
        .default_provider("acme")
        .work_dir(&workspace)
        .data_dir(&home)
        .allow_shell(false)
        .build()?;
    let options = SessionOptions {
        approval: ApprovalMode::Auto,
        ..SessionOptions::default()
    };
    let mut session = openheim.new_session(options).await?;
    let mut turn = session.prompt("What do my notes say?").await?;
    while let Some(event) = turn.next().await {
        match event?.event {
            Some(Event::TextDelta(text)) => print!("{text}"),
            Some(Event::Notice(notice)) => eprintln!("notice: {}", notice.message),
            Some(Event::ToolCall(call)) => {
                println!();
                eprintln!("tool: {}", call.title);
            }
            Some(Event::Ended(end)) => {
                let usage = end.usage.unwrap_or_default();
                println!(
                    "\n[{} tokens in, {} out, {} model calls]",
                    usage.input_tokens, usage.output_tokens, end.llm_calls
                );
                return Ok(());
            }
            Some(Event::Error(error)) => return Err(error.message.into()),
            _ => {}
        }
    }
    Err("the turn ended without an answer".into())
}

/// A stand-in for the in-house gateway, so that the example is
/// self-contained: a scripted model behind the wire format above.
mod gateway {
    use super::*;
    use axum::Json;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};

    struct Gateway {
        token: String,
        /// The first request is answered "busy", to show a retry.
        busy_once: AtomicBool,
    }

    /// Serves on 127.0.0.1 (any free port); returns the generate URL.
    pub async fn start(token: &str) -> std::io::Result<String> {
        let state = Arc::new(Gateway {
            token: token.to_owned(),
            busy_once: AtomicBool::new(true),
        });
        let app = axum::Router::new()
            .route("/v1/generate", axum::routing::post(generate))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v1/generate", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }

    async fn generate(
        State(gateway): State<Arc<Gateway>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        let token = headers.get("x-acme-token").and_then(|v| v.to_str().ok());
        if token != Some(gateway.token.as_str()) {
            let message = json!({"message": "unknown token"});
            return (StatusCode::UNAUTHORIZED, Json(message)).into_response();
        }
        if gateway.busy_once.swap(false, Ordering::SeqCst) {
            let message = json!({"message": "all replicas busy"});
            let retry = [("retry-after-ms", "200")];
            return (StatusCode::SERVICE_UNAVAILABLE, retry, Json(message)).into_response();
        }
        let turns = body["turns"].as_array().cloned().unwrap_or_default();
        let last = turns.last().cloned().unwrap_or_default();
        let lines = if last["role"] == "result" {
            let read = last["text"].as_str().unwrap_or_default();
            vec![
                json!({"say": "notes.txt says: "}),
                json!({"say": read}),
                json!({"tokens": {"prompt": 61, "completion": 9}}),
                json!({"done": "stop"}),
            ]
        } else {
            vec![
                json!({"say": "Let me read "}),
                json!({"say": "your notes."}),
                json!({"call": {"n": 0, "id": "c1", "tool": "read_file"}}),
                json!({"args": {"n": 0, "part": "{\"path\":"}}),
                json!({"args": {"n": 0, "part": "\"notes.txt\"}"}}),
                json!({"tokens": {"prompt": 52, "completion": 14}}),
                json!({"done": "tools"}),
            ]
        };
        // One chunk per line, as a streaming gateway would send them.
        let chunks = lines
            .into_iter()
            .map(|line| Ok::<_, std::io::Error>(format!("{line}\n")));
        let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
        ([("content-type", "application/x-ndjson")], body).into_response()
    }
}
