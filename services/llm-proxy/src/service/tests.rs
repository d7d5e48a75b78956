//! Tests of the retry, interruption, fallback and cancellation protocol with
//! scripted providers and paused time: every backoff is observed exactly,
//! without real sleeping.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use openheim_config::ProviderConfig;
use openheim_proto::llm_proxy::v1::ErrorKind;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;

type Script = Vec<Result<ProviderEvent, LlmError>>;

/// Answers each call with the next script; records the models it was asked for.
#[derive(Default)]
struct ScriptedProvider {
    scripts: Mutex<VecDeque<Script>>,
    calls: Mutex<Vec<String>>,
}

impl ScriptedProvider {
    fn new(scripts: Vec<Script>) -> Arc<Self> {
        Arc::new(Self {
            scripts: Mutex::new(scripts.into()),
            calls: Mutex::default(),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl ProviderClient for ScriptedProvider {
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        self.calls.lock().unwrap().push(request.model);
        let script = self.scripts.lock().unwrap().pop_front().unwrap_or_default();
        stream::iter(script).boxed()
    }
}

/// Sends some text, then never ends; tells the test when it is dropped.
struct HangingProvider {
    dropped: Mutex<Option<oneshot::Sender<()>>>,
}

struct DropGuard(Option<oneshot::Sender<()>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl ProviderClient for HangingProvider {
    fn stream(
        &self,
        _request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        let guard = DropGuard(self.dropped.lock().unwrap().take());
        let first = stream::iter([Ok(ProviderEvent::TextDelta("partial".into()))]);
        let rest = stream::pending().map(move |()| {
            let _keep = &guard;
            Ok(ProviderEvent::TextDelta(String::new()))
        });
        first.chain(rest).boxed()
    }
}

fn settings(max_retries: u32, fallbacks: &[&str]) -> ProviderConfig {
    ProviderConfig {
        default_model: Some("model-a".into()),
        max_retries,
        retry_base_delay_ms: 100,
        retry_max_delay_ms: 1_000,
        context_window: Some(1_000),
        fallbacks: fallbacks.iter().map(|f| (*f).to_owned()).collect(),
        ..ProviderConfig::default()
    }
}

fn proxy(providers: Vec<(&str, ProviderConfig, Arc<dyn ProviderClient>)>) -> Arc<Proxy> {
    let config = LlmProxyConfig {
        default_provider: providers.first().map(|(name, _, _)| (*name).to_owned()),
        providers: providers
            .iter()
            .map(|(name, s, _)| ((*name).to_owned(), s.clone()))
            .collect(),
        total_timeout: Duration::from_secs(600),
        pricing: openheim_config::Pricing::default(),
    };
    let clients = providers
        .into_iter()
        .map(|(name, _, client)| (name.to_owned(), client))
        .collect();
    Arc::new(Proxy::with_providers(config, clients))
}

async fn collect(proxy: &Arc<Proxy>, model: &str) -> Vec<Event> {
    let mut rx = proxy.complete(CompleteRequest {
        model: model.into(),
        ..Default::default()
    });
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event.event.unwrap());
    }
    events
}

fn text(t: &str) -> Result<ProviderEvent, LlmError> {
    Ok(ProviderEvent::TextDelta(t.into()))
}

fn finished() -> Result<ProviderEvent, LlmError> {
    Ok(ProviderEvent::Finished(StopReason::EndTurn))
}

fn network() -> Result<ProviderEvent, LlmError> {
    Err(LlmError::Network {
        provider: "a".into(),
        message: "reset".into(),
    })
}

fn selected(provider: &str, model: &str, is_fallback: bool) -> Event {
    Event::ModelSelected(ModelSelected {
        provider: provider.into(),
        model: model.into(),
        context_window: 1_000,
        is_fallback,
    })
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
            Event::ThinkingDelta(t) => format!("thinking {}", t.text),
            Event::ToolCallDelta(t) => format!("tool {}", t.index),
            Event::Usage(_) => "usage".into(),
            Event::Interrupted(i) => format!("interrupted will_retry={}", i.will_retry),
            Event::Retrying(r) => format!("retrying {}", r.attempt),
            Event::Finished(f) => format!("finished {:?}", f.stop_reason()),
            Event::Error(e) => format!("error {:?}", e.kind()),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retries_before_output_wait_the_announced_delays() {
    let a = ScriptedProvider::new(vec![
        vec![Err(LlmError::RateLimited {
            provider: "a".into(),
            message: "slow down".into(),
            retry_after: Some(Duration::from_millis(250)),
        })],
        vec![network()],
        vec![text("hi"), finished()],
    ]);
    let proxy = proxy(vec![("a", settings(3, &[]), a.clone())]);
    let start = Instant::now();
    let events = collect(&proxy, "").await;
    let elapsed = start.elapsed();
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "retrying 1",
            "selected a/model-a fallback=false",
            "retrying 2",
            "selected a/model-a fallback=false",
            "text hi",
            "finished EndTurn",
        ]
    );
    assert_eq!(events[0], selected("a", "model-a", false));
    let delays: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying(r) => Some(r.delay_ms),
            _ => None,
        })
        .collect();
    // Retry-After is honoured exactly; the second wait is backoff with
    // equal jitter: 200 ms * [0.5, 1].
    assert_eq!(delays[0], 250);
    assert!((100..=200).contains(&delays[1]), "{delays:?}");
    let announced = Duration::from_millis(delays.iter().sum());
    assert!(
        elapsed >= announced && elapsed < announced + Duration::from_millis(2),
        "{elapsed:?}"
    );
    match &events[1] {
        Event::Retrying(r) => {
            let error = r.error.as_ref().unwrap();
            assert_eq!(error.kind(), ErrorKind::RateLimited);
            assert!(error.retryable);
            assert_eq!(error.http_status, Some(429));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(a.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_end_the_stream_at_once() {
    let a = ScriptedProvider::new(vec![vec![Err(LlmError::Auth {
        provider: "a".into(),
        status: 401,
        hint: "check A_KEY".into(),
        detail: String::new(),
    })]]);
    let proxy = proxy(vec![("a", settings(3, &[]), a.clone())]);
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        ["selected a/model-a fallback=false", "error Auth"]
    );
    let Event::Error(error) = &events[1] else {
        panic!()
    };
    assert_eq!(error.provider, "a");
    assert_eq!(error.model, "model-a");
    assert!(!error.retryable);
    assert_eq!(a.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_end_with_the_last_error() {
    let a = ScriptedProvider::new(vec![vec![network()], vec![network()], vec![network()]]);
    let proxy = proxy(vec![("a", settings(2, &[]), a.clone())]);
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "retrying 1",
            "selected a/model-a fallback=false",
            "retrying 2",
            "selected a/model-a fallback=false",
            "error Network",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn failures_after_output_are_interruptions() {
    let a = ScriptedProvider::new(vec![
        vec![text("par"), network()],
        vec![text("whole"), finished()],
    ]);
    let proxy = proxy(vec![("a", settings(1, &[]), a)]);
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "text par",
            "interrupted will_retry=true",
            "selected a/model-a fallback=false",
            "text whole",
            "finished EndTurn",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_last_interruption_says_no_retry_follows() {
    let a = ScriptedProvider::new(vec![vec![text("par"), network()]]);
    let proxy = proxy(vec![("a", settings(0, &[]), a)]);
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "text par",
            "interrupted will_retry=false",
            "error Network",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn fallbacks_follow_exhausted_retries_and_skip_them_on_overload() {
    let a = ScriptedProvider::new(vec![
        vec![network()],
        vec![network()],
        vec![Err(LlmError::Overloaded {
            provider: "a".into(),
            status: 529,
            message: "busy".into(),
            retry_after: None,
        })],
    ]);
    let b = ScriptedProvider::new(vec![
        vec![text("from b"), finished()],
        vec![text("from b again"), finished()],
    ]);
    let proxy = proxy(vec![
        ("a", settings(1, &["b/model-b"]), a.clone()),
        ("b", settings(3, &[]), b.clone()),
    ]);
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "retrying 1",
            "selected a/model-a fallback=false",
            "selected b/model-b fallback=true",
            "text from b",
            "finished EndTurn",
        ]
    );
    // Overloaded: straight to the fallback, without retrying `a`.
    let events = collect(&proxy, "a/other").await;
    assert_eq!(
        shape(&events),
        [
            "selected a/other fallback=false",
            "selected b/model-b fallback=true",
            "text from b again",
            "finished EndTurn",
        ]
    );
    assert_eq!(a.calls(), ["model-a", "model-a", "other"]);
    assert_eq!(b.calls(), ["model-b", "model-b"]);
}

#[tokio::test(start_paused = true)]
async fn a_model_that_failed_over_cools_down_and_later_calls_skip_it() {
    let a = ScriptedProvider::new(vec![vec![network()], vec![text("a is back"), finished()]]);
    let b = ScriptedProvider::new(vec![
        vec![text("b 1"), finished()],
        vec![text("b 2"), finished()],
    ]);
    let mut primary = settings(0, &["b/model-b"]);
    primary.cooldown_secs = 30;
    let proxy = proxy(vec![
        ("a", primary, a.clone()),
        ("b", settings(0, &[]), b.clone()),
    ]);
    collect(&proxy, "").await;
    // Within the cooldown: straight to the fallback, `a` is not asked.
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        [
            "selected b/model-b fallback=true",
            "text b 2",
            "finished EndTurn",
        ]
    );
    assert_eq!(a.calls(), ["model-a"]);
    // Once it is over, the primary is tried first again.
    tokio::time::advance(Duration::from_secs(31)).await;
    let events = collect(&proxy, "").await;
    assert_eq!(shape(&events)[1], "text a is back");
    assert_eq!(a.calls(), ["model-a", "model-a"]);
    assert_eq!(b.calls(), ["model-b", "model-b"]);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_do_not_fall_back() {
    let a = ScriptedProvider::new(vec![vec![Err(LlmError::BadRequest {
        provider: "a".into(),
        status: 400,
        message: "bad".into(),
    })]]);
    let b = ScriptedProvider::new(vec![]);
    let proxy = proxy(vec![
        ("a", settings(1, &["b/model-b"]), a),
        ("b", settings(1, &[]), b.clone()),
    ]);
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        ["selected a/model-a fallback=false", "error BadRequest"]
    );
    assert!(b.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn resolution_errors_are_the_only_event() {
    let proxy = proxy(vec![("a", settings(1, &[]), ScriptedProvider::new(vec![]))]);
    let mut config = proxy.config.clone();
    config.default_provider = None;
    let proxy = Arc::new(Proxy::with_providers(config, BTreeMap::new()));
    let events = collect(&proxy, "nope/x").await;
    assert_eq!(shape(&events), ["error Config"]);
    let Event::Error(error) = &events[0] else {
        panic!()
    };
    assert_eq!(error.message, "unknown provider nope (known: a)");
    assert_eq!(error.model, "nope/x");
}

#[tokio::test(start_paused = true)]
async fn a_stream_without_finish_is_an_early_end() {
    let a = ScriptedProvider::new(vec![vec![text("cut")]]);
    let proxy = proxy(vec![("a", settings(0, &[]), a)]);
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "text cut",
            "interrupted will_retry=false",
            "error Network",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_total_deadline_ends_an_attempt_that_never_finishes() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let hanging = Arc::new(HangingProvider {
        dropped: Mutex::new(Some(dropped_tx)),
    });
    let b = ScriptedProvider::new(vec![vec![text("unused"), finished()]]);
    let proxy = proxy(vec![
        ("a", settings(3, &["b/model-b"]), hanging),
        ("b", settings(3, &[]), b.clone()),
    ]);
    let start = Instant::now();
    let events = collect(&proxy, "").await;
    assert_eq!(start.elapsed(), Duration::from_secs(600));
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "text partial",
            "interrupted will_retry=false",
            "error Timeout",
        ]
    );
    let Some(Event::Error(error)) = events.last() else {
        panic!()
    };
    assert!(!error.retryable);
    assert!(error.message.contains("within 600 s"), "{}", error.message);
    // Neither retried nor handed to the fallback: the time is up.
    assert!(b.calls().is_empty());
    dropped_rx.await.expect("the provider stream was dropped");
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_that_would_end_after_the_deadline() {
    let limited = || {
        vec![Err(LlmError::RateLimited {
            provider: "a".into(),
            message: "slow down".into(),
            retry_after: Some(Duration::from_millis(400)),
        })]
    };
    let a = ScriptedProvider::new(vec![limited(), limited(), vec![text("late"), finished()]]);
    let proxy = proxy_with(a, Duration::from_millis(1_000));
    let start = Instant::now();
    let events = collect(&proxy, "").await;
    // Two waits of 400 ms end before the 1 s deadline.
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "retrying 1",
            "selected a/model-a fallback=false",
            "retrying 2",
            "selected a/model-a fallback=false",
            "text late",
            "finished EndTurn",
        ]
    );
    assert_eq!(start.elapsed(), Duration::from_millis(800));
    // With 700 ms, the second wait would end at 800 ms: the rate limit is final.
    let a = ScriptedProvider::new(vec![limited(), limited(), limited()]);
    let proxy = proxy_with(a.clone(), Duration::from_millis(700));
    let events = collect(&proxy, "").await;
    assert_eq!(
        shape(&events),
        [
            "selected a/model-a fallback=false",
            "retrying 1",
            "selected a/model-a fallback=false",
            "error RateLimited",
        ]
    );
    assert_eq!(a.calls().len(), 2);
}

fn proxy_with(a: Arc<ScriptedProvider>, total: Duration) -> Arc<Proxy> {
    let mut proxy = proxy(vec![("a", settings(5, &[]), a)]);
    if let Some(p) = Arc::get_mut(&mut proxy) {
        p.config.total_timeout = total;
    }
    proxy
}

#[tokio::test]
async fn dropping_the_receiver_drops_the_provider_stream() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let hanging = Arc::new(HangingProvider {
        dropped: Mutex::new(Some(dropped_tx)),
    });
    let proxy = proxy(vec![("a", settings(0, &[]), hanging)]);
    let mut rx = proxy.complete(CompleteRequest::default());
    assert!(matches!(
        rx.recv().await.unwrap().event,
        Some(Event::ModelSelected(_))
    ));
    assert!(matches!(
        rx.recv().await.unwrap().event,
        Some(Event::TextDelta(_))
    ));
    drop(rx);
    dropped_rx.await.expect("the provider stream was dropped");
}
