//! OpenTelemetry export end to end, into a real OTLP/gRPC receiver: a
//! headless run's one trace (session → turn → LLM calls / tool calls, GenAI
//! attributes, token metrics), one trace across the four service processes
//! (trace context over real HTTP/2 hops), and a client's `traceparent` on a
//! gateway REST call and on a WebSocket upgrade.

use std::collections::BTreeSet;
use std::time::Duration;

use openheim_e2e::install::{Install, session_id, stderr};
use openheim_e2e::otlp::{OtlpReceiver, Span, parent_of, traces};
use openheim_e2e::{MockLlm, Reply, ServiceProcess, ToolCallSpec, bin_path};
use serde_json::json;

/// How long exported telemetry may take to arrive.
const WAIT: Duration = Duration::from_secs(30);
const PROMPT: &str = "Write the note PROMPT-MARKER-7 and read it back";
const CONTENT: &str = "CONTENT-MARKER-9";
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// A tool-using task: write, read, answer; each reply reports its usage.
fn script() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            json!({"path": "note.txt", "content": CONTENT}),
        )])
        .with_usage(120, 7, 0),
        Reply::tool_calls(vec![ToolCallSpec::new(
            "read_file",
            json!({"path": "note.txt"}),
        )])
        .with_usage(150, 5, 0),
        Reply::text("Done.").with_usage(170, 3, 0),
    ]
}

async fn run_task(install: &Install, receiver: &OtlpReceiver) -> String {
    let endpoint = receiver.endpoint();
    let output = install
        .openheim_with_env(
            &["run", PROMPT, "--yes"],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
        )
        .await;
    assert!(
        output.status.success(),
        "openheim run failed: {:?}\n{}",
        output.status,
        stderr(&output)
    );
    session_id(&output)
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    match named(spans, name).as_slice() {
        [span] => span,
        other => panic!(
            "expected one {name:?} span, got {}: {spans:#?}",
            other.len()
        ),
    }
}

/// Walks up from `span` to the nearest ancestor named `name`.
fn ancestor<'a>(span: &Span, spans: &'a [Span], name: &str) -> Option<&'a Span> {
    let mut current = parent_of(span, spans)?;
    loop {
        if current.name == name {
            return Some(current);
        }
        current = parent_of(current, spans)?;
    }
}

/// No prompt or tool content ever becomes an attribute.
fn assert_no_content(spans: &[Span]) {
    for span in spans {
        for (key, value) in &span.attributes {
            let text = format!("{value:?}");
            assert!(
                !text.contains("PROMPT-MARKER") && !text.contains("CONTENT-MARKER"),
                "{key} of {} carries content: {text}",
                span.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_exports_one_trace_with_genai_spans_and_metrics() {
    let receiver = OtlpReceiver::start().await;
    let mock = MockLlm::start(script()).await;
    let install = Install::new(&mock, "");
    let session = run_task(&install, &receiver).await;
    mock.assert_no_violations();
    // The run flushes at exit; allow the receiver a moment all the same.
    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            spans.iter().any(|s| s.name == "openheim run")
                && spans.iter().filter(|s| s.name == "chat mock-model").count() == 3
        })
        .await;
    assert!(spans.iter().all(|s| s.service == "openheim"), "{spans:#?}");
    let all = traces(&spans);
    assert_eq!(all.len(), 1, "one trace expected: {all:#?}");
    assert_no_content(&spans);

    // session → Turn (gRPC server) → turn
    let root = one(&spans, "openheim run");
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.str("gen_ai.conversation.id"), Some(session.as_str()));
    let turn = one(&spans, "invoke_agent openheim");
    assert_eq!(turn.str("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(turn.str("gen_ai.conversation.id"), Some(session.as_str()));
    assert_eq!(turn.int("gen_ai.usage.input_tokens"), Some(120 + 150 + 170));
    assert_eq!(turn.int("gen_ai.usage.output_tokens"), Some(7 + 5 + 3));
    assert_eq!(turn.int("openheim.turn.llm_calls"), Some(3));
    let turn_call = parent_of(turn, &spans).unwrap();
    assert_eq!(turn_call.name, "openheim.agent_loop.v1.AgentLoop/Turn");
    assert_eq!(turn_call.kind, SERVER);
    assert_eq!(turn_call.str("rpc.system"), Some("grpc"));
    assert_eq!(
        turn_call.str("rpc.service"),
        Some("openheim.agent_loop.v1.AgentLoop")
    );
    assert_eq!(turn_call.str("rpc.method"), Some("Turn"));
    assert_eq!(parent_of(turn_call, &spans).unwrap().span_id, root.span_id);

    // LLM calls: the loop's view, and llm-proxy's provider requests with
    // the GenAI attributes and each request's tokens.
    let calls: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("llm_call"))
        .collect();
    assert_eq!(calls.len(), 3, "{spans:#?}");
    for call in &calls {
        assert_eq!(parent_of(call, &spans).unwrap().span_id, turn.span_id);
        assert_eq!(call.str("gen_ai.response.model"), Some("mock-model"));
        assert_eq!(call.str("openheim.provider"), Some("mock"));
    }
    let mut chats = named(&spans, "chat mock-model");
    chats.sort_by_key(|s| s.int("gen_ai.usage.input_tokens"));
    let tokens: Vec<(Option<i64>, Option<i64>)> = chats
        .iter()
        .map(|s| {
            (
                s.int("gen_ai.usage.input_tokens"),
                s.int("gen_ai.usage.output_tokens"),
            )
        })
        .collect();
    assert_eq!(
        tokens,
        [
            (Some(120), Some(7)),
            (Some(150), Some(5)),
            (Some(170), Some(3))
        ]
    );
    for chat in &chats {
        assert_eq!(chat.kind, CLIENT);
        assert_eq!(chat.str("gen_ai.operation.name"), Some("chat"));
        assert_eq!(chat.str("gen_ai.provider.name"), Some("openai_compatible"));
        assert_eq!(chat.str("gen_ai.request.model"), Some("mock-model"));
        assert_eq!(chat.str("gen_ai.response.model"), Some("mock-model"));
        let complete = parent_of(chat, &spans).unwrap();
        assert_eq!(complete.name, "openheim.llm_proxy.v1.LlmProxy/Complete");
        let call = parent_of(complete, &spans).unwrap();
        assert!(call.name.starts_with("llm_call"), "{call:#?}");
    }
    let finish: BTreeSet<&str> = chats
        .iter()
        .filter_map(|s| s.str("gen_ai.response.finish_reasons"))
        .collect();
    assert_eq!(finish, BTreeSet::from(["stop", "tool_call"]));

    // Tool calls, under the turn, each executed by tool-executor under it.
    for tool in ["write_file", "read_file"] {
        let span = one(&spans, &format!("execute_tool {tool}"));
        assert_eq!(span.str("gen_ai.operation.name"), Some("execute_tool"));
        assert_eq!(span.str("gen_ai.tool.name"), Some(tool));
        assert_eq!(span.status, 0, "{span:#?}");
        assert_eq!(parent_of(span, &spans).unwrap().span_id, turn.span_id);
        let executed = spans
            .iter()
            .find(|s| s.parent_span_id == span.span_id)
            .unwrap_or_else(|| panic!("nothing under {tool}: {spans:#?}"));
        assert_eq!(
            executed.name,
            "openheim.tool_executor.v1.ToolExecutor/Execute"
        );
    }

    // Metrics: tokens by type (totals of the three requests), LLM request
    // durations, tool durations, gRPC server durations.
    let points = receiver
        .wait_for_metric(WAIT, "gen_ai.client.token.usage")
        .await;
    let total = |kind: &str| -> f64 {
        points
            .iter()
            .filter(|p| p.str("gen_ai.token.type") == Some(kind))
            .map(|p| p.value)
            .sum()
    };
    assert_eq!(total("input"), 440.0, "{points:#?}");
    assert_eq!(total("output"), 15.0, "{points:#?}");
    assert!(
        points
            .iter()
            .all(|p| p.str("gen_ai.request.model") == Some("mock-model"))
    );
    let durations = receiver
        .wait_for_metric(WAIT, "gen_ai.client.operation.duration")
        .await;
    assert_eq!(durations.iter().map(|p| p.count).sum::<u64>(), 3);
    let tools = receiver
        .wait_for_metric(WAIT, "openheim.tool.duration")
        .await;
    let names: BTreeSet<&str> = tools
        .iter()
        .filter_map(|p| p.str("gen_ai.tool.name"))
        .collect();
    assert_eq!(names, BTreeSet::from(["read_file", "write_file"]));
    let rpc = receiver
        .wait_for_metric(WAIT, "rpc.server.call.duration")
        .await;
    assert!(
        rpc.iter().any(|p| p.str("rpc.method") == Some("Complete")),
        "{rpc:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_the_service_processes() {
    let receiver = OtlpReceiver::start().await;
    let mock = MockLlm::start(script()).await;
    let install = Install::new(&mock, "");
    let telemetry = format!("[telemetry]\notlp_endpoint = \"{}\"", receiver.endpoint());
    let cluster = install.start_cluster(&mock, &telemetry).await;
    run_task(&install, &receiver).await;
    // Stopping the services flushes what they have not sent yet.
    cluster.terminate().await;
    let services = [
        "openheim",
        "openheim-agent-loop",
        "openheim-llm-proxy",
        "openheim-tool-executor",
        "openheim-mcp-broker",
    ];
    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            let seen: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
            services.iter().all(|s| seen.contains(s))
        })
        .await;
    assert_no_content(&spans);
    let root = one(&spans, "openheim run");
    let trace: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .cloned()
        .collect();
    let in_trace: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        in_trace,
        BTreeSet::from(services),
        "every process takes part in the run's trace: {trace:#?}"
    );
    // Each hop's server span is the child of its caller's span in the
    // calling process.
    let turn_call = one(&trace, "openheim.agent_loop.v1.AgentLoop/Turn");
    assert_eq!(turn_call.service, "openheim-agent-loop");
    assert_eq!(parent_of(turn_call, &trace).unwrap().span_id, root.span_id);
    for complete in named(&trace, "openheim.llm_proxy.v1.LlmProxy/Complete") {
        assert_eq!(complete.service, "openheim-llm-proxy");
        let caller = parent_of(complete, &trace).unwrap();
        assert_eq!(caller.service, "openheim-agent-loop");
        assert!(caller.name.starts_with("llm_call"), "{caller:#?}");
    }
    for execute in named(&trace, "openheim.tool_executor.v1.ToolExecutor/Execute") {
        assert_eq!(execute.service, "openheim-tool-executor");
        let caller = parent_of(execute, &trace).unwrap();
        assert!(caller.name.starts_with("execute_tool "), "{caller:#?}");
    }
    let chats = named(&trace, "chat mock-model");
    assert_eq!(chats.len(), 3, "{trace:#?}");
    for chat in chats {
        assert!(ancestor(chat, &trace, "invoke_agent openheim").is_some());
    }
    let listing = trace
        .iter()
        .find(|s| s.service == "openheim-mcp-broker")
        .unwrap();
    assert_eq!(
        listing.str("rpc.service"),
        Some("openheim.mcp_broker.v1.McpBroker")
    );
    assert!(ancestor(listing, &trace, "invoke_agent openheim").is_some());
}

/// `openheim serve` exporting to `receiver`.
async fn serve_with_telemetry(receiver: &OtlpReceiver) -> (Install, ServiceProcess) {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    let workspace = install.workspace();
    install.write_config(
        &mock,
        &format!(
            "work_dir = \"{}\"\n[telemetry]\notlp_endpoint = \"{}\"",
            workspace.display(),
            receiver.endpoint()
        ),
    );
    let config = install.home().join("config.toml");
    let home = install.home();
    let env = [
        ("OPENHEIM_HOME", home.to_str().unwrap()),
        ("HOME", install.root.path().to_str().unwrap()),
        ("OPENHEIM_CONFIG", config.to_str().unwrap()),
        ("RUST_LOG", "warn"),
    ];
    let server = ServiceProcess::spawn_program(&bin_path("openheim"), &["serve"], &env).await;
    (install, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_traceparent_parents_the_gateway_request() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";
    let receiver = OtlpReceiver::start().await;
    let (_install, mut server) = serve_with_telemetry(&receiver).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/sessions", server.addr());
    let get = |traceparent: String| client.get(&url).header("traceparent", traceparent).send();
    // Health probes are not traced (they would make a trace every few seconds).
    for probe in ["healthz", "readyz"] {
        let url = format!("http://{}/{probe}", server.addr());
        let response = tokio::time::timeout(WAIT, client.get(url).send())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = tokio::time::timeout(WAIT, get(format!("00-{TRACE}-{PARENT}-01")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    // A malformed header is ignored: the request still works, in a new trace.
    let response = tokio::time::timeout(WAIT, get("00-not-a-trace-01".to_owned()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    server.terminate().await;

    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            spans
                .iter()
                .filter(|s| s.name == "GET /api/sessions")
                .count()
                == 2
        })
        .await;
    let requests = named(&spans, "GET /api/sessions");
    let ours = requests
        .iter()
        .find(|s| s.trace_id == TRACE)
        .unwrap_or_else(|| panic!("the client's trace id was not used: {spans:#?}"));
    assert_eq!(ours.parent_span_id, PARENT);
    assert_eq!(ours.kind, SERVER);
    assert_eq!(ours.str("http.route"), Some("/api/sessions"));
    assert_eq!(ours.int("http.response.status_code"), Some(200));
    // The agent-loop call it made is in the same trace, under it.
    let listed = spans
        .iter()
        .find(|s| s.name == "openheim.agent_loop.v1.AgentLoop/ListSessions" && s.trace_id == TRACE)
        .unwrap_or_else(|| panic!("no ListSessions call in the trace: {spans:#?}"));
    assert_eq!(listed.parent_span_id, ours.span_id);
    let other = requests.iter().find(|s| s.trace_id != TRACE).unwrap();
    assert!(other.parent_span_id.is_empty(), "{other:#?}");
    assert!(
        !spans
            .iter()
            .any(|s| s.name.contains("healthz") || s.name.contains("readyz")),
        "health probes were traced: {spans:#?}"
    );
}

/// The WebSocket upgrade's `traceparent` parents the socket's work: the
/// agent-loop calls of an ACP session opened on it join the client's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_traceparent_parents_the_sockets_calls() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const PARENT: &str = "b7ad6b7169203331";
    let receiver = OtlpReceiver::start().await;
    let (install, mut server) = serve_with_telemetry(&receiver).await;
    let mut request = format!("ws://{}/acp", server.addr())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "traceparent",
        format!("00-{TRACE}-{PARENT}-01").parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let workspace = install.workspace();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": 1, "clientCapabilities": {}}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "session/new",
               "params": {"cwd": workspace, "mcpServers": []}}),
    ];
    for message in messages {
        let id = message["id"].clone();
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        tokio::time::timeout(WAIT, async {
            while let Some(frame) = socket.next().await {
                if let Message::Text(text) = frame.unwrap() {
                    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if answer["id"] == id {
                        assert!(answer.get("result").is_some(), "{answer}");
                        return;
                    }
                }
            }
            panic!("the socket closed before answering {id}");
        })
        .await
        .unwrap();
    }
    socket.close(None).await.unwrap();
    server.terminate().await;

    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            spans
                .iter()
                .any(|s| s.name == "openheim.agent_loop.v1.AgentLoop/CreateSession")
                && spans.iter().any(|s| s.name == "GET /acp")
        })
        .await;
    let upgrade = one(&spans, "GET /acp");
    assert_eq!(upgrade.trace_id, TRACE);
    assert_eq!(upgrade.parent_span_id, PARENT);
    let created = one(&spans, "openheim.agent_loop.v1.AgentLoop/CreateSession");
    assert_eq!(created.trace_id, TRACE, "{spans:#?}");
    assert!(
        ancestor(created, &spans, "GET /acp").is_some(),
        "{spans:#?}"
    );
}
