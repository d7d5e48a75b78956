//! The OpenAI Responses API over the wire: the exact named SSE events, and
//! the request it must receive.

use openheim_config::{ProviderKind, WireApi};
use openheim_proto::common::v1::StopReason;
use openheim_proto::llm_proxy::v1::completion_event::Event;
use serde_json::{Value, json};

use crate::support::*;

fn created() -> String {
    responses_event(
        json!({"type": "response.created", "sequence_number": 0, "response": {
        "id": "resp_67ccd2bed1ec8190b14f964abc054267", "object": "response", "created_at": 1741476542,
        "status": "in_progress", "error": null, "incomplete_details": null, "model": "gpt-test",
        "output": [], "store": false, "usage": null}}),
    )
}

fn message_added(index: u32) -> String {
    responses_event(
        json!({"type": "response.output_item.added", "output_index": index,
        "item": {"id": "msg_1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}}),
    )
}

fn text_delta(delta: &str) -> String {
    responses_event(
        json!({"type": "response.output_text.delta", "item_id": "msg_1",
        "output_index": 0, "content_index": 0, "delta": delta, "logprobs": []}),
    )
}

fn call_added(index: u32, item: &str, call_id: &str, name: &str) -> String {
    responses_event(
        json!({"type": "response.output_item.added", "output_index": index,
        "item": {"id": item, "type": "function_call", "status": "in_progress",
                 "arguments": "", "call_id": call_id, "name": name}}),
    )
}

fn args_delta(index: u32, item: &str, delta: &str) -> String {
    responses_event(json!({"type": "response.function_call_arguments.delta",
        "item_id": item, "output_index": index, "delta": delta}))
}

fn completed(status: &str, incomplete: Value, input: u64, cached: u64, output: u64) -> String {
    let kind = if status == "completed" {
        "response.completed"
    } else {
        "response.incomplete"
    };
    responses_event(json!({"type": kind, "response": {
        "id": "resp_1", "object": "response", "status": status, "error": null,
        "incomplete_details": incomplete, "model": "gpt-test", "output": [],
        "usage": {"input_tokens": input, "input_tokens_details": {"cached_tokens": cached},
                  "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": input + output}}}))
}

fn frames(frames: Vec<String>) -> Reply {
    Reply::Frames {
        frames,
        end: End::Clean,
    }
}

async fn run(fake: &FakeProvider) -> Vec<Event> {
    let mut openai = provider_of(ProviderKind::Openai, fake);
    openai.wire_api = WireApi::Responses;
    complete(config(vec![("openai", openai)]), prompt("hi")).await
}

fn last_stop(events: &[Event]) -> StopReason {
    match events.last() {
        Some(Event::Finished(finished)) => finished.stop_reason(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn text_and_reasoning_stream_with_cached_usage() {
    let fake = FakeProvider::start(vec![frames(vec![
        created(),
        responses_event(
            json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"id": "rs_1", "type": "reasoning", "summary": []}}),
        ),
        responses_event(
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
            "output_index": 0, "summary_index": 0, "delta": "Weighing it"}),
        ),
        message_added(1),
        responses_event(
            json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 1,
            "content_index": 0, "part": {"type": "output_text", "annotations": [], "text": ""}}),
        ),
        text_delta("Hel"),
        text_delta("lo, wörld é"),
        responses_event(
            json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1,
            "content_index": 0, "text": "Hello, wörld é"}),
        ),
        completed("completed", Value::Null, 1200, 1024, 7),
    ])])
    .await;
    let events = run(&fake).await;
    assert_eq!(
        shape(&events),
        [
            "selected openai/gpt-test fallback=false",
            "thinking Weighing it",
            "text Hel",
            "text lo, wörld é",
            "usage in=1200 out=7 cache_read=1024",
            "finished EndTurn",
        ]
    );
    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/responses");
    assert_eq!(
        request.authorization.as_deref(),
        Some(&*format!("Bearer {TEST_KEY}"))
    );
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["store"], false);
    assert_eq!(
        request.body["input"],
        json!([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}])
    );
}

#[tokio::test]
async fn two_function_calls_with_interleaved_argument_fragments() {
    let fake = FakeProvider::start(vec![frames(vec![
        created(),
        call_added(0, "fc_a", "call_read", "read_file"),
        args_delta(0, "fc_a", "{\"pa"),
        call_added(1, "fc_b", "call_list", "list_dir"),
        args_delta(1, "fc_b", "{\"path\""),
        args_delta(0, "fc_a", "th\": \"src/main.rs\"}"),
        args_delta(1, "fc_b", ": \".\"}"),
        responses_event(
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_a",
            "output_index": 0, "arguments": "{\"path\": \"src/main.rs\"}"}),
        ),
        completed("completed", Value::Null, 50, 0, 30),
    ])])
    .await;
    let events = run(&fake).await;
    assert_eq!(
        tool_calls(&events),
        [
            (
                "call_read".into(),
                "read_file".into(),
                json!({"path": "src/main.rs"})
            ),
            ("call_list".into(), "list_dir".into(), json!({"path": "."})),
        ]
    );
    assert_eq!(last_stop(&events), StopReason::ToolUse);
}

#[tokio::test]
async fn incomplete_answers_and_refusals_are_stop_reasons() {
    let fake = FakeProvider::start(vec![
        frames(vec![
            created(),
            text_delta("cut"),
            completed(
                "incomplete",
                json!({"reason": "max_output_tokens"}),
                5,
                0,
                1,
            ),
        ]),
        frames(vec![
            created(),
            responses_event(json!({"type": "response.refusal.delta", "item_id": "msg_1",
                "output_index": 0, "content_index": 0, "delta": "I can't help with that."})),
            completed("completed", Value::Null, 5, 0, 6),
        ]),
    ])
    .await;
    assert_eq!(last_stop(&run(&fake).await), StopReason::MaxTokens);
    let events = run(&fake).await;
    assert!(shape(&events).contains(&"text I can't help with that.".to_owned()));
    assert_eq!(last_stop(&events), StopReason::Refusal);
}

#[tokio::test]
async fn failed_responses_and_cut_streams_are_retried() {
    let fake = FakeProvider::start(vec![
        frames(vec![
            created(),
            text_delta("par"),
            responses_event(json!({"type": "response.failed", "response": {"id": "resp_1",
                "status": "failed", "error": {"code": "server_error", "message": "The server had an error."}}})),
        ]),
        // No terminal event before the body ends: cut.
        frames(vec![created(), text_delta("again")]),
        frames(vec![created(), text_delta("whole"), completed("completed", Value::Null, 5, 0, 1)]),
    ])
    .await;
    let events = run(&fake).await;
    assert_eq!(
        shape(&events),
        [
            "selected openai/gpt-test fallback=false",
            "text par",
            "interrupted Provider will_retry=true",
            "selected openai/gpt-test fallback=false",
            "text again",
            "interrupted Network will_retry=true",
            "selected openai/gpt-test fallback=false",
            "text whole",
            "usage in=5 out=1 cache_read=0",
            "finished EndTurn",
        ]
    );
}
