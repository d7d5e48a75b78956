//! The mock's Gemini API: `streamGenerateContent?alt=sse` chunks as Google sends them (CRLF
//! line ends, no terminal event, whole function calls), and the request rules it enforces.

use axum::http::{HeaderMap, Uri};
use serde_json::{Value, json};

use super::reply::{CONTENT_PIECE_BYTES, StreamPlan, split_at_char_boundaries};
use super::validate::is_valid_tool_name;

/// Schema keywords a function declaration's `parameters` may use (OpenAPI 3.0 subset);
/// anything else is a 400 from the real API.
const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

fn chunk(data: Value) -> String {
    format!("data: {data}\r\n\r\n")
}

fn finish_reason(plan: &StreamPlan<'_>) -> String {
    match plan.finish_reason {
        None | Some("stop" | "tool_calls") => "STOP",
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        Some(other) => other,
    }
    .to_owned()
}

/// Renders the chunks: the thought, text pieces, then one chunk with every function call; the
/// last chunk carries the finish reason, the full usage and a thought signature.
pub(crate) fn render(plan: &StreamPlan<'_>) -> Vec<String> {
    let usage = plan.usage_or_default();
    let parts_per_chunk = parts_per_chunk(plan);
    let last = parts_per_chunk.len() - 1;
    let mut events: Vec<String> = parts_per_chunk
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let mut candidate =
                json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
            let mut usage_metadata = json!({ "promptTokenCount": usage.prompt_tokens,
                                             "totalTokenCount": usage.prompt_tokens });
            if i == last && plan.stream_error.is_none() {
                candidate["finishReason"] = json!(finish_reason(plan));
                usage_metadata = json!({
                    "promptTokenCount": usage.prompt_tokens,
                    "candidatesTokenCount": usage.completion_tokens,
                    "cachedContentTokenCount": usage.cached_tokens,
                    "totalTokenCount": usage.prompt_tokens + usage.completion_tokens,
                });
            }
            chunk(
                json!({ "candidates": [candidate], "usageMetadata": usage_metadata,
                          "modelVersion": plan.model,
                          "responseId": format!("mockResponse{}", plan.n) }),
            )
        })
        .collect();
    if let Some(message) = plan.stream_error {
        events.push(chunk(
            json!({ "error": { "code": 503, "message": message, "status": "UNAVAILABLE" } }),
        ));
    }
    events
}

/// The parts of each chunk: the thought, one per text piece, then all function calls
/// together (the first carrying the thought signature), or an empty text part with the
/// signature when there are no calls.
fn parts_per_chunk(plan: &StreamPlan<'_>) -> Vec<Vec<Value>> {
    let mut chunks: Vec<Vec<Value>> = Vec::new();
    if let Some(thinking) = plan.thinking {
        chunks.push(vec![json!({ "text": thinking, "thought": true })]);
    }
    if let Some(text) = plan.text {
        for piece in split_at_char_boundaries(text, CONTENT_PIECE_BYTES) {
            chunks.push(vec![json!({ "text": piece })]);
        }
    }
    let signature = format!("CiQBmockThoughtSignature{}", plan.n);
    if !plan.tool_calls.is_empty() {
        let calls = plan.tool_calls.iter().enumerate().map(|(k, (id, call))| {
            // Arguments a test made deliberately broken cannot be an object; send them raw.
            let args = serde_json::from_str::<Value>(&call.arguments)
                .unwrap_or_else(|_| json!({ "raw": call.arguments }));
            let mut function_call = json!({ "name": call.name, "args": args });
            if call.id.is_some() {
                function_call["id"] = json!(id);
            }
            let mut part = json!({ "functionCall": function_call });
            if k == 0 && plan.thinking.is_some() {
                part["thoughtSignature"] = json!(signature);
            }
            part
        });
        chunks.push(calls.collect());
    } else if plan.thinking.is_some() {
        chunks.push(vec![json!({ "text": "", "thoughtSignature": signature })]);
    }
    if chunks.is_empty() {
        chunks.push(vec![json!({ "text": "" })]);
    }
    chunks
}

/// The model named by a `…/models/{model}:streamGenerateContent` path.
pub(crate) fn model_of(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .and_then(|last| last.split(':').next())
        .unwrap_or("")
}

/// Returns one message per rule of the Gemini API that the request breaks.
pub(crate) fn validate(uri: &Uri, _headers: &HeaderMap, body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let query = uri.query().unwrap_or("");
    if query.split('&').any(|pair| pair.starts_with("key=")) {
        problems.push(
            "the API key must travel in the x-goog-api-key header, not in the URL".to_owned(),
        );
    }
    if !uri.path().ends_with(":streamGenerateContent") || !query.split('&').any(|p| p == "alt=sse")
    {
        problems.push(
            "only `:streamGenerateContent?alt=sse` is supported (the mock only speaks streaming)"
                .to_owned(),
        );
    }
    if model_of(uri.path()).is_empty() {
        problems.push("the path names no model".to_owned());
    }
    match body.get("contents").and_then(Value::as_array) {
        Some(contents) if !contents.is_empty() => check_contents(contents, &mut problems),
        _ => problems.push("`contents` must be a non-empty array".to_owned()),
    }
    if let Some(system) = body.get("systemInstruction") {
        let ok = system
            .get("parts")
            .and_then(Value::as_array)
            .is_some_and(|parts| {
                parts
                    .iter()
                    .all(|p| p.get("text").is_some_and(Value::is_string))
            });
        if !ok {
            problems.push("`systemInstruction` must have text parts".to_owned());
        }
    }
    if let Some(tools) = body.get("tools") {
        check_tools(tools, &mut problems);
    }
    problems
}

fn check_contents(contents: &[Value], problems: &mut Vec<String>) {
    // Names of the function calls of the previous model turn, still to be answered.
    let mut open: Vec<String> = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        let role = content.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "user" | "model") {
            problems.push(format!(
                "contents[{i}]: role must be \"user\" or \"model\", got {role:?}"
            ));
            continue;
        }
        if i == 0 && role != "user" {
            problems.push("contents[0]: the conversation must start with a user turn".to_owned());
        }
        let parts = content
            .get("parts")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        if parts.is_empty() {
            problems.push(format!("contents[{i}]: `parts` must be a non-empty array"));
        }
        let mut calls = Vec::new();
        let mut responses = Vec::new();
        for (j, part) in parts.iter().enumerate() {
            check_part(&format!("contents[{i}].parts[{j}]"), role, part, problems);
            if let Some(name) = part.pointer("/functionCall/name").and_then(Value::as_str) {
                calls.push(name.to_owned());
            }
            if let Some(name) = part
                .pointer("/functionResponse/name")
                .and_then(Value::as_str)
            {
                responses.push(name.to_owned());
            }
        }
        if !open.is_empty() {
            let mut expected = std::mem::take(&mut open);
            let mut got = responses.clone();
            expected.sort();
            got.sort();
            if role != "user" || expected != got {
                problems.push(format!(
                    "contents[{i}]: the function calls {expected:?} of contents[{}] must be answered \
                     by exactly that many functionResponse parts in the next user turn, got {got:?}",
                    i - 1
                ));
            }
        } else if !responses.is_empty() {
            problems.push(format!(
                "contents[{i}]: functionResponse parts must follow a model turn with functionCall parts"
            ));
        }
        open = calls;
    }
    if !open.is_empty() {
        problems.push("the conversation ends with unanswered function calls".to_owned());
    }
}

fn check_part(at: &str, role: &str, part: &Value, problems: &mut Vec<String>) {
    let data_fields = ["text", "inlineData", "functionCall", "functionResponse"];
    let present: Vec<&str> = data_fields
        .iter()
        .copied()
        .filter(|f| part.get(*f).is_some())
        .collect();
    if present.len() != 1 {
        problems.push(format!(
            "{at}: a part needs exactly one of {data_fields:?}, got {present:?}"
        ));
        return;
    }
    match present[0] {
        "functionCall" => {
            if role != "model" {
                problems.push(format!("{at}: functionCall parts belong to model turns"));
            }
            let name = part.pointer("/functionCall/name").and_then(Value::as_str);
            if !name.is_some_and(is_valid_tool_name) {
                problems.push(format!("{at}: functionCall name {name:?} is not valid"));
            }
            if !part
                .pointer("/functionCall/args")
                .is_none_or(Value::is_object)
            {
                problems.push(format!("{at}: functionCall args must be an object"));
            }
        }
        "functionResponse" => {
            if role != "user" {
                problems.push(format!("{at}: functionResponse parts belong to user turns"));
            }
            if !part
                .pointer("/functionResponse/response")
                .is_some_and(Value::is_object)
            {
                problems.push(format!("{at}: functionResponse.response must be an object"));
            }
        }
        "inlineData" => {
            let mime_type = part.pointer("/inlineData/mimeType").and_then(Value::as_str);
            let data = part.pointer("/inlineData/data").and_then(Value::as_str);
            match (mime_type, data) {
                (Some(mime_type), Some(data)) => {
                    super::images::check_base64(at, mime_type, data, problems);
                }
                _ => problems.push(format!("{at}: inlineData needs mimeType and base64 data")),
            }
        }
        _ => {}
    }
}

fn check_tools(tools: &Value, problems: &mut Vec<String>) {
    let Some(tools) = tools.as_array() else {
        problems.push("`tools` must be an array".to_owned());
        return;
    };
    for (i, tool) in tools.iter().enumerate() {
        let declarations = tool.get("functionDeclarations").and_then(Value::as_array);
        for (j, declaration) in declarations.into_iter().flatten().enumerate() {
            let at = format!("tools[{i}].functionDeclarations[{j}]");
            let name = declaration.get("name").and_then(Value::as_str);
            if !name.is_some_and(is_valid_tool_name) {
                problems.push(format!("{at}: name {name:?} is not valid"));
            }
            if let Some(schema) = declaration.get("parameters") {
                check_schema(&format!("{at}.parameters"), schema, problems);
            }
        }
    }
}

/// Rejects schema keywords Gemini does not know, as the real API does.
fn check_schema(at: &str, schema: &Value, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        problems.push(format!("{at}: a schema must be an object"));
        return;
    };
    for (key, value) in object {
        if !SCHEMA_KEYWORDS.contains(&key.as_str()) {
            problems.push(format!(
                "{at}: Invalid JSON payload received. Unknown name {key:?}"
            ));
            continue;
        }
        match key.as_str() {
            "properties" => {
                for (name, property) in value.as_object().into_iter().flatten() {
                    check_schema(&format!("{at}.properties.{name}"), property, problems);
                }
            }
            "items" => check_schema(&format!("{at}.items"), value, problems),
            "anyOf" => {
                for (k, option) in value.as_array().into_iter().flatten().enumerate() {
                    check_schema(&format!("{at}.anyOf[{k}]"), option, problems);
                }
            }
            "type" if !value.is_string() => {
                problems.push(format!("{at}: `type` must be a single string"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn calls_must_be_answered_and_keys_stay_out_of_urls() {
        let body = json!({ "contents": [
            { "role": "user", "parts": [{ "text": "hi" }] },
            { "role": "model", "parts": [{ "functionCall": { "name": "read_file", "args": {} } }] },
            { "role": "user", "parts": [{ "text": "no answer" }] },
        ], "tools": [{ "functionDeclarations": [{ "name": "read_file",
            "parameters": { "type": "object", "additionalProperties": false, "$schema": "x" } }] }] });
        let problems = validate(
            &uri("/v1beta/models/m:streamGenerateContent?alt=sse&key=secret"),
            &HeaderMap::new(),
            &body,
        );
        for needle in [
            "x-goog-api-key",
            "must be answered",
            "\"additionalProperties\"",
            "\"$schema\"",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
        assert_eq!(
            model_of("/v1beta/models/gemini-x:streamGenerateContent"),
            "gemini-x"
        );
    }

    #[test]
    fn a_valid_round_trip_passes() {
        let body = json!({ "systemInstruction": { "parts": [{ "text": "be brief" }] }, "contents": [
            { "role": "user", "parts": [{ "text": "hi" }] },
            { "role": "model", "parts": [
                { "functionCall": { "name": "a", "args": {} }, "thoughtSignature": "s" },
                { "functionCall": { "name": "b", "args": {} } }] },
            { "role": "user", "parts": [
                { "functionResponse": { "name": "b", "response": { "content": "2" } } },
                { "functionResponse": { "name": "a", "response": { "content": "1" } } }] },
        ] });
        let uri = uri("/v1beta/models/m:streamGenerateContent?alt=sse");
        assert_eq!(
            validate(&uri, &HeaderMap::new(), &body),
            Vec::<String>::new()
        );
    }
}
