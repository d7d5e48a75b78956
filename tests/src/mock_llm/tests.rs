//! Proves the mock over real HTTP with an independent client (reqwest): the exact wire format,
//! the faults, and that invalid requests are rejected and recorded.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::{Value, json};

use super::*;

fn user_request() -> Value {
    json!({
        "model": "gpt-test",
        "stream": true,
        "stream_options": { "include_usage": true },
        "messages": [
            { "role": "system", "content": "You are terse." },
            { "role": "user", "content": "hi" },
        ],
    })
}

async fn post(mock: &MockLlm, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(body)
        .send()
        .await
        .expect("request reaches the mock")
}

/// The JSON payloads of an SSE body, `[DONE]` kept as a string.
fn events(body: &str) -> Vec<Value> {
    assert!(
        body.ends_with("\n\n"),
        "body must end with a blank line: {body:?}"
    );
    body.split_terminator("\n\n")
        .map(|frame| {
            let data = frame.strip_prefix("data: ").expect("every frame is data");
            serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn text_reply_streams_exact_frames() {
    let mock = MockLlm::start(vec![Reply::text("Hello, world!").with_usage(12, 3, 4)]).await;
    let response = post(&mock, &user_request()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();

    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-mock-1\",\"object\":\"chat.completion.chunk\",\
             \"created\":1700000000,\"model\":\"gpt-test\",\"choices\":[{{\"index\":0,\
             \"delta\":{delta},\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
        )
    };
    let expected = [
        chunk(r#"{"role":"assistant","content":""}"#, "null"),
        chunk(r#"{"content":"Hello, w"}"#, "null"),
        chunk(r#"{"content":"orld!"}"#, "null"),
        chunk("{}", r#""stop""#),
        "data: {\"id\":\"chatcmpl-mock-1\",\"object\":\"chat.completion.chunk\",\
         \"created\":1700000000,\"model\":\"gpt-test\",\"choices\":[],\"usage\":\
         {\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,\
         \"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n"
            .to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    assert_eq!(body, expected);
    assert_eq!(mock.system_prompt(0).as_deref(), Some("You are terse."));
    mock.assert_no_violations();
}

#[tokio::test(flavor = "current_thread")]
async fn usage_chunk_only_when_requested() {
    let mock = MockLlm::start(vec![Reply::text("ok")]).await;
    let mut request = user_request();
    request.as_object_mut().unwrap().remove("stream_options");
    let body = post(&mock, &request).await.text().await.unwrap();
    assert!(!body.contains("usage"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_arguments_are_fragmented_and_reassemble() {
    let write = json!({ "path": "notes/hello.txt", "content": "héllo wörld\n" });
    let read = json!({ "path": "notes/hello.txt" });
    let mock = MockLlm::start(vec![Reply::tool_calls(vec![
        ToolCallSpec::new("write_file", write.clone()),
        ToolCallSpec::new("read_file", read.clone()),
    ])])
    .await;
    let body = post(&mock, &user_request()).await.text().await.unwrap();
    let events = events(&body);
    assert_eq!(events.last(), Some(&json!("[DONE]")));
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");

    // Reassemble the way a client must: by tool-call index.
    let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    let mut fragments = 0;
    let mut finish = None;
    for event in &events {
        let Some(choice) = event.pointer("/choices/0") else {
            continue;
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
        for delta in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let entry = calls.entry(delta["index"].as_u64().unwrap()).or_default();
            if let Some(id) = delta["id"].as_str() {
                assert_eq!(delta["type"], "function");
                entry.0 = id.to_owned();
                entry.1 = delta["function"]["name"].as_str().unwrap().to_owned();
            } else {
                fragments += 1;
            }
            entry
                .2
                .push_str(delta["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert!(
        fragments > 6,
        "arguments must arrive in many fragments, got {fragments}"
    );
    let calls: Vec<_> = calls.into_values().collect();
    assert_eq!(calls[0].0, "call_1");
    assert_eq!(calls[0].1, "write_file");
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), write);
    assert_eq!(calls[1].0, "call_2");
    assert_eq!(calls[1].1, "read_file");
    assert_eq!(serde_json::from_str::<Value>(&calls[1].2).unwrap(), read);
}

#[tokio::test(flavor = "current_thread")]
async fn tool_message_without_a_call_is_rejected() {
    let mock = MockLlm::start(vec![Reply::text("unused")]).await;
    let mut request = user_request();
    request["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": "tool", "tool_call_id": "call_9", "content": "orphan" }));
    let response = post(&mock, &request).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("call_9")
    );
    let violations = mock.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].contains("answers no tool call"),
        "{violations:?}"
    );
    // A rejected request must not eat the reply meant for the corrected one.
    assert_eq!(mock.remaining_replies(), 1);
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn unanswered_tool_call_is_rejected() {
    let mock = MockLlm::start(vec![Reply::text("unused")]).await;
    let mut request = user_request();
    request["messages"].as_array_mut().unwrap().push(json!({
        "role": "assistant",
        "content": null,
        "tool_calls": [{ "id": "call_1", "type": "function",
                         "function": { "name": "read_file", "arguments": "{\"path\":\"a\"}" } }],
    }));
    let response = post(&mock, &request).await;
    assert_eq!(response.status(), 400);
    let violations = mock.violations();
    assert!(
        violations.iter().any(|v| v.contains("unanswered")),
        "{violations:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn http_error_carries_status_and_retry_after() {
    let error = json!({ "error": { "message": "slow down", "type": "rate_limit_exceeded" } });
    let mock = MockLlm::start(vec![Reply::http_error(429, error.clone()).retry_after("1")]).await;
    let response = post(&mock, &user_request()).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.json::<Value>().await.unwrap(), error);
    mock.assert_no_violations();
}

#[tokio::test(flavor = "current_thread")]
async fn cut_after_ends_without_done() {
    let mock = MockLlm::start(vec![
        Reply::text("a long answer that gets cut").cut_after(2),
    ])
    .await;
    let response = post(&mock, &user_request()).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => failed = true,
        }
    }
    let body = String::from_utf8(received).unwrap();
    assert!(failed, "the connection must die, not end cleanly");
    assert_eq!(events(&body).len(), 2, "{body}");
    assert!(
        !body.contains("[DONE]") && !body.contains("finish_reason\":\""),
        "{body}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn exhausted_script_answers_500_and_records_it() {
    let mock = MockLlm::start(vec![]).await;
    let response = post(&mock, &user_request()).await;
    assert_eq!(response.status(), 500);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ran out")
    );
    assert_eq!(mock.violations().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn api_key_is_enforced() {
    let mock = MockLlm::builder()
        .expect_api_key("sk-test")
        .start(vec![Reply::text("ok")])
        .await;
    let url = format!("{}/chat/completions", mock.base_url());
    let client = reqwest::Client::new();
    let wrong = client
        .post(&url)
        .bearer_auth("sk-nope")
        .json(&user_request());
    let response = wrong.send().await.unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");
    let right = client
        .post(&url)
        .bearer_auth("sk-test")
        .json(&user_request());
    assert_eq!(right.send().await.unwrap().status(), 200);
    assert_eq!(mock.violations().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn dynamic_reply_sees_the_request() {
    let mock = MockLlm::start(vec![Reply::dynamic(|request| {
        Reply::text(format!(
            "tool said: {}",
            last_tool_result(request).unwrap_or_default()
        ))
    })])
    .await;
    let mut request = user_request();
    request["tools"] = json!([{ "type": "function", "function": {
        "name": "read_file", "description": "Reads a file.",
        "parameters": { "type": "object", "properties": {} } } }]);
    request["messages"].as_array_mut().unwrap().extend([
        json!({ "role": "assistant", "content": null, "tool_calls": [{ "id": "c1",
            "type": "function", "function": { "name": "read_file", "arguments": "{}" } }] }),
        json!({ "role": "tool", "tool_call_id": "c1", "content": "42" }),
    ]);
    let body = post(&mock, &request).await.text().await.unwrap();
    let text: String = events(&body)
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(text, "tool said: 42");
    assert_eq!(mock.tool_names(0), ["read_file"]);
    mock.assert_no_violations();
}

#[tokio::test(flavor = "current_thread")]
async fn models_lists_in_openai_shape() {
    let mock = MockLlm::start(vec![]).await;
    let models: Value = reqwest::get(format!("{}/models", mock.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["object"], "model");
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_the_mock_stops_the_server() {
    let mock = MockLlm::start(vec![]).await;
    let url = format!("{}/models", mock.base_url());
    drop(mock);
    // Shutdown runs on the server task; poll until new connections are refused.
    for _ in 0..100 {
        if reqwest::get(&url).await.is_err() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the mock still accepts connections after being dropped");
}

#[tokio::test(flavor = "current_thread")]
async fn text_before_tool_calls_and_custom_finish_reason() {
    let reply = Reply::tool_calls(vec![ToolCallSpec::raw("run", "{\"cmd\":").with_id("fixed")])
        .with_text("Let me run it.")
        .with_finish_reason("length");
    let mock = MockLlm::start(vec![reply]).await;
    let body = post(&mock, &user_request()).await.text().await.unwrap();
    let deltas: Vec<Value> = events(&body)
        .iter()
        .filter_map(|e| e.pointer("/choices/0").cloned())
        .collect();
    assert_eq!(
        deltas[0]["delta"],
        json!({ "role": "assistant", "content": "" })
    );
    let header = deltas
        .iter()
        .find(|d| d["delta"]["tool_calls"][0]["id"].is_string())
        .unwrap();
    assert_eq!(header["delta"]["tool_calls"][0]["id"], "fixed");
    assert!(
        header["delta"].get("role").is_none(),
        "role only comes once"
    );
    assert_eq!(deltas.last().unwrap()["finish_reason"], "length");
}

#[tokio::test(flavor = "current_thread")]
async fn delays_hold_back_the_head_and_space_the_chunks() {
    let mock = MockLlm::start(vec![
        Reply::text("abc").with_delay_ms(40).chunk_delay_ms(10),
    ])
    .await;
    let started = std::time::Instant::now();
    let response = post(&mock, &user_request()).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(40));
    let body = response.text().await.unwrap();
    // role, "abc", finish, usage, [DONE]: four gaps between five events.
    assert_eq!(events(&body).len(), 5);
    assert!(started.elapsed() >= std::time::Duration::from_millis(80));
}
