//! Custom providers under the real completion policy (`Proxy`), with paused
//! time: their events, retries, interruptions, fallbacks, idle timeout,
//! cancellation and failures look exactly like a built-in provider's.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use openheim_config::{ProviderConfig, ProviderKind};
use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{ContentBlock, Role};
use openheim_proto::llm_proxy::v1::completion_event::Event;
use openheim_proto::llm_proxy::v1::{CompleteRequest, ErrorKind as WireKind};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;
use crate::error::HttpFailure;
use crate::service::Proxy;
use crate::{CustomProviders, LlmProxyConfig};

/// One step of a scripted attempt.
enum Step {
    Emit(ProviderEvent),
    /// Waits this long (paused time) before the next step.
    Sleep(Duration),
    /// Never continues; fires the sender when the call is dropped.
    Hang(Option<oneshot::Sender<()>>),
    Fail(ProviderError),
    Panic,
    Finish(FinishReason),
}

/// What the provider saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    model: String,
    system_prompt: String,
    messages: usize,
    tools: Vec<String>,
    max_tokens: Option<u32>,
}

#[derive(Default)]
struct Scripted {
    attempts: Mutex<VecDeque<Vec<Step>>>,
    seen: Mutex<Vec<Seen>>,
}

impl Scripted {
    fn new(attempts: Vec<Vec<Step>>) -> Arc<Self> {
        Arc::new(Self {
            attempts: Mutex::new(attempts.into()),
            seen: Mutex::default(),
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

struct DropGuard(Option<oneshot::Sender<()>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[async_trait]
impl LlmProvider for Scripted {
    async fn stream(
        &self,
        request: &CompletionRequest,
        events: &mut EventSink,
    ) -> Result<FinishReason, ProviderError> {
        self.seen.lock().unwrap().push(Seen {
            model: request.model().to_owned(),
            system_prompt: request.system_prompt().to_owned(),
            messages: request.messages().len(),
            tools: request.tools().iter().map(|t| t.name.clone()).collect(),
            max_tokens: request.max_tokens(),
        });
        let steps = self
            .attempts
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_default();
        for step in steps {
            match step {
                Step::Emit(event) => events.send(event).await,
                Step::Sleep(wait) => tokio::time::sleep(wait).await,
                Step::Hang(dropped) => {
                    let _guard = DropGuard(dropped);
                    std::future::pending::<()>().await;
                }
                Step::Fail(error) => return Err(error),
                Step::Panic => panic!("scripted panic"),
                Step::Finish(reason) => return Ok(reason),
            }
        }
        Ok(FinishReason::EndTurn)
    }
}

fn text(t: &str) -> Step {
    Step::Emit(ProviderEvent::Text(t.into()))
}

fn start(index: u32, id: &str, name: &str) -> Step {
    Step::Emit(ProviderEvent::ToolCallStart {
        index,
        id: id.into(),
        name: name.into(),
    })
}

fn args(index: u32, fragment: &str) -> Step {
    Step::Emit(ProviderEvent::ToolCallArguments {
        index,
        fragment: fragment.into(),
    })
}

fn settings(max_retries: u32, fallbacks: &[&str]) -> ProviderConfig {
    ProviderConfig {
        default_model: Some("acme-large".into()),
        max_retries,
        retry_base_delay_ms: 100,
        retry_max_delay_ms: 1_000,
        context_window: Some(200_000),
        max_tokens: Some(4_096),
        timeout_secs: 5,
        fallbacks: fallbacks.iter().map(|f| (*f).to_owned()).collect(),
        ..ProviderConfig::default()
    }
}

/// A proxy whose default provider is the first custom one; `settings` are
/// their config entries (without `kind`: registration sets it).
fn proxy(custom: Vec<(&str, ProviderConfig, Arc<Scripted>)>) -> Arc<Proxy> {
    let config = LlmProxyConfig {
        default_provider: custom.first().map(|(name, _, _)| (*name).to_owned()),
        providers: custom
            .iter()
            .map(|(name, s, _)| ((*name).to_owned(), s.clone()))
            .collect(),
        total_timeout: Duration::from_secs(600),
        pricing: openheim_config::Pricing::default(),
    };
    let registered: CustomProviders = custom
        .into_iter()
        .map(|(name, _, p)| (name.to_owned(), p as Arc<dyn LlmProvider>))
        .collect();
    Arc::new(Proxy::new(
        config,
        &reqwest::Client::new().into(),
        &registered,
    ))
}

fn request(model: &str) -> CompleteRequest {
    CompleteRequest {
        model: model.into(),
        system_prompt: "be brief".into(),
        messages: vec![Message {
            role: Role::User as i32,
            content: vec![ContentBlock {
                block: Some(Block::Text("hi".into())),
            }],
        }],
        tools: vec![ToolDefinition {
            name: "write_file".into(),
            ..ToolDefinition::default()
        }],
        max_tokens: None,
        temperature: None,
        thinking: None,
    }
}

async fn collect(proxy: &Arc<Proxy>, request: CompleteRequest) -> Vec<Event> {
    let mut rx = proxy.complete(request);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event.event.unwrap());
    }
    events
}

/// Compact description of an event stream, for readable assertions.
fn shape(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::ModelSelected(m) => format!(
                "selected {}/{} fallback={}",
                m.provider, m.model, m.is_fallback
            ),
            Event::TextDelta(t) => format!("text {t}"),
            Event::ThinkingDelta(t) => format!("thinking {:?} {:?}", t.text, t.signature),
            Event::ToolCallDelta(t) => format!(
                "tool {} {:?} {:?} {:?}",
                t.index, t.id, t.name, t.arguments_fragment
            ),
            Event::Usage(u) => format!("usage {}/{}", u.input_tokens, u.output_tokens),
            Event::Interrupted(i) => format!("interrupted will_retry={}", i.will_retry),
            Event::Retrying(r) => format!("retrying {} after {} ms", r.attempt, r.delay_ms),
            Event::Finished(f) => format!("finished {:?}", f.stop_reason()),
            Event::Error(e) => format!("error {:?}: {}", e.kind(), e.message),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn events_retries_and_usage_go_through_the_policy() {
    let usage = Usage {
        input_tokens: 120,
        output_tokens: 7,
        cache_read_tokens: 100,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_pico_usd: None,
    };
    let acme = Scripted::new(vec![
        vec![Step::Fail(
            ProviderError::new(ErrorKind::RateLimited, "slow down")
                .with_retry_after(Duration::from_millis(250)),
        )],
        vec![
            Step::Emit(ProviderEvent::Thinking("hmm".into())),
            Step::Emit(ProviderEvent::ThinkingSignature("sig".into())),
            text("I'll "),
            text(""),
            text("write."),
            start(0, "c1", "write_file"),
            args(0, "{\"path\":"),
            start(1, "", "write_file"),
            args(1, "{\"path\":\"b\"}"),
            args(0, "\"a\"}"),
            Step::Emit(ProviderEvent::Usage(usage)),
            Step::Finish(FinishReason::ToolUse),
        ],
    ]);
    let proxy = proxy(vec![("acme", settings(3, &[]), acme.clone())]);
    let started = Instant::now();
    let events = collect(&proxy, request("")).await;
    let mut shape = shape(&events);
    // A call started without an id gets one unique across answers.
    let made_up = shape[9].clone();
    assert!(made_up.starts_with("tool 1 \"call_1_"), "{made_up}");
    assert_eq!(
        made_up.len(),
        "tool 1 \"call_1_\" \"write_file\" \"\"".len() + 16
    );
    shape[9] = "tool 1 \"call_1\" \"write_file\" \"\"".into();
    assert_eq!(
        shape,
        [
            "selected acme/acme-large fallback=false",
            "retrying 1 after 250 ms",
            "selected acme/acme-large fallback=false",
            "thinking \"hmm\" \"\"",
            "thinking \"\" \"sig\"",
            "text I'll ",
            "text write.",
            "tool 0 \"c1\" \"write_file\" \"\"",
            "tool 0 \"\" \"\" \"{\\\"path\\\":\"",
            "tool 1 \"call_1\" \"write_file\" \"\"",
            "tool 1 \"\" \"\" \"{\\\"path\\\":\\\"b\\\"}\"",
            "tool 0 \"\" \"\" \"\\\"a\\\"}\"",
            "usage 120/7",
            "finished ToolUse",
        ]
    );
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    let Event::Retrying(retrying) = &events[1] else {
        panic!("{events:?}")
    };
    let error = retrying.error.as_ref().unwrap();
    assert_eq!(error.kind(), WireKind::RateLimited);
    assert_eq!(
        error.message,
        "provider acme is rate limiting requests (429): slow down"
    );
    assert_eq!(
        (error.provider.as_str(), error.model.as_str()),
        ("acme", "acme-large")
    );
    let Event::ModelSelected(selected) = &events[0] else {
        panic!()
    };
    assert_eq!(selected.context_window, 200_000);
    // Both attempts got the same request; the configured output cap applies.
    let seen = Seen {
        model: "acme-large".into(),
        system_prompt: "be brief".into(),
        messages: 1,
        tools: vec!["write_file".into()],
        max_tokens: Some(4_096),
    };
    assert_eq!(acme.seen(), [seen.clone(), seen]);
}

#[tokio::test(start_paused = true)]
async fn a_request_cap_wins_and_provider_slash_model_selects_it() {
    let acme = Scripted::new(vec![vec![text("ok")]]);
    let proxy = proxy(vec![("acme", settings(0, &[]), acme.clone())]);
    let mut req = request("acme/acme-mini");
    req.max_tokens = Some(100);
    let events = collect(&proxy, req).await;
    assert_eq!(
        shape(&events),
        [
            "selected acme/acme-mini fallback=false",
            "text ok",
            "finished EndTurn"
        ]
    );
    assert_eq!(acme.seen()[0].max_tokens, Some(100));
    assert_eq!(acme.seen()[0].model, "acme-mini");
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_output_interrupts_then_retries() {
    let acme = Scripted::new(vec![
        vec![
            text("partial"),
            Step::Fail(ProviderError::new(ErrorKind::Network, "connection reset")),
        ],
        vec![text("whole")],
    ]);
    let proxy = proxy(vec![("acme", settings(1, &[]), acme)]);
    let events = collect(&proxy, request("")).await;
    let shape = shape(&events);
    assert_eq!(shape[1], "text partial");
    assert_eq!(shape[2], "interrupted will_retry=true");
    assert_eq!(
        &shape[3..],
        [
            "selected acme/acme-large fallback=false",
            "text whole",
            "finished EndTurn"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_error_names_the_provider_and_is_not_retried() {
    let acme = Scripted::new(vec![vec![Step::Fail(ProviderError::new(
        ErrorKind::InvalidRequest,
        "acme-large does not take images",
    ))]]);
    let proxy = proxy(vec![("acme", settings(3, &[]), acme.clone())]);
    let events = collect(&proxy, request("")).await;
    assert_eq!(
        shape(&events),
        [
            "selected acme/acme-large fallback=false",
            "error BadRequest: provider acme rejected the request (400): acme-large does not take images",
        ]
    );
    let Event::Error(error) = &events[1] else {
        panic!()
    };
    assert!(!error.retryable);
    assert_eq!(acme.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_overloaded_provider_falls_back_at_once() {
    let acme = Scripted::new(vec![vec![Step::Fail(ProviderError::new(
        ErrorKind::Overloaded,
        "no capacity",
    ))]]);
    let spare = Scripted::new(vec![vec![text("from spare")]]);
    let proxy = proxy(vec![
        ("acme", settings(3, &["spare/spare-1"]), acme.clone()),
        ("spare", settings(0, &[]), spare),
    ]);
    let events = collect(&proxy, request("")).await;
    assert_eq!(
        shape(&events),
        [
            "selected acme/acme-large fallback=false",
            "selected spare/spare-1 fallback=true",
            "text from spare",
            "finished EndTurn"
        ]
    );
    assert_eq!(acme.seen().len(), 1, "overload goes to the fallback first");
}

#[tokio::test(start_paused = true)]
async fn a_silent_provider_hits_its_idle_timeout_and_is_retried() {
    let (dropped_tx, dropped) = oneshot::channel();
    let acme = Scripted::new(vec![
        vec![
            text("a"),
            Step::Sleep(Duration::from_secs(4)),
            Step::Emit(ProviderEvent::Text("b".into())),
            Step::Hang(Some(dropped_tx)),
        ],
        vec![text("again")],
    ]);
    let mut acme_settings = settings(1, &[]);
    acme_settings.retry_base_delay_ms = 0;
    let proxy = proxy(vec![("acme", acme_settings, acme)]);
    let started = Instant::now();
    let events = collect(&proxy, request("")).await;
    // 4 s of silence is tolerated (each event restarts the clock); 5 s is not.
    assert_eq!(started.elapsed(), Duration::from_secs(9));
    let shape = shape(&events);
    assert_eq!(
        &shape[1..4],
        ["text a", "text b", "interrupted will_retry=true"]
    );
    assert_eq!(shape.last().unwrap(), "finished EndTurn");
    dropped.await.expect("the silent call was dropped");
    let Event::Interrupted(interrupted) = &events[3] else {
        panic!()
    };
    let error = interrupted.error.as_ref().unwrap();
    assert_eq!(error.kind(), WireKind::Timeout);
    assert!(
        error.message.contains("no data for 5 s"),
        "{}",
        error.message
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_completion_drops_the_implementation_call() {
    let (dropped_tx, dropped) = oneshot::channel();
    let acme = Scripted::new(vec![vec![text("partial"), Step::Hang(Some(dropped_tx))]]);
    let proxy = proxy(vec![("acme", settings(0, &[]), acme)]);
    let mut rx = proxy.complete(request(""));
    let _selected = rx.recv().await.unwrap();
    let partial = rx.recv().await.unwrap();
    assert_eq!(partial.event, Some(Event::TextDelta("partial".into())));
    drop(rx);
    tokio::time::timeout(Duration::from_secs(1), dropped)
        .await
        .expect("dropped in time")
        .expect("guard fired");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_implementation_is_an_error_naming_the_provider() {
    let acme = Scripted::new(vec![vec![text("x"), Step::Panic]]);
    let proxy = proxy(vec![("acme", settings(3, &[]), acme.clone())]);
    let events = collect(&proxy, request("")).await;
    let shape = shape(&events);
    assert_eq!(shape[2], "interrupted will_retry=false");
    assert_eq!(
        shape[3],
        "error Provider: provider acme failed: its implementation panicked: scripted panic"
    );
    assert_eq!(acme.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn malformed_events_end_the_attempt_with_a_protocol_error() {
    for (steps, message) in [
        (
            vec![start(0, "c", "")],
            "provider acme sent an invalid response: tool call 0 has no name",
        ),
        (
            vec![args(2, "{}")],
            "provider acme sent an invalid response: arguments for tool call 2 before it started",
        ),
        (
            vec![start(MAX_TOOL_CALLS, "c", "x")],
            "provider acme sent an invalid response: tool call index 128 is out of range (at most 128 calls per answer)",
        ),
    ] {
        let acme = Scripted::new(vec![steps]);
        let proxy = proxy(vec![("acme", settings(3, &[]), acme.clone())]);
        let events = collect(&proxy, request("")).await;
        assert_eq!(
            shape(&events)[1..],
            [format!("error Protocol: {message}")],
            "{message}"
        );
        assert_eq!(acme.seen().len(), 1, "not retried");
    }
}

#[tokio::test]
async fn a_custom_provider_nobody_registered_is_a_clear_error() {
    let mut providers = std::collections::BTreeMap::new();
    providers.insert(
        "acme".to_owned(),
        ProviderConfig {
            kind: Some(ProviderKind::Custom),
            ..settings(0, &[])
        },
    );
    let config = LlmProxyConfig {
        providers,
        default_provider: Some("acme".into()),
        ..LlmProxyConfig::default()
    };
    let proxy = Arc::new(Proxy::new(
        config,
        &reqwest::Client::new().into(),
        &CustomProviders::new(),
    ));
    let events = collect(&proxy, request("")).await;
    let Some(Event::Error(error)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.kind(), WireKind::Config);
    assert!(
        error
            .message
            .starts_with("provider acme is a custom provider")
            && error.message.contains("in-process llm-proxy"),
        "{}",
        error.message
    );
}

#[test]
fn a_registered_provider_is_listed_and_resolved_as_custom() {
    let acme = Scripted::new(Vec::new());
    // Registered without a config entry, and over a configured built-in name.
    let mut config = LlmProxyConfig::default();
    config.providers.insert("openai".into(), settings(0, &[]));
    let registered: CustomProviders = [
        ("acme".to_owned(), acme.clone() as Arc<dyn LlmProvider>),
        ("openai".to_owned(), acme as Arc<dyn LlmProvider>),
    ]
    .into();
    let proxy = Proxy::new(config, &reqwest::Client::new().into(), &registered);
    let kinds: Vec<(String, String)> = proxy
        .list_models()
        .providers
        .into_iter()
        .map(|p| (p.provider, p.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("acme".to_owned(), "custom".to_owned()),
            ("openai".to_owned(), "custom".to_owned())
        ]
    );
    let resolved = proxy.resolve_model("openai/").unwrap();
    assert_eq!(resolved.context_window, 200_000);
    assert_eq!(resolved.max_output_tokens, 4_096);
}

const KINDS: [ErrorKind; 11] = [
    ErrorKind::Auth,
    ErrorKind::ModelNotFound,
    ErrorKind::InvalidRequest,
    ErrorKind::ContextTooLong,
    ErrorKind::RateLimited,
    ErrorKind::Overloaded,
    ErrorKind::Unavailable,
    ErrorKind::Timeout,
    ErrorKind::Network,
    ErrorKind::Protocol,
    ErrorKind::Failed,
];

#[test]
fn what_the_error_promises_is_what_the_policy_does() {
    let wait = Duration::from_secs(2);
    for kind in KINDS {
        let error = ProviderError::new(kind, "m").with_retry_after(wait);
        let service = error.clone().into_llm_error("acme", "m1");
        assert_eq!(error.is_retryable(), service.is_retryable(), "{kind:?}");
        assert_eq!(error.retry_after(), service.retry_after(), "{kind:?}");
        assert_eq!(service.is_overload(), kind == ErrorKind::Overloaded);
        assert!(service.to_string().contains("provider acme"), "{service}");
    }
    let context = ProviderError::new(ErrorKind::ContextTooLong, "too long")
        .into_llm_error("acme", "m1")
        .kind();
    assert_eq!(
        context,
        WireKind::ContextTooLong,
        "the agent loop shrinks on it"
    );
}

#[test]
fn http_statuses_are_classified_as_for_built_in_providers() {
    for status in 300..600 {
        let custom = ProviderError::from_http_status(status, "m").into_llm_error("p", "m1");
        let built_in = LlmError::from_http(HttpFailure {
            provider: "p",
            model: "m1",
            status,
            message: "m".into(),
            context_too_long: false,
            retry_after: None,
            auth_hint: "",
            url: "",
        });
        assert_eq!(custom.kind(), built_in.kind(), "{status}");
        assert_eq!(custom.is_retryable(), built_in.is_retryable(), "{status}");
        assert_eq!(custom.is_overload(), built_in.is_overload(), "{status}");
        assert_eq!(custom.http_status(), built_in.http_status(), "{status}");
    }
}

#[test]
fn long_messages_are_cut() {
    let long = "x".repeat(5_000);
    let error = ProviderError::new(ErrorKind::Failed, long).into_llm_error("acme", "m");
    assert!(
        error.to_string().len() < 1_100,
        "{}",
        error.to_string().len()
    );
}

/// The fields of every `llm_request` span, as recorded.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<std::collections::BTreeMap<String, String>>>>);

struct Fields<'a>(&'a mut std::collections::BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The span's index in `Spans`, kept in its extensions.
struct Slot(usize);

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "llm_request" {
            return;
        }
        let mut fields = std::collections::BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        spans.push(fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Slot(spans.len() - 1));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let Some(Slot(slot)) = span.extensions().get::<Slot>().map(|s| Slot(s.0)) else {
            return;
        };
        values.record(&mut Fields(&mut self.0.lock().unwrap()[slot]));
    }
}

/// The current-thread test runtime runs the completion's task on this
/// thread, so a thread-local subscriber sees its spans.
#[tokio::test(start_paused = true)]
async fn every_attempt_is_traced_like_a_built_in_providers() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let usage = Usage {
        input_tokens: 120,
        output_tokens: 7,
        ..Usage::default()
    };
    let acme = Scripted::new(vec![
        vec![Step::Fail(ProviderError::new(
            ErrorKind::RateLimited,
            "slow",
        ))],
        vec![
            start(0, "c1", "write_file"),
            args(0, "{}"),
            Step::Emit(ProviderEvent::Usage(usage)),
            Step::Finish(FinishReason::ToolUse),
        ],
    ]);
    let proxy = proxy(vec![("acme", settings(1, &[]), acme)]);
    let events = collect(&proxy, request("")).await;
    assert_eq!(shape(&events).last().unwrap(), "finished ToolUse");
    let spans = spans.0.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let field = |i: usize, name: &str| spans[i].get(name).cloned().unwrap_or_default();
    for i in 0..2 {
        assert_eq!(field(i, "gen_ai.provider.name"), "acme");
        assert_eq!(field(i, "openheim.provider"), "acme");
        assert_eq!(field(i, "gen_ai.request.model"), "acme-large");
    }
    assert_eq!(field(0, "error.type"), "rate_limited");
    assert_eq!(field(1, "gen_ai.usage.input_tokens"), "120");
    assert_eq!(field(1, "gen_ai.usage.output_tokens"), "7");
    assert_eq!(field(1, "gen_ai.response.finish_reasons"), "tool_call");
    assert_eq!(field(1, "error.type"), "");
}
