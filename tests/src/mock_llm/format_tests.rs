//! Proves the Anthropic, Gemini and Responses faces of the mock over real HTTP with an
//! independent client (reqwest): exact event sequences, format-aware accessors, keys where
//! each format puts them, and each format's request rules.

use serde_json::{Value, json};

use super::*;

async fn post(url: String, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request reaches the mock")
}

/// `(event name, data)` of each SSE frame; the name is empty when the frame has none.
fn frames(body: &str, separator: &str) -> Vec<(String, Value)> {
    assert!(body.ends_with(separator), "{body:?}");
    body.split_terminator(separator)
        .map(|frame| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            (name, data)
        })
        .collect()
}

fn anthropic_request() -> Value {
    json!({ "model": "claude-test", "max_tokens": 1024, "stream": true,
            "system": [{ "type": "text", "text": "You are terse." }],
            "messages": [{ "role": "user", "content": "hi" }] })
}

const VERSION: (&str, &str) = ("anthropic-version", ANTHROPIC_VERSION);

#[tokio::test(flavor = "current_thread")]
async fn anthropic_streams_thinking_text_and_tool_use_events() {
    let reply = Reply::tool_calls(vec![ToolCallSpec::new(
        "read_file",
        json!({ "path": "a.txt" }),
    )])
    .with_text("Reading.")
    .with_thinking("Let me see")
    .with_usage(100, 20, 60);
    let mock = MockLlm::start(vec![reply]).await;
    let url = format!("{}/messages", mock.base_url());
    let response = post(url, &[VERSION], &anthropic_request()).await;
    assert_eq!(response.status(), 200);
    let events = frames(&response.text().await.unwrap(), "\n\n");
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    for (name, data) in &events {
        assert_eq!(
            data["type"],
            name.as_str(),
            "the data repeats the event name"
        );
    }
    assert_eq!(
        events[0].1["message"]["usage"]["cache_read_input_tokens"],
        60
    );
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 40);
    let deltas = |kind: &str, field: &str| -> String {
        events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == kind)
            .map(|(_, d)| d["delta"][field].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(deltas("thinking_delta", "thinking"), "Let me see");
    assert!(deltas("signature_delta", "signature").starts_with("EqQB"));
    assert_eq!(deltas("text_delta", "text"), "Reading.");
    assert_eq!(
        deltas("input_json_delta", "partial_json"),
        r#"{"path":"a.txt"}"#
    );
    let tool = events
        .iter()
        .find(|(_, d)| d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(tool.1["index"], 2);
    assert_eq!(tool.1["content_block"]["name"], "read_file");
    let stop = &events[events.len() - 2].1;
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
    assert_eq!(stop["usage"]["output_tokens"], 20);
    assert_eq!(mock.system_prompt(0).as_deref(), Some("You are terse."));
    assert_eq!(mock.request(0).wire(), Some(Wire::Anthropic));
    mock.assert_no_violations();
}

#[tokio::test(flavor = "current_thread")]
async fn anthropic_rules_and_key_header_are_enforced() {
    let mock = MockLlm::builder()
        .expect_api_key("sk-ant")
        .start(vec![Reply::text("ok"), Reply::text("ok")])
        .await;
    let url = format!("{}/messages", mock.base_url());
    let response = post(
        url.clone(),
        &[VERSION, ("authorization", "Bearer sk-ant")],
        &anthropic_request(),
    )
    .await;
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");
    let mut bad = anthropic_request();
    bad["messages"] = json!([
        { "role": "user", "content": "hi" },
        { "role": "assistant", "content": [{ "type": "tool_use", "id": "t1", "name": "read_file", "input": {} }] },
        { "role": "user", "content": "no result" },
    ]);
    let response = post(url.clone(), &[VERSION, ("x-api-key", "sk-ant")], &bad).await;
    assert_eq!(response.status(), 400);
    assert!(
        mock.violations()
            .iter()
            .any(|v| v.contains("has no tool_result"))
    );
    let response = post(
        url,
        &[VERSION, ("x-api-key", "sk-ant")],
        &anthropic_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.remaining_replies(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn anthropic_stream_errors_replace_the_stop_events() {
    let mock = MockLlm::start(vec![Reply::text("partial").with_stream_error("Overloaded")]).await;
    let url = format!("{}/messages", mock.base_url());
    let body = post(url, &[VERSION], &anthropic_request())
        .await
        .text()
        .await
        .unwrap();
    let events = frames(&body, "\n\n");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert!(!body.contains("message_stop"));
}

fn gemini_request() -> Value {
    json!({ "systemInstruction": { "parts": [{ "text": "You are terse." }] },
            "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }],
            "tools": [{ "functionDeclarations": [{ "name": "read_file", "description": "Reads.",
                "parameters": { "type": "object", "properties": { "path": { "type": "string" } } } }] }] })
}

#[tokio::test(flavor = "current_thread")]
async fn gemini_streams_crlf_chunks_with_whole_function_calls() {
    let reply = Reply::tool_calls(vec![
        ToolCallSpec::new("read_file", json!({ "path": "a" })),
        ToolCallSpec::new("read_file", json!({ "path": "b" })),
    ])
    .with_text("Reading both.")
    .with_thinking("Two files")
    .with_usage(50, 9, 32);
    let mock = MockLlm::builder()
        .expect_api_key("g-key")
        .start(vec![reply])
        .await;
    let url = format!(
        "{}/models/gemini-test:streamGenerateContent?alt=sse",
        mock.gemini_base_url()
    );
    let response = post(url, &[("x-goog-api-key", "g-key")], &gemini_request()).await;
    assert_eq!(response.status(), 200);
    let chunks = frames(&response.text().await.unwrap(), "\r\n\r\n");
    assert!(chunks.iter().all(|(name, _)| name.is_empty()));
    let parts = |i: usize| chunks[i].1["candidates"][0]["content"]["parts"].clone();
    assert_eq!(parts(0), json!([{ "text": "Two files", "thought": true }]));
    let last = chunks.len() - 1;
    let calls = parts(last);
    assert_eq!(
        calls[0]["functionCall"],
        json!({ "name": "read_file", "args": { "path": "a" } })
    );
    assert!(calls[0]["thoughtSignature"].is_string());
    assert_eq!(calls[1]["functionCall"]["args"], json!({ "path": "b" }));
    let final_chunk = &chunks[last].1;
    assert_eq!(final_chunk["candidates"][0]["finishReason"], "STOP");
    assert_eq!(final_chunk["usageMetadata"]["cachedContentTokenCount"], 32);
    assert_eq!(final_chunk["modelVersion"], "gemini-test");
    assert_eq!(mock.system_prompt(0).as_deref(), Some("You are terse."));
    assert_eq!(mock.tool_names(0), ["read_file"]);
    mock.assert_no_violations();
}

#[tokio::test(flavor = "current_thread")]
async fn gemini_refuses_keys_in_urls_and_unanswered_calls() {
    let mock = MockLlm::start(vec![Reply::text("unused")]).await;
    let url = format!(
        "{}/models/gemini-test:streamGenerateContent?alt=sse&key=secret",
        mock.gemini_base_url()
    );
    let mut body = gemini_request();
    body["contents"] = json!([
        { "role": "user", "parts": [{ "text": "hi" }] },
        { "role": "model", "parts": [{ "functionCall": { "name": "read_file", "args": {} } }] },
        { "role": "user", "parts": [{ "text": "what?" }] },
    ]);
    body["tools"][0]["functionDeclarations"][0]["parameters"]["additionalProperties"] =
        json!(false);
    let response = post(url, &[], &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    let violations = mock.violations().join("\n");
    for needle in ["x-goog-api-key", "must be answered", "additionalProperties"] {
        assert!(violations.contains(needle), "{needle}: {violations}");
    }
    assert_eq!(mock.remaining_replies(), 1);
}

fn responses_request() -> Value {
    json!({ "model": "gpt-test", "stream": true, "store": false, "instructions": "You are terse.",
            "input": [{ "role": "user", "content": [{ "type": "input_text", "text": "hi" }] }] })
}

#[tokio::test(flavor = "current_thread")]
async fn responses_streams_named_events_with_sequence_numbers() {
    let reply = Reply::tool_calls(vec![ToolCallSpec::new("read_file", json!({ "path": "a" }))])
        .with_text("Reading.")
        .with_thinking("Plan")
        .with_usage(30, 7, 16);
    let mock = MockLlm::start(vec![reply]).await;
    let response = post(
        format!("{}/responses", mock.base_url()),
        &[],
        &responses_request(),
    )
    .await;
    let events = frames(&response.text().await.unwrap(), "\n\n");
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i);
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["response.created", "response.in_progress"]);
    assert_eq!(names.last(), Some(&"response.completed"));
    let joined = |kind: &str| -> String {
        events
            .iter()
            .filter(|(n, _)| n == kind)
            .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(joined("response.reasoning_summary_text.delta"), "Plan");
    assert_eq!(joined("response.output_text.delta"), "Reading.");
    assert_eq!(
        joined("response.function_call_arguments.delta"),
        r#"{"path":"a"}"#
    );
    let added = events
        .iter()
        .find(|(n, d)| n == "response.output_item.added" && d["item"]["type"] == "function_call")
        .unwrap();
    assert_eq!(added.1["item"]["call_id"], "call_1");
    let usage = &events.last().unwrap().1["response"]["usage"];
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 16);
    assert_eq!(mock.system_prompt(0).as_deref(), Some("You are terse."));
    mock.assert_no_violations();
}

#[tokio::test(flavor = "current_thread")]
async fn responses_need_an_output_for_every_call_and_length_is_incomplete() {
    let mock = MockLlm::start(vec![
        Reply::text("a long answer").with_finish_reason("length"),
    ])
    .await;
    let url = format!("{}/responses", mock.base_url());
    let mut body = responses_request();
    body["input"].as_array_mut().unwrap().push(
        json!({ "type": "function_call", "call_id": "c1", "name": "read_file", "arguments": "{}" }),
    );
    assert_eq!(post(url.clone(), &[], &body).await.status(), 400);
    assert!(mock.violations()[0].contains("No tool output found for function call c1"));
    let events = frames(
        &post(url, &[], &responses_request())
            .await
            .text()
            .await
            .unwrap(),
        "\n\n",
    );
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(
        data["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn last_tool_result_and_user_text_read_every_format() {
    let mock = MockLlm::start(vec![Reply::dynamic(|request| {
        Reply::text(format!(
            "tool said: {}",
            last_tool_result(request).unwrap_or_default()
        ))
    })])
    .await;
    let mut body = anthropic_request();
    body["messages"] = json!([
        { "role": "user", "content": "read it" },
        { "role": "assistant", "content": [{ "type": "tool_use", "id": "t1", "name": "read_file", "input": {} }] },
        { "role": "user", "content": [
            { "type": "tool_result", "tool_use_id": "t1", "content": "42" },
            { "type": "text", "text": "and?" }] },
    ]);
    let text = post(format!("{}/messages", mock.base_url()), &[VERSION], &body)
        .await
        .text()
        .await
        .unwrap();
    let said: String = frames(&text, "\n\n")
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(said, "tool said: 42");
    assert_eq!(mock.last_user_text(0).as_deref(), Some("and?"));
    mock.assert_no_violations();
}
