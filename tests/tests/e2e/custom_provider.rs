//! Custom LLM providers through the library (docs/custom-llm-provider.md):
//! one implemented here completes the files task under the same policy as
//! a built-in provider, with the same events a user sees (the run is
//! repeated against the mock provider and the two transcripts compared);
//! a non-retryable error names the provider; a remote llm-proxy is refused
//! at build and cannot serve a custom provider; the example program runs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use openheim::config::{ProviderConfig, ProviderKind};
use openheim::events::{ApprovalMode, Event, TurnEvent};
use openheim::llm::{
    Block, CompletionRequest, ErrorKind, EventSink, FinishReason, LlmProvider, ProviderError, Role,
    Usage, async_trait,
};
use openheim::{Openheim, OpenheimBuilder, SessionOptions};
use openheim_e2e::install::Install;
use openheim_e2e::{MockLlm, Reply, ServiceProcess, ToolCallSpec, last_tool_result};
use serde_json::json;

const CONTENT: &str = "Hello from openheim! ünïcødé ✓";
const PROVIDER: &str = "gateway";
const MODEL: &str = "gw-1";
/// Token counts of the three model calls of the files task.
const USAGE: [(u64, u64); 3] = [(120, 7), (150, 5), (170, 3)];

/// The provider's policy settings, the same for the built-in and the
/// custom run.
fn settings() -> ProviderConfig {
    ProviderConfig {
        default_model: Some(MODEL.into()),
        context_window: Some(64_000),
        max_retries: 2,
        retry_base_delay_ms: 10,
        ..ProviderConfig::default()
    }
}

/// An in-process provider: fails its first call with a rate limit, then
/// plays the files task (write hello.txt, read it back, answer quoting it),
/// streaming text and each tool call in small fragments, and checks every
/// request the way the mock provider checks its wire format.
#[derive(Default)]
struct FilesTask {
    calls: Mutex<u32>,
    violations: Mutex<Vec<String>>,
    /// The last `(message count, tool names)` of each request.
    requests: Mutex<Vec<(usize, Vec<String>)>>,
}

impl FilesTask {
    fn violation(&self, problem: String) {
        self.violations.lock().unwrap().push(problem);
    }

    /// Every tool result answers the call just before it, by id.
    fn check(&self, request: &CompletionRequest) {
        if request.model() != MODEL {
            self.violation(format!("model {:?}", request.model()));
        }
        if !request.system_prompt().contains("You are openheim") {
            self.violation("no system prompt".into());
        }
        let mut open_calls = VecDeque::new();
        for message in request.messages() {
            for block in message.content.iter().filter_map(|c| c.block.as_ref()) {
                match (message.role(), block) {
                    (Role::Assistant, Block::ToolCall(call)) => {
                        if serde_json::from_str::<serde_json::Value>(&call.arguments_json).is_err()
                        {
                            self.violation(format!("arguments {:?}", call.arguments_json));
                        }
                        open_calls.push_back(call.id.clone());
                    }
                    (Role::Tool, Block::ToolResult(result)) => {
                        let answered = open_calls.pop_front();
                        if answered.as_deref() != Some(result.tool_call_id.as_str()) {
                            self.violation(format!("unexpected result {result:?}"));
                        }
                    }
                    _ => {}
                }
            }
        }
        let tools = request.tools().iter().map(|t| t.name.clone()).collect();
        self.requests
            .lock()
            .unwrap()
            .push((request.messages().len(), tools));
    }
}

/// `text` in pieces of at most `n` characters.
fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

fn last_result(request: &CompletionRequest) -> String {
    let blocks = request.messages().iter().flat_map(|m| &m.content);
    let mut results = blocks.filter_map(|c| match &c.block {
        Some(Block::ToolResult(result)) => Some(result.content.clone()),
        _ => None,
    });
    results.next_back().unwrap_or_default()
}

#[async_trait]
impl LlmProvider for FilesTask {
    async fn stream(
        &self,
        request: &CompletionRequest,
        events: &mut EventSink,
    ) -> Result<FinishReason, ProviderError> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        self.check(request);
        if call == 1 {
            let error = ProviderError::new(ErrorKind::RateLimited, "slow down");
            return Err(error.with_retry_after(Duration::from_millis(10)));
        }
        let done = request
            .messages()
            .iter()
            .filter(|m| m.role() == Role::Tool)
            .count();
        let (text, tool, arguments) = match done {
            0 => (
                "I'll write the file.".to_owned(),
                Some(("call_write", "write_file")),
                json!({"path": "hello.txt", "content": CONTENT}),
            ),
            1 => (
                String::new(),
                Some(("call_read", "read_file")),
                json!({"path": "hello.txt"}),
            ),
            _ => (
                format!("The file says: {}", last_result(request)),
                None,
                json!(null),
            ),
        };
        for piece in pieces(&text, 5) {
            events.text(piece).await;
        }
        if let Some((id, name)) = tool {
            events.tool_call(0, id, name).await;
            for piece in pieces(&arguments.to_string(), 7) {
                events.tool_call_arguments(0, piece).await;
            }
        }
        let (input_tokens, output_tokens) = USAGE[done.min(2)];
        let usage = Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        };
        events.usage(usage).await;
        Ok(match tool {
            Some(_) => FinishReason::ToolUse,
            None => FinishReason::EndTurn,
        })
    }
}

/// The same task for the mock provider, in its wire format.
fn mock_script() -> Vec<Reply> {
    let write = json!({"path": "hello.txt", "content": CONTENT});
    vec![
        Reply::http_error(429, json!({"error": {"message": "slow down"}})).retry_after("0.01"),
        Reply::tool_calls(vec![
            ToolCallSpec::new("write_file", write).with_id("call_write"),
        ])
        .with_text("I'll write the file.")
        .with_usage(USAGE[0].0, USAGE[0].1, 0),
        Reply::tool_calls(vec![
            ToolCallSpec::new("read_file", json!({"path": "hello.txt"})).with_id("call_read"),
        ])
        .with_usage(USAGE[1].0, USAGE[1].1, 0),
        Reply::dynamic(|request| {
            let read = last_tool_result(request).unwrap_or_default();
            Reply::text(format!("The file says: {read}")).with_usage(USAGE[2].0, USAGE[2].1, 0)
        }),
    ]
}

fn builder(install: &Install) -> OpenheimBuilder {
    Openheim::builder()
        .default_provider(PROVIDER)
        .work_dir(install.workspace())
        .data_dir(install.home())
}

/// What a user of the turn sees, one line per event, text deltas joined
/// (providers split text differently).
fn transcript(events: &[TurnEvent]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for event in events.iter().filter_map(|e| e.event.as_ref()) {
        let line = match event {
            Event::TextDelta(text) => {
                match lines.last_mut() {
                    Some(last) if last.starts_with("text: ") => last.push_str(text),
                    _ => lines.push(format!("text: {text}")),
                }
                continue;
            }
            // Session ids differ between runs.
            Event::Started(_) => "started".to_owned(),
            Event::ModelSelected(m) => format!(
                "model {}/{} window {} fallback {}",
                m.provider, m.model, m.context_window, m.is_fallback
            ),
            Event::Notice(n) => format!("notice {:?}: {}", n.level(), n.message),
            Event::ToolCall(c) => {
                format!("tool {} {} {}: {}", c.id, c.name, c.title, c.raw_input_json)
            }
            Event::ToolCallUpdate(u) => format!("update {} {:?}: {}", u.id, u.status(), u.content),
            Event::Usage(u) => format!("usage {} in, {} out", u.input_tokens, u.output_tokens),
            Event::Ended(e) => {
                let u = e.usage.unwrap_or_default();
                format!(
                    "ended {:?}: {} in, {} out, {} calls",
                    e.stop_reason(),
                    u.input_tokens,
                    u.output_tokens,
                    e.llm_calls
                )
            }
            other => format!("{other:?}"),
        };
        lines.push(line);
    }
    lines
}

async fn files_task(openheim: &Openheim) -> (Vec<TurnEvent>, String) {
    let options = SessionOptions {
        approval: ApprovalMode::Auto,
        ..SessionOptions::default()
    };
    let mut session = openheim.new_session(options).await.unwrap();
    let mut turn = session
        .prompt("Write hello.txt, then read it back")
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = turn.next().await {
        let event = event.unwrap();
        let end = matches!(event.event, Some(Event::Ended(_) | Event::Error(_)));
        events.push(event);
        if end {
            break;
        }
    }
    (events, session.id().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_provider_completes_the_files_task_like_a_built_in_one() {
    // The built-in provider (OpenAI-compatible, against the mock).
    let mock = MockLlm::start(mock_script()).await;
    let builtin_install = Install::new(&mock, "");
    let builtin = ProviderConfig {
        kind: Some(ProviderKind::OpenaiCompatible),
        api_base: Some(mock.base_url()),
        ..settings()
    };
    let openheim = builder(&builtin_install)
        .provider(PROVIDER, builtin)
        .build()
        .unwrap();
    let (builtin_events, _) = files_task(&openheim).await;
    mock.assert_no_violations();
    assert_eq!(mock.request_count(), 4);

    // The custom provider, under the same name and settings.
    let idle = MockLlm::start(Vec::new()).await;
    let install = Install::new(&idle, "");
    let provider = Arc::new(FilesTask::default());
    let openheim = builder(&install)
        .provider(PROVIDER, settings())
        .llm_provider(PROVIDER, SharedProvider(provider.clone()))
        .build()
        .unwrap();
    let (events, session_id) = files_task(&openheim).await;
    assert_eq!(idle.request_count(), 0);
    assert_eq!(*provider.violations.lock().unwrap(), Vec::<String>::new());

    // The task is done: the file is written, the answer quotes it.
    let written = std::fs::read_to_string(install.workspace().join("hello.txt")).unwrap();
    assert_eq!(written, CONTENT);
    let lines = transcript(&events);
    assert!(
        lines.contains(&format!("text: The file says: {CONTENT}")),
        "{lines:#?}"
    );
    // The retry and the usage show up as a built-in provider's do.
    let notice = "notice Warning: provider gateway is rate limiting requests (429): slow down; \
                  retrying in 10 ms (attempt 1)";
    assert!(lines.iter().any(|l| l == notice), "{lines:#?}");
    for (input, output) in USAGE {
        assert!(
            lines.contains(&format!("usage {input} in, {output} out")),
            "{lines:#?}"
        );
    }
    assert_eq!(
        lines.last().unwrap(),
        "ended EndTurn: 440 in, 15 out, 3 calls"
    );
    assert_eq!(lines, transcript(&builtin_events));
    // Both tool calls arrived whole from their fragments, and the retried
    // attempt got the same request as the failed one.
    let requests = provider.requests.lock().unwrap().clone();
    let counts: Vec<usize> = requests.iter().map(|(n, _)| *n).collect();
    assert_eq!(counts, [1, 1, 3, 5]);
    for (_, tools) in &requests {
        for name in ["write_file", "read_file"] {
            assert!(tools.iter().any(|t| t == name), "{name} in {tools:?}");
        }
    }

    // The session is stored like any other.
    let (_, messages) = openheim.load_session(&session_id).await.unwrap();
    assert_eq!(messages.len(), 6);
    let models = openheim.models().await.unwrap().unwrap();
    assert_eq!(
        (models[0].provider.as_str(), models[0].kind.as_str()),
        (PROVIDER, "custom")
    );
}

/// A provider behind an `Arc`, so the test keeps a handle on it.
struct SharedProvider<P>(Arc<P>);

#[async_trait]
impl<P: LlmProvider> LlmProvider for SharedProvider<P> {
    async fn stream(
        &self,
        request: &CompletionRequest,
        events: &mut EventSink,
    ) -> Result<FinishReason, ProviderError> {
        self.0.stream(request, events).await
    }
}

/// Refuses its credentials, every time.
#[derive(Default)]
struct Expired {
    calls: Mutex<u32>,
}

#[async_trait]
impl LlmProvider for Expired {
    async fn stream(
        &self,
        _request: &CompletionRequest,
        _events: &mut EventSink,
    ) -> Result<FinishReason, ProviderError> {
        *self.calls.lock().unwrap() += 1;
        Err(ProviderError::new(
            ErrorKind::Auth,
            "the gateway token expired; run `acme login`",
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_error_reaches_the_user_naming_the_provider() {
    let idle = MockLlm::start(Vec::new()).await;
    let install = Install::new(&idle, "");
    let provider = Arc::new(Expired::default());
    let openheim = builder(&install)
        .provider(PROVIDER, settings())
        .llm_provider(PROVIDER, SharedProvider(provider.clone()))
        .build()
        .unwrap();
    let (events, _) = files_task(&openheim).await;
    let lines = transcript(&events);
    let Some(Event::Error(error)) = events.last().and_then(|e| e.event.as_ref()) else {
        panic!("the turn did not fail: {lines:#?}");
    };
    assert_eq!(
        error.message,
        "the model provider failed: provider gateway rejected the API key (401): \
         the gateway token expired; run `acme login`"
    );
    assert!(!lines.iter().any(|l| l.starts_with("notice")), "{lines:#?}");
    assert_eq!(*provider.calls.lock().unwrap(), 1, "not retried");
    assert!(!install.workspace().join("hello.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_provider_needs_the_in_process_llm_proxy() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");

    // Registering one while the config names a remote llm-proxy fails at
    // build, naming the provider and the setting.
    let mut config = openheim::config::Config::default();
    config.services.llm_proxy = Some("http://127.0.0.1:9".into());
    let result = builder(&install)
        .config(config)
        .llm_provider("acme", Expired::default())
        .build();
    let Err(error) = result else {
        panic!("built with a remote llm-proxy");
    };
    let message = error.to_string();
    assert!(
        message.starts_with("custom LLM provider acme needs the in-process llm-proxy")
            && message.contains("services.llm_proxy = \"http://127.0.0.1:9\""),
        "{message}"
    );
    let Err(error) = builder(&install)
        .llm_provider("acme/x", Expired::default())
        .build()
    else {
        panic!("a name with a slash was accepted");
    };
    assert!(
        error.to_string().contains("separates the provider"),
        "{error}"
    );

    // A standalone llm-proxy configured with a custom provider has no
    // implementation of it: a request for it gets a clear error.
    let config = install.root.path().join("llm-proxy.toml");
    std::fs::write(
        &config,
        "default_provider = \"acme\"\n[providers.acme]\nkind = \"custom\"\ndefault_model = \"a-1\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let home = install.home();
    let env = [
        ("OPENHEIM_CONFIG", config),
        ("OPENHEIM_HOME", home.to_str().unwrap()),
    ];
    let proxy = ServiceProcess::spawn("openheim-llm-proxy", &[], &env).await;
    let mut config = openheim::config::Config::default();
    config.services.llm_proxy = Some(proxy.url());
    let openheim = builder(&install).config(config).build().unwrap();
    let (events, _) = files_task(&openheim).await;
    let Some(Event::Error(error)) = events.last().and_then(|e| e.event.as_ref()) else {
        panic!("the turn did not fail: {:#?}", transcript(&events));
    };
    assert!(
        error
            .message
            .contains("provider acme is a custom provider (kind = \"custom\") and this llm-proxy has no implementation of it"),
        "{}",
        error.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_provider_example_runs() {
    let example = openheim_e2e::bins::example_path("custom_provider");
    let run = tokio::process::Command::new(example)
        .env_remove("OPENAI_API_KEY")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the example finished in time")
        .expect("the example started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("notes.txt says: buy milk, call Ada"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[113 tokens in, 23 out, 2 model calls]"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "provider acme is overloaded (503): all replicas busy; retrying in 200 ms (attempt 1)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("tool: read_file notes.txt"), "{stderr}");
}
