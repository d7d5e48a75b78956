//! Gemini over the wire: `streamGenerateContent?alt=sse` chunks exactly as
//! Google sends them (CRLF line ends, no terminal event), and the request it
//! must receive, with the key in a header and never in the URL.

use openheim_config::ProviderKind;
use openheim_proto::common::v1::StopReason;
use openheim_proto::llm_proxy::v1::ErrorKind;
use openheim_proto::llm_proxy::v1::completion_event::Event;
use serde_json::{Value, json};

use crate::support::*;

fn chunk(parts: Value, finish: Option<&str>, usage: Value) -> String {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(reason) = finish {
        candidate["finishReason"] = json!(reason);
    }
    gemini_chunk(json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-test",
        "responseId": "tTCwacuEBMvnitYP06qsgQY"
    }))
}

fn frames(frames: Vec<String>, end: End) -> Reply {
    Reply::Frames { frames, end }
}

async fn run(fake: &FakeProvider) -> Vec<Event> {
    let gemini = provider_of(ProviderKind::Gemini, fake);
    complete(config(vec![("gemini", gemini)]), prompt("hi")).await
}

fn last_stop(events: &[Event]) -> StopReason {
    match events.last() {
        Some(Event::Finished(finished)) => finished.stop_reason(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn text_streams_with_thoughts_and_cached_usage() {
    let fake = FakeProvider::start(vec![frames(
        vec![
            chunk(
                json!([{"text": "Considering", "thought": true}]),
                None,
                json!({"promptTokenCount": 1200, "totalTokenCount": 1200}),
            ),
            chunk(
                json!([{"text": "Hel"}]),
                None,
                json!({"promptTokenCount": 1200, "candidatesTokenCount": 1}),
            ),
            chunk(
                json!([{"text": "lo, wörld é"}]),
                None,
                json!({"promptTokenCount": 1200, "candidatesTokenCount": 4}),
            ),
            chunk(
                json!([{"text": "", "thoughtSignature": "AY89a18iOcFus5wr5bW5xN6zZ4aUiCyhgmg6HE2YjtYDV/dwZ5oZlZHeTmiUKv34qq0="}]),
                Some("STOP"),
                json!({"promptTokenCount": 1200, "candidatesTokenCount": 9, "cachedContentTokenCount": 1024,
                       "thoughtsTokenCount": 20, "totalTokenCount": 1229,
                       "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1200}]}),
            ),
        ],
        End::Clean,
    )])
    .await;
    let events = run(&fake).await;
    assert_eq!(
        shape(&events),
        [
            "selected gemini/gpt-test fallback=false",
            "thinking Considering",
            "text Hel",
            "text lo, wörld é",
            "thinking ",
            "usage in=1200 out=29 cache_read=1024",
            "finished EndTurn",
        ]
    );
    let Event::ThinkingDelta(signature) = &events[4] else {
        unreachable!()
    };
    assert_eq!(
        signature.signature,
        "t:AY89a18iOcFus5wr5bW5xN6zZ4aUiCyhgmg6HE2YjtYDV/dwZ5oZlZHeTmiUKv34qq0=;"
    );
    let request = &fake.requests()[0];
    assert_eq!(
        request.path,
        "/v1beta/models/gpt-test:streamGenerateContent"
    );
    assert_eq!(request.query.as_deref(), Some("alt=sse"));
    assert_eq!(request.header("x-goog-api-key"), Some(TEST_KEY));
    assert_eq!(request.authorization, None);
    assert_eq!(
        request.body["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]}])
    );
}

#[tokio::test]
async fn function_calls_arrive_whole_with_synthesised_ids() {
    let fake = FakeProvider::start(vec![frames(
        vec![
            chunk(
                json!([{"text": "Let me look."}]),
                None,
                json!({"promptTokenCount": 50}),
            ),
            chunk(
                json!([
                    {"functionCall": {"name": "read_file", "args": {"path": "src/main.rs"}},
                     "thoughtSignature": "Cs0BAdHtim9"},
                    {"functionCall": {"name": "list_dir", "args": {"path": "."}}}
                ]),
                Some("STOP"),
                json!({"promptTokenCount": 50, "candidatesTokenCount": 30}),
            ),
        ],
        End::Clean,
    )])
    .await;
    let events = run(&fake).await;
    let calls = tool_calls(&events);
    let without_ids: Vec<_> = calls
        .iter()
        .map(|(_, n, a)| (n.clone(), a.clone()))
        .collect();
    assert_eq!(
        without_ids,
        [
            ("read_file".to_owned(), json!({"path": "src/main.rs"})),
            ("list_dir".to_owned(), json!({"path": "."})),
        ]
    );
    // Made-up ids: `call_<index>_<random>`, so they never repeat across
    // the answers of a session.
    let (first, second) = (&calls[0].0, &calls[1].0);
    assert!(
        first.starts_with("call_0_") && second.starts_with("call_1_"),
        "{calls:?}"
    );
    assert_eq!(first.len(), "call_0_".len() + 16, "{first}");
    assert_eq!(first["call_0".len()..], second["call_1".len()..]);
    assert_eq!(last_stop(&events), StopReason::ToolUse);
}

#[tokio::test]
async fn safety_finish_reasons_are_refusals() {
    for reason in ["SAFETY", "PROHIBITED_CONTENT", "RECITATION"] {
        let fake = FakeProvider::start(vec![frames(
            vec![chunk(json!([{"text": "I"}]), Some(reason), json!({}))],
            End::Clean,
        )])
        .await;
        assert_eq!(
            last_stop(&run(&fake).await),
            StopReason::Refusal,
            "{reason}"
        );
    }
    let fake = FakeProvider::start(vec![frames(
        vec![chunk(
            json!([{"text": "cut"}]),
            Some("MAX_TOKENS"),
            json!({}),
        )],
        End::Clean,
    )])
    .await;
    assert_eq!(last_stop(&run(&fake).await), StopReason::MaxTokens);
}

#[tokio::test]
async fn an_error_mid_stream_and_a_body_without_finish_are_retried() {
    let fake = FakeProvider::start(vec![
        frames(
            vec![
                chunk(json!([{"text": "par"}]), None, json!({})),
                gemini_chunk(json!({"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}})),
            ],
            End::Clean,
        ),
        // Text, then the body ends without a finish reason: cut.
        frames(vec![chunk(json!([{"text": "again"}]), None, json!({}))], End::Clean),
        frames(
            vec![chunk(json!([{"text": "whole"}]), Some("STOP"), json!({"promptTokenCount": 3, "candidatesTokenCount": 1}))],
            End::Clean,
        ),
    ])
    .await;
    let events = run(&fake).await;
    assert_eq!(
        shape(&events),
        [
            "selected gemini/gpt-test fallback=false",
            "text par",
            "interrupted Provider will_retry=true",
            "selected gemini/gpt-test fallback=false",
            "text again",
            "interrupted Network will_retry=true",
            "selected gemini/gpt-test fallback=false",
            "text whole",
            "usage in=3 out=1 cache_read=0",
            "finished EndTurn",
        ]
    );
}

#[tokio::test]
async fn a_bad_key_is_an_auth_error_and_rate_limits_use_retry_info() {
    let fake = FakeProvider::start(vec![
        Reply::Status {
            status: 400,
            headers: vec![],
            body: json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}),
        },
        Reply::Status {
            status: 429,
            headers: vec![],
            body: json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"}]}}),
        },
        frames(vec![chunk(json!([{"text": "ok"}]), Some("STOP"), json!({}))], End::Clean),
    ])
    .await;
    let events = run(&fake).await;
    let Some(Event::Error(error)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.kind(), ErrorKind::Auth);
    assert_eq!(
        error.message,
        "provider gemini rejected the API key (401): check GEMINI_API_KEY"
    );
    let events = run(&fake).await;
    assert_eq!(
        shape(&events)[1],
        "retrying RateLimited attempt=1 delay_ms=0"
    );
    assert_eq!(shape(&events).last().unwrap(), "finished EndTurn");
}
