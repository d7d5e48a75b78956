//! Anthropic Messages over the wire: the exact SSE event sequence the API
//! sends, and the request it must receive.

use openheim_config::ProviderKind;
use openheim_proto::common::v1::StopReason;
use openheim_proto::llm_proxy::v1::completion_event::Event;
use openheim_proto::llm_proxy::v1::{ErrorKind, ThinkingDelta};
use serde_json::{Value, json};

use crate::support::*;

fn event(data: Value) -> String {
    let name = data["type"].as_str().unwrap().to_owned();
    named_event(&name, &data)
}

fn message_start(input: u64, cache_write: u64, cache_read: u64) -> String {
    event(json!({"type": "message_start", "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "content": [], "model": "claude-test", "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input, "cache_creation_input_tokens": cache_write,
                  "cache_read_input_tokens": cache_read, "output_tokens": 1}}}))
}

fn text_start(index: u32) -> String {
    event(
        json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
    )
}

fn text_delta(index: u32, text: &str) -> String {
    event(
        json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
    )
}

fn tool_start(index: u32, id: &str, name: &str) -> String {
    event(json!({"type": "content_block_start", "index": index,
                 "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}))
}

fn json_delta(index: u32, partial: &str) -> String {
    event(json!({"type": "content_block_delta", "index": index,
                 "delta": {"type": "input_json_delta", "partial_json": partial}}))
}

fn block_stop(index: u32) -> String {
    event(json!({"type": "content_block_stop", "index": index}))
}

fn message_delta(stop_reason: &str, output: u64) -> String {
    event(json!({"type": "message_delta",
                 "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                 "usage": {"output_tokens": output}}))
}

fn message_stop() -> String {
    event(json!({"type": "message_stop"}))
}

fn ping() -> String {
    event(json!({"type": "ping"}))
}

fn frames(frames: Vec<String>) -> Reply {
    Reply::Frames {
        frames,
        end: End::Clean,
    }
}

fn text_answer(text: &str) -> Reply {
    frames(vec![
        message_start(10, 0, 0),
        text_start(0),
        text_delta(0, text),
        block_stop(0),
        message_delta("end_turn", 3),
        message_stop(),
    ])
}

async fn run(fake: &FakeProvider) -> Vec<Event> {
    let claude = provider_of(ProviderKind::Anthropic, fake);
    complete(config(vec![("claude", claude)]), prompt("hi")).await
}

#[tokio::test]
async fn text_streams_with_cache_usage_and_the_right_headers() {
    let fake = FakeProvider::start(vec![frames(vec![
        message_start(25, 100, 2000),
        text_start(0),
        ping(),
        text_delta(0, "Hel"),
        text_delta(0, "lo, wörld é"),
        block_stop(0),
        message_delta("end_turn", 15),
        message_stop(),
    ])])
    .await;
    let events = run(&fake).await;
    assert_eq!(
        shape(&events),
        [
            "selected claude/gpt-test fallback=false",
            "text Hel",
            "text lo, wörld é",
            "usage in=2125 out=15 cache_read=2000",
            "finished EndTurn",
        ]
    );
    let Event::Usage(usage) = &events[3] else {
        unreachable!()
    };
    assert_eq!(usage.cache_write_tokens, 100);
    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(TEST_KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.authorization, None);
    assert_eq!(request.body["max_tokens"], 8192);
    assert_eq!(request.body["stream"], true);
    assert_eq!(
        request.body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
        ]}])
    );
}

#[tokio::test]
async fn text_then_two_tool_calls_in_fragments() {
    let fake = FakeProvider::start(vec![frames(vec![
        message_start(50, 0, 0),
        text_start(0),
        text_delta(0, "Let me look."),
        block_stop(0),
        tool_start(1, "toolu_01A", "read_file"),
        json_delta(1, ""),
        json_delta(1, "{\"pa"),
        json_delta(1, "th\": \"src/main.rs\"}"),
        block_stop(1),
        tool_start(2, "toolu_01B", "list_dir"),
        json_delta(2, "{\"path\""),
        json_delta(2, ": \".\"}"),
        block_stop(2),
        message_delta("tool_use", 30),
        message_stop(),
    ])])
    .await;
    let events = run(&fake).await;
    assert_eq!(
        tool_calls(&events),
        [
            (
                "toolu_01A".into(),
                "read_file".into(),
                json!({"path": "src/main.rs"})
            ),
            ("toolu_01B".into(), "list_dir".into(), json!({"path": "."})),
        ]
    );
    let Some(Event::Finished(finished)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(finished.stop_reason(), StopReason::ToolUse);
}

#[tokio::test]
async fn thinking_streams_with_its_signature() {
    let fake = FakeProvider::start(vec![frames(vec![
        message_start(10, 0, 0),
        event(json!({"type": "content_block_start", "index": 0,
                     "content_block": {"type": "thinking", "thinking": "", "signature": ""}})),
        event(json!({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "thinking_delta", "thinking": "The user wants"}})),
        event(json!({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}})),
        block_stop(0),
        text_start(1),
        text_delta(1, "Done."),
        block_stop(1),
        message_delta("end_turn", 9),
        message_stop(),
    ])])
    .await;
    let events = run(&fake).await;
    let thinking: Vec<&ThinkingDelta> = events
        .iter()
        .filter_map(|e| match e {
            Event::ThinkingDelta(t) => Some(t),
            _ => None,
        })
        .collect();
    // The block's start is marked, so several signed blocks stay apart.
    assert_eq!(thinking.len(), 3);
    assert!(thinking[0].new_block && !thinking[0].redacted);
    assert_eq!(thinking[1].text, "The user wants");
    assert_eq!(thinking[2].signature, "EqQBCgIYAhIM1gbcDa9GJwZA2b3h");
    assert!(shape(&events).contains(&"text Done.".to_owned()));
}

#[tokio::test]
async fn refusals_and_max_tokens_are_stop_reasons() {
    for (reason, stop) in [
        ("refusal", StopReason::Refusal),
        ("max_tokens", StopReason::MaxTokens),
    ] {
        let fake = FakeProvider::start(vec![frames(vec![
            message_start(10, 0, 0),
            text_start(0),
            text_delta(0, "I"),
            block_stop(0),
            message_delta(reason, 1),
            message_stop(),
        ])])
        .await;
        let events = run(&fake).await;
        let Some(Event::Finished(finished)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(finished.stop_reason(), stop, "{reason}");
    }
}

#[tokio::test]
async fn an_error_event_mid_stream_interrupts_and_is_retried() {
    let fake = FakeProvider::start(vec![
        frames(vec![
            message_start(10, 0, 0),
            text_start(0),
            text_delta(0, "par"),
            event(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
        ]),
        text_answer("whole"),
    ])
    .await;
    let events = run(&fake).await;
    assert_eq!(
        shape(&events),
        [
            "selected claude/gpt-test fallback=false",
            "text par",
            "interrupted Overloaded will_retry=true",
            "selected claude/gpt-test fallback=false",
            "text whole",
            "usage in=10 out=3 cache_read=0",
            "finished EndTurn",
        ]
    );
}

#[tokio::test]
async fn status_529_is_an_overload_and_400_quotes_the_provider() {
    let fake = FakeProvider::start(vec![
        Reply::Status {
            status: 529,
            headers: vec![],
            body: json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        },
        text_answer("ok"),
        Reply::Status {
            status: 400,
            headers: vec![],
            body: json!({"type": "error", "error": {"type": "invalid_request_error",
                         "message": "messages: roles must alternate between \"user\" and \"assistant\""}}),
        },
        Reply::Status {
            status: 400,
            headers: vec![],
            body: json!({"type": "error", "error": {"type": "invalid_request_error",
                         "message": "prompt is too long: 208310 tokens > 200000 maximum"}}),
        },
    ])
    .await;
    let events = run(&fake).await;
    assert!(
        shape(&events)[1].starts_with("retrying Overloaded"),
        "{events:?}"
    );
    assert_eq!(shape(&events).last().unwrap(), "finished EndTurn");
    let events = run(&fake).await;
    let Some(Event::Error(error)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.kind(), ErrorKind::BadRequest);
    assert!(
        error.message.contains("roles must alternate"),
        "{}",
        error.message
    );
    let events = run(&fake).await;
    let Some(Event::Error(error)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.kind(), ErrorKind::ContextTooLong);
}
