//! The retry acceptance cases over real HTTP with paused time: every wait is
//! observed exactly, without sleeping.

use std::time::Duration;

use openheim_config::ProviderKind;
use openheim_proto::llm_proxy::v1::completion_event::Event;
use serde_json::json;
use tokio::time::Instant;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn rate_limit_with_retry_after_two_waits_two_seconds() {
    let fake = FakeProvider::start(vec![
        Reply::Status {
            status: 429,
            headers: vec![("retry-after", "2")],
            body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        },
        text_reply("after the wait"),
    ])
    .await;
    let mut openai = provider_of(ProviderKind::Openai, &fake);
    openai.retry_max_delay_ms = 10_000;
    let start = Instant::now();
    let events = complete(config(vec![("openai", openai)]), prompt("hi")).await;
    let elapsed = start.elapsed();
    assert_eq!(
        shape(&events),
        [
            "selected openai/gpt-test fallback=false",
            "retrying RateLimited attempt=1 delay_ms=2000",
            "selected openai/gpt-test fallback=false",
            "text after the wait",
            "usage in=10 out=2 cache_read=0",
            "finished EndTurn",
        ]
    );
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2100),
        "{elapsed:?}"
    );
    assert!(matches!(events.last(), Some(Event::Finished(_))));
}

/// The delays announced by `Retrying` events, in order.
fn announced_delays(events: &[Event]) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying(r) => Some(Duration::from_millis(r.delay_ms)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn three_overloaded_answers_then_success() {
    let unavailable = || Reply::Status {
        status: 503,
        headers: vec![],
        body: json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
    };
    let fake = FakeProvider::start(vec![
        unavailable(),
        unavailable(),
        unavailable(),
        Reply::Frames {
            frames: vec![gemini_chunk(json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": "finally"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1}
            }))],
            end: End::Clean,
        },
    ])
    .await;
    let mut gemini = provider_of(ProviderKind::Gemini, &fake);
    gemini.max_retries = 3;
    gemini.retry_base_delay_ms = 500;
    gemini.retry_max_delay_ms = 30_000;
    let start = Instant::now();
    let events = complete(config(vec![("gemini", gemini)]), prompt("hi")).await;
    let elapsed = start.elapsed();
    let shape = shape(&events);
    assert_eq!(shape.len(), 10, "{shape:?}");
    for i in [1, 3, 5] {
        assert!(
            shape[i].starts_with("retrying Overloaded attempt="),
            "{shape:?}"
        );
    }
    assert_eq!(
        shape[7..],
        [
            "text finally",
            "usage in=4 out=1 cache_read=0",
            "finished EndTurn"
        ]
    );
    // Exponential with equal jitter: 500 ms, 1 s, 2 s, each halved at most.
    let delays = announced_delays(&events);
    for (delay, full) in delays.iter().zip([500, 1000, 2000]) {
        let full = Duration::from_millis(full);
        assert!(*delay >= full / 2 && *delay <= full, "{delays:?}");
    }
    let waited: Duration = delays.iter().sum();
    assert!(
        elapsed >= waited && elapsed < waited + Duration::from_millis(50),
        "{elapsed:?} vs {waited:?}"
    );
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_key_is_not_retried_and_names_the_env_var() {
    let fake = FakeProvider::start(vec![Reply::Status {
        status: 401,
        headers: vec![],
        body: json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
    }])
    .await;
    let start = Instant::now();
    let events = complete(
        config(vec![(
            "claude",
            provider_of(ProviderKind::Anthropic, &fake),
        )]),
        prompt("hi"),
    )
    .await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        shape(&events),
        ["selected claude/gpt-test fallback=false", "error Auth"]
    );
    let Some(Event::Error(error)) = events.last() else {
        unreachable!()
    };
    assert_eq!(
        error.message,
        "provider claude rejected the API key (401): check ANTHROPIC_API_KEY"
    );
    assert!(!error.retryable);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_before_its_terminal_event_is_retried_transparently() {
    let start_event = named_event(
        "message_start",
        &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-test", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
    );
    let fake = FakeProvider::start(vec![
        // Cut after the start: nothing reached the caller yet.
        Reply::Frames {
            frames: vec![start_event.clone()],
            end: End::Cut,
        },
        // Ends cleanly, but without `message_stop`: also cut.
        Reply::Frames {
            frames: vec![start_event.clone(), named_event("ping", &json!({"type": "ping"}))],
            end: End::Clean,
        },
        Reply::Frames {
            frames: vec![
                start_event,
                named_event("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                named_event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "whole"}})),
                named_event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})),
                named_event("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 2}})),
                named_event("message_stop", &json!({"type": "message_stop"})),
            ],
            end: End::Clean,
        },
    ])
    .await;
    let mut claude = provider_of(ProviderKind::Anthropic, &fake);
    claude.retry_base_delay_ms = 500;
    claude.retry_max_delay_ms = 30_000;
    let start = Instant::now();
    let events = complete(config(vec![("claude", claude)]), prompt("hi")).await;
    assert_eq!(
        shape(&events),
        [
            "selected claude/gpt-test fallback=false",
            &shape(&events)[1],
            "selected claude/gpt-test fallback=false",
            &shape(&events)[3],
            "selected claude/gpt-test fallback=false",
            "text whole",
            "usage in=5 out=2 cache_read=0",
            "finished EndTurn",
        ]
    );
    assert!(shape(&events)[1].starts_with("retrying Network attempt=1"));
    assert!(shape(&events)[3].starts_with("retrying Network attempt=2"));
    let waited: Duration = announced_delays(&events).iter().sum();
    assert!(start.elapsed() >= waited, "{:?}", start.elapsed());
}
