//! The mock's Anthropic Messages API: the exact named SSE events of a streamed message, and
//! the request rules the real API enforces.

use std::collections::HashSet;

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::reply::{
    ARGUMENT_FRAGMENT_BYTES, CONTENT_PIECE_BYTES, StreamPlan, split_at_char_boundaries,
};
use super::validate::is_valid_tool_name;

/// The API version the mock speaks (the `anthropic-version` header).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Most cache breakpoints one request may set.
const MAX_CACHE_BREAKPOINTS: usize = 4;

fn event(data: Value) -> String {
    let name = data["type"].as_str().unwrap_or("message").to_owned();
    format!("event: {name}\ndata: {data}\n\n")
}

/// Anthropic's stop reason for a Chat-style (or verbatim) finish reason.
fn stop_reason(plan: &StreamPlan<'_>) -> String {
    match plan.finish_reason {
        None if plan.tool_calls.is_empty() => "end_turn",
        None | Some("tool_calls") => "tool_use",
        Some("stop") => "end_turn",
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some(other) => other,
    }
    .to_owned()
}

/// The signature of the thinking block of reply `n`.
pub(crate) fn signature(n: usize) -> String {
    format!("EqQBmockSignature{n}")
}

/// Renders the whole event stream: `message_start`, one content block per thinking / text /
/// tool call (with a `ping` after the first start, as the API sends), `message_delta` and
/// `message_stop`, or an `error` event after the content.
pub(crate) fn render(plan: &StreamPlan<'_>) -> Vec<String> {
    let usage = plan.usage_or_default();
    let mut events = vec![event(json!({ "type": "message_start", "message": {
        "id": format!("msg_mock_{}", plan.n), "type": "message", "role": "assistant",
        "model": plan.model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": { "input_tokens": usage.prompt_tokens - usage.cached_tokens.min(usage.prompt_tokens),
                   "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": usage.cached_tokens, "output_tokens": 1 } } }))];
    let mut blocks: Vec<(Value, Vec<Value>)> = Vec::new();
    if let Some(thinking) = plan.thinking {
        let mut deltas: Vec<Value> = split_at_char_boundaries(thinking, CONTENT_PIECE_BYTES)
            .into_iter()
            .map(|piece| json!({ "type": "thinking_delta", "thinking": piece }))
            .collect();
        let signature = signature(plan.n);
        deltas.push(json!({ "type": "signature_delta", "signature": signature }));
        let start = json!({ "type": "thinking", "thinking": "", "signature": "" });
        blocks.push((start, deltas));
    }
    if let Some(text) = plan.text {
        let deltas = split_at_char_boundaries(text, CONTENT_PIECE_BYTES)
            .into_iter()
            .map(|piece| json!({ "type": "text_delta", "text": piece }))
            .collect();
        blocks.push((json!({ "type": "text", "text": "" }), deltas));
    }
    for (id, call) in &plan.tool_calls {
        let pieces = split_at_char_boundaries(&call.arguments, ARGUMENT_FRAGMENT_BYTES);
        let deltas = std::iter::once("")
            .chain(pieces)
            .map(|piece| json!({ "type": "input_json_delta", "partial_json": piece }))
            .collect();
        let start = json!({ "type": "tool_use", "id": id, "name": call.name, "input": {} });
        blocks.push((start, deltas));
    }
    for (index, (start, deltas)) in blocks.into_iter().enumerate() {
        events.push(event(
            json!({ "type": "content_block_start", "index": index, "content_block": start }),
        ));
        for delta in deltas {
            events.push(event(
                json!({ "type": "content_block_delta", "index": index, "delta": delta }),
            ));
        }
        events.push(event(
            json!({ "type": "content_block_stop", "index": index }),
        ));
    }
    if events.len() > 1 {
        events.insert(2, event(json!({ "type": "ping" })));
    }
    if let Some(message) = plan.stream_error {
        events.push(event(json!({ "type": "error",
            "error": { "type": "overloaded_error", "message": message } })));
        return events;
    }
    events.push(event(json!({ "type": "message_delta",
        "delta": { "stop_reason": stop_reason(plan), "stop_sequence": null },
        "usage": { "output_tokens": usage.completion_tokens } })));
    events.push(event(json!({ "type": "message_stop" })));
    events
}

/// Returns one message per rule of the Messages API that `body` (or its headers) breaks.
pub(crate) fn validate(headers: &HeaderMap, body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if headers
        .get("anthropic-version")
        .and_then(|v| v.to_str().ok())
        != Some(ANTHROPIC_VERSION)
    {
        problems.push(format!(
            "header `anthropic-version: {ANTHROPIC_VERSION}` is required"
        ));
    }
    let Some(request) = body.as_object() else {
        problems.push("request body is not a JSON object".to_owned());
        return problems;
    };
    if request
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        problems.push("`model` must be a non-empty string".to_owned());
    }
    if request
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|n| n == 0)
    {
        problems.push("`max_tokens` is required and must be a positive integer".to_owned());
    }
    if request.get("stream") != Some(&Value::Bool(true)) {
        problems.push("`stream` must be true (the mock only speaks streaming)".to_owned());
    }
    check_system(request.get("system"), &mut problems);
    match request.get("messages").and_then(Value::as_array) {
        Some(messages) if !messages.is_empty() => check_messages(messages, &mut problems),
        _ => problems.push("`messages` must be a non-empty array".to_owned()),
    }
    if let Some(tools) = request.get("tools") {
        check_tools(tools, &mut problems);
    }
    let breakpoints = count_cache_breakpoints(body);
    if breakpoints > MAX_CACHE_BREAKPOINTS {
        problems.push(format!(
            "{breakpoints} blocks have cache_control; at most {MAX_CACHE_BREAKPOINTS} are allowed"
        ));
    }
    problems
}

fn check_system(system: Option<&Value>, problems: &mut Vec<String>) {
    match system {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (i, block) in blocks.iter().enumerate() {
                if block.get("type").and_then(Value::as_str) != Some("text")
                    || !block.get("text").is_some_and(Value::is_string)
                {
                    problems.push(format!("system[{i}] must be a text block"));
                }
            }
        }
        Some(_) => problems.push("`system` must be a string or an array of text blocks".to_owned()),
    }
}

fn check_messages(messages: &[Value], problems: &mut Vec<String>) {
    let mut previous_role = "";
    // Tool uses of the previous assistant message, which the next user message must answer.
    let mut open: Vec<String> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "user" | "assistant") {
            problems.push(format!(
                "messages[{i}]: role must be \"user\" or \"assistant\", got {role:?}"
            ));
            continue;
        }
        if i == 0 && role != "user" {
            problems.push("messages[0]: the first message must use the user role".to_owned());
        }
        if role == previous_role {
            problems.push(format!(
                "messages[{i}]: roles must alternate between \"user\" and \"assistant\" (two {role} messages in a row)"
            ));
        }
        previous_role = role;
        let blocks = match message.get("content") {
            Some(Value::String(text)) if !text.is_empty() => Vec::new(),
            Some(Value::Array(blocks)) if !blocks.is_empty() => blocks.clone(),
            _ => {
                problems.push(format!(
                    "messages[{i}]: `content` must be a non-empty string or array"
                ));
                Vec::new()
            }
        };
        let answered = check_blocks(i, role, &blocks, problems);
        if role == "user" {
            for id in open.iter().filter(|id| !answered.contains(*id)) {
                problems.push(format!(
                    "messages[{i}]: tool_use `{id}` of messages[{}] has no tool_result in this message",
                    i - 1
                ));
            }
            for id in answered.iter().filter(|id| !open.contains(*id)) {
                problems.push(format!(
                    "messages[{i}]: tool_result for `{id}` answers no tool_use of the previous message"
                ));
            }
            open.clear();
        } else {
            if !open.is_empty() {
                problems.push(format!(
                    "messages[{i}]: tool uses of messages[{}] were never answered",
                    i - 1
                ));
            }
            open = tool_use_ids(&blocks);
        }
    }
    if !open.is_empty() {
        problems.push("the conversation ends with unanswered tool uses".to_owned());
    }
}

fn tool_use_ids(blocks: &[Value]) -> Vec<String> {
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .filter_map(|b| b.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Checks each block of one message; returns the tool_use ids its tool_results answer.
fn check_blocks(i: usize, role: &str, blocks: &[Value], problems: &mut Vec<String>) -> Vec<String> {
    let mut answered = Vec::new();
    let mut seen_other = false;
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let allowed = match kind {
            "text" | "image" => true,
            "tool_use" | "thinking" | "redacted_thinking" => role == "assistant",
            "tool_result" => role == "user",
            _ => false,
        };
        if !allowed {
            problems.push(format!(
                "{at}: block type {kind:?} is not allowed in a {role} message"
            ));
        } else if kind == "tool_result" {
            if seen_other {
                problems.push(format!(
                    "{at}: tool_result blocks must come before any other content"
                ));
            }
            check_tool_result(&at, block, &mut answered, problems);
        } else {
            seen_other |= matches!(kind, "text" | "image");
            check_block(&at, kind, block, problems);
        }
    }
    answered
}

/// Checks a block other than a tool result.
fn check_block(at: &str, kind: &str, block: &Value, problems: &mut Vec<String>) {
    match kind {
        "text" => {
            let text = block.get("text").and_then(Value::as_str).unwrap_or("");
            if text.trim().is_empty() {
                problems.push(format!(
                    "{at}: text content blocks must contain non-whitespace text"
                ));
            }
        }
        "image" => check_image(at, block, problems),
        "tool_use" => check_tool_use(at, block, problems),
        "thinking"
            if block
                .get("signature")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            problems.push(format!("{at}: a thinking block needs its signature"));
        }
        _ => {}
    }
}

fn check_image(at: &str, block: &Value, problems: &mut Vec<String>) {
    let source = |key: &str| block.get("source").and_then(|s| s.get(key));
    let kind = source("type").and_then(Value::as_str);
    let media_type = source("media_type").and_then(Value::as_str);
    let data = source("data").and_then(Value::as_str);
    match (kind, media_type, data) {
        (Some("base64"), Some(media_type), Some(data)) => {
            super::images::check_base64(at, media_type, data, problems);
        }
        _ => problems.push(format!(
            "{at}: an image needs a base64 source with media_type and data"
        )),
    }
}

fn check_tool_result(
    at: &str,
    block: &Value,
    answered: &mut Vec<String>,
    problems: &mut Vec<String>,
) {
    match block.get("tool_use_id").and_then(Value::as_str) {
        Some(id) if !answered.iter().any(|a| a == id) => answered.push(id.to_owned()),
        Some(id) => problems.push(format!("{at}: tool_use `{id}` is answered twice")),
        None => problems.push(format!("{at}: a tool_result needs `tool_use_id`")),
    }
    match block.get("content") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (k, inner) in blocks.iter().enumerate() {
                let at = format!("{at}.content[{k}]");
                match inner.get("type").and_then(Value::as_str) {
                    Some("text") => check_block(&at, "text", inner, problems),
                    Some("image") => check_image(&at, inner, problems),
                    other => problems.push(format!(
                        "{at}: a tool_result holds text and image blocks only, not {other:?}"
                    )),
                }
            }
        }
        Some(_) => problems.push(format!(
            "{at}: tool_result content must be a string or blocks"
        )),
    }
}

fn check_tool_use(at: &str, block: &Value, problems: &mut Vec<String>) {
    if block
        .get("id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        problems.push(format!("{at}: a tool_use needs an `id`"));
    }
    let name = block.get("name").and_then(Value::as_str);
    if !name.is_some_and(is_valid_tool_name) {
        problems.push(format!(
            "{at}: tool_use name {name:?} is not a valid tool name"
        ));
    }
    if !block.get("input").is_some_and(Value::is_object) {
        problems.push(format!("{at}: tool_use `input` must be a JSON object"));
    }
}

fn check_tools(tools: &Value, problems: &mut Vec<String>) {
    let Some(tools) = tools.as_array() else {
        problems.push("`tools` must be an array".to_owned());
        return;
    };
    let mut seen = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        match tool.get("name").and_then(Value::as_str) {
            Some(name) if is_valid_tool_name(name) => {
                if !seen.insert(name) {
                    problems.push(format!("tools[{i}]: duplicate tool name `{name}`"));
                }
            }
            name => problems.push(format!(
                "tools[{i}]: name {name:?} is not a valid tool name"
            )),
        }
        if !matches!(tool.get("description"), None | Some(Value::String(_))) {
            problems.push(format!("tools[{i}]: `description` must be a string"));
        }
        let schema = tool.get("input_schema").and_then(Value::as_object);
        if schema.and_then(|s| s.get("type")).and_then(Value::as_str) != Some("object") {
            problems.push(format!(
                "tools[{i}]: `input_schema` must be an object schema (type: object)"
            ));
        }
    }
}

fn count_cache_breakpoints(value: &Value) -> usize {
    match value {
        Value::Object(map) => usize::from(map.contains_key("cache_control")) + count_in(map),
        Value::Array(items) => items.iter().map(count_cache_breakpoints).sum(),
        _ => 0,
    }
}

fn count_in(map: &Map<String, Value>) -> usize {
    map.iter()
        .filter(|(k, _)| k.as_str() != "cache_control" && k.as_str() != "input_schema")
        .map(|(_, v)| count_cache_breakpoints(v))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", ANTHROPIC_VERSION.parse().unwrap());
        headers
    }

    fn request(messages: Value) -> Value {
        json!({ "model": "claude-test", "max_tokens": 100, "stream": true, "messages": messages })
    }

    #[test]
    fn a_valid_tool_round_trip_passes() {
        let body = request(json!([
            { "role": "user", "content": "hi" },
            { "role": "assistant", "content": [
                { "type": "thinking", "thinking": "x", "signature": "sig" },
                { "type": "tool_use", "id": "t1", "name": "read_file", "input": {} }] },
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "t1", "content": "ok" },
                { "type": "text", "text": "go on", "cache_control": { "type": "ephemeral" } }] },
        ]));
        assert_eq!(validate(&headers(), &body), Vec::<String>::new());
    }

    #[test]
    fn alternation_answers_and_max_tokens_are_enforced() {
        let mut body = request(json!([
            { "role": "user", "content": "hi" },
            { "role": "user", "content": "again" },
            { "role": "assistant", "content": [
                { "type": "tool_use", "id": "t1", "name": "read_file", "input": {} }] },
            { "role": "user", "content": [
                { "type": "text", "text": "no answer" },
                { "type": "tool_result", "tool_use_id": "t9", "content": "?" }] },
        ]));
        body.as_object_mut().unwrap().remove("max_tokens");
        let problems = validate(&HeaderMap::new(), &body);
        for needle in [
            "anthropic-version",
            "max_tokens",
            "alternate",
            "has no tool_result",
            "answers no tool_use",
            "must come before",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
    }
}
