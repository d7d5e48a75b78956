//! The mock's OpenAI Responses API: the exact named SSE events of a streamed response, and
//! the request rules the real API enforces.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::reply::{
    ARGUMENT_FRAGMENT_BYTES, CONTENT_PIECE_BYTES, CREATED, StreamPlan, ToolCallSpec,
    split_at_char_boundaries,
};
use super::validate::is_valid_tool_name;

/// Builds the events of one response, numbering them as the API does.
struct Events {
    events: Vec<String>,
    sequence: u64,
}

impl Events {
    fn push(&mut self, mut data: Value) {
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        let name = data["type"].as_str().unwrap_or("message").to_owned();
        self.events.push(format!("event: {name}\ndata: {data}\n\n"));
    }
}

fn response(plan: &StreamPlan<'_>, status: &str, output: Value, usage: Value) -> Value {
    json!({ "id": format!("resp_mock_{}", plan.n), "object": "response", "created_at": CREATED,
            "status": status, "error": null, "incomplete_details": null, "instructions": null,
            "model": plan.model, "output": output, "parallel_tool_calls": true, "store": false,
            "tool_choice": "auto", "usage": usage })
}

/// Renders the whole event stream: `response.created`, `response.in_progress`, then per
/// output item (reasoning, message, function calls) its added / delta / done events, then
/// `response.completed` or `response.incomplete` (or `response.failed` for a stream error).
pub(crate) fn render(plan: &StreamPlan<'_>) -> Vec<String> {
    let mut out = Events {
        events: Vec::new(),
        sequence: 0,
    };
    out.push(json!({ "type": "response.created",
        "response": response(plan, "in_progress", json!([]), Value::Null) }));
    out.push(json!({ "type": "response.in_progress",
        "response": response(plan, "in_progress", json!([]), Value::Null) }));
    let mut items = Vec::new();
    if let Some(thinking) = plan.thinking {
        items.push(reasoning(&mut out, plan, items.len(), thinking));
    }
    if let Some(text) = plan.text {
        items.push(message(&mut out, plan, items.len(), text));
    }
    for (id, call) in &plan.tool_calls {
        items.push(function_call(&mut out, items.len(), id, call));
    }
    if let Some(message) = plan.stream_error {
        let mut failed = response(plan, "failed", json!(items), Value::Null);
        failed["error"] = json!({ "code": "server_error", "message": message });
        out.push(json!({ "type": "response.failed", "response": failed }));
    } else {
        out.push(terminal(plan, items));
    }
    out.events
}

/// `response.completed`, or `response.incomplete` for the finish reasons that mean it.
fn terminal(plan: &StreamPlan<'_>, items: Vec<Value>) -> Value {
    let usage = plan.usage_or_default();
    let usage = json!({ "input_tokens": usage.prompt_tokens,
        "input_tokens_details": { "cached_tokens": usage.cached_tokens },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": usage.prompt_tokens + usage.completion_tokens });
    let incomplete = match plan.finish_reason {
        Some("length") => Some("max_output_tokens"),
        Some("content_filter") => Some("content_filter"),
        _ => None,
    };
    let (kind, status) = match incomplete {
        Some(_) => ("response.incomplete", "incomplete"),
        None => ("response.completed", "completed"),
    };
    let mut done = response(plan, status, json!(items), usage);
    if let Some(reason) = incomplete {
        done["incomplete_details"] = json!({ "reason": reason });
    }
    json!({ "type": kind, "response": done })
}

fn function_call(out: &mut Events, index: usize, id: &str, call: &ToolCallSpec) -> Value {
    let item_id = format!("fc_{}", id.trim_start_matches("call_"));
    let mut item = json!({ "id": item_id, "type": "function_call", "status": "in_progress",
                           "arguments": "", "call_id": id, "name": call.name });
    out.push(json!({ "type": "response.output_item.added", "output_index": index, "item": item }));
    for piece in split_at_char_boundaries(&call.arguments, ARGUMENT_FRAGMENT_BYTES) {
        out.push(json!({ "type": "response.function_call_arguments.delta",
                         "item_id": item_id, "output_index": index, "delta": piece }));
    }
    out.push(
        json!({ "type": "response.function_call_arguments.done", "item_id": item_id,
                     "output_index": index, "arguments": call.arguments }),
    );
    item["status"] = json!("completed");
    item["arguments"] = json!(call.arguments);
    out.push(json!({ "type": "response.output_item.done", "output_index": index, "item": item }));
    item
}

fn reasoning(out: &mut Events, plan: &StreamPlan<'_>, index: usize, thinking: &str) -> Value {
    let id = format!("rs_mock_{}", plan.n);
    out.push(
        json!({ "type": "response.output_item.added", "output_index": index,
                     "item": { "id": id, "type": "reasoning", "summary": [] } }),
    );
    let part = json!({ "type": "summary_text", "text": "" });
    out.push(
        json!({ "type": "response.reasoning_summary_part.added", "item_id": id,
                     "output_index": index, "summary_index": 0, "part": part }),
    );
    for piece in split_at_char_boundaries(thinking, CONTENT_PIECE_BYTES) {
        out.push(
            json!({ "type": "response.reasoning_summary_text.delta", "item_id": id,
                         "output_index": index, "summary_index": 0, "delta": piece }),
        );
    }
    out.push(
        json!({ "type": "response.reasoning_summary_text.done", "item_id": id,
                     "output_index": index, "summary_index": 0, "text": thinking }),
    );
    let part = json!({ "type": "summary_text", "text": thinking });
    out.push(
        json!({ "type": "response.reasoning_summary_part.done", "item_id": id,
                     "output_index": index, "summary_index": 0, "part": part }),
    );
    let item = json!({ "id": id, "type": "reasoning", "summary": [part] });
    out.push(json!({ "type": "response.output_item.done", "output_index": index, "item": item }));
    item
}

fn message(out: &mut Events, plan: &StreamPlan<'_>, index: usize, text: &str) -> Value {
    let id = format!("msg_mock_{}", plan.n);
    out.push(json!({ "type": "response.output_item.added", "output_index": index,
        "item": { "id": id, "type": "message", "status": "in_progress", "content": [], "role": "assistant" } }));
    let empty = json!({ "type": "output_text", "annotations": [], "logprobs": [], "text": "" });
    out.push(
        json!({ "type": "response.content_part.added", "item_id": id, "output_index": index,
                     "content_index": 0, "part": empty }),
    );
    for piece in split_at_char_boundaries(text, CONTENT_PIECE_BYTES) {
        out.push(
            json!({ "type": "response.output_text.delta", "item_id": id, "output_index": index,
                         "content_index": 0, "delta": piece, "logprobs": [] }),
        );
    }
    out.push(
        json!({ "type": "response.output_text.done", "item_id": id, "output_index": index,
                     "content_index": 0, "text": text, "logprobs": [] }),
    );
    let part = json!({ "type": "output_text", "annotations": [], "logprobs": [], "text": text });
    out.push(
        json!({ "type": "response.content_part.done", "item_id": id, "output_index": index,
                     "content_index": 0, "part": part }),
    );
    let item = json!({ "id": id, "type": "message", "status": "completed", "content": [part],
                       "role": "assistant" });
    out.push(json!({ "type": "response.output_item.done", "output_index": index, "item": item }));
    item
}

/// Returns one message per rule of the Responses API that `body` breaks.
pub(crate) fn validate(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
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
    if request.get("stream") != Some(&Value::Bool(true)) {
        problems.push("`stream` must be true (the mock only speaks streaming)".to_owned());
    }
    if !matches!(
        request.get("instructions"),
        None | Some(Value::String(_) | Value::Null)
    ) {
        problems.push("`instructions` must be a string".to_owned());
    }
    match request.get("input") {
        Some(Value::String(_)) => {}
        Some(Value::Array(items)) if !items.is_empty() => check_items(items, &mut problems),
        _ => problems.push("`input` must be a string or a non-empty array of items".to_owned()),
    }
    if let Some(tools) = request.get("tools") {
        check_tools(tools, &mut problems);
    }
    problems
}

fn check_items(items: &[Value], problems: &mut Vec<String>) {
    let mut calls: Vec<String> = Vec::new();
    let mut answered: HashSet<String> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        let call_id = item.get("call_id").and_then(Value::as_str);
        match kind {
            "message" => check_message(i, item, problems),
            "function_call" => {
                let name = item.get("name").and_then(Value::as_str);
                if !name.is_some_and(is_valid_tool_name) {
                    problems.push(format!(
                        "input[{i}]: function_call name {name:?} is not valid"
                    ));
                }
                let arguments = item.get("arguments").and_then(Value::as_str).unwrap_or("");
                if !serde_json::from_str::<Value>(arguments).is_ok_and(|v| v.is_object()) {
                    problems.push(format!(
                        "input[{i}]: `arguments` must be a string holding a JSON object"
                    ));
                }
                match call_id {
                    Some(id) if !id.is_empty() && !calls.iter().any(|c| c == id) => {
                        calls.push(id.to_owned())
                    }
                    Some(id) if !id.is_empty() => {
                        problems.push(format!("input[{i}]: duplicate call_id `{id}`"))
                    }
                    _ => problems.push(format!("input[{i}]: a function_call needs a `call_id`")),
                }
            }
            "function_call_output" => {
                let Some(id) = call_id else {
                    problems.push(format!(
                        "input[{i}]: a function_call_output needs a `call_id`"
                    ));
                    continue;
                };
                if !calls.iter().any(|c| c == id) {
                    problems.push(format!(
                        "input[{i}]: No tool call found for function call output with call_id {id}."
                    ));
                } else if !answered.insert(id.to_owned()) {
                    problems.push(format!("input[{i}]: call `{id}` is answered twice"));
                }
                check_output(i, item.get("output"), problems);
            }
            other => problems.push(format!("input[{i}]: unsupported item type {other:?}")),
        }
    }
    for id in calls.iter().filter(|id| !answered.contains(*id)) {
        problems.push(format!("No tool output found for function call {id}."));
    }
}

fn check_message(i: usize, item: &Value, problems: &mut Vec<String>) {
    let role = item.get("role").and_then(Value::as_str).unwrap_or("");
    let part_types: &[&str] = match role {
        "user" | "system" | "developer" => &["input_text", "input_image", "input_file"],
        "assistant" => &["output_text", "refusal"],
        _ => {
            problems.push(format!("input[{i}]: unknown role {role:?}"));
            return;
        }
    };
    match item.get("content") {
        Some(Value::String(_)) => {}
        Some(Value::Array(parts)) if !parts.is_empty() => {
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                if !part_types.contains(&kind) {
                    problems.push(format!(
                        "input[{i}].content[{j}]: type {kind:?} is not allowed for role {role:?}"
                    ));
                } else if kind == "input_image" {
                    check_input_image(&format!("input[{i}].content[{j}]"), part, problems);
                }
            }
        }
        _ => problems.push(format!(
            "input[{i}]: `content` must be a string or a non-empty array"
        )),
    }
}

/// A function call's `output`: a string, or `input_text` / `input_image`
/// parts.
fn check_output(i: usize, output: Option<&Value>, problems: &mut Vec<String>) {
    match output {
        Some(Value::String(_)) => {}
        Some(Value::Array(parts)) if !parts.is_empty() => {
            for (j, part) in parts.iter().enumerate() {
                let at = format!("input[{i}].output[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text") if part.get("text").is_some_and(Value::is_string) => {}
                    Some("input_image") => check_input_image(&at, part, problems),
                    other => problems.push(format!(
                        "{at}: output part type {other:?} is not input_text or input_image"
                    )),
                }
            }
        }
        _ => problems.push(format!(
            "input[{i}]: `output` must be a string or a non-empty array of parts"
        )),
    }
}

fn check_input_image(at: &str, part: &Value, problems: &mut Vec<String>) {
    match part.get("image_url").and_then(Value::as_str) {
        Some(url) => super::images::check_data_url(at, url, problems),
        None => problems.push(format!("{at}: an input_image needs an `image_url` string")),
    }
}

fn check_tools(tools: &Value, problems: &mut Vec<String>) {
    let Some(tools) = tools.as_array() else {
        problems.push("`tools` must be an array".to_owned());
        return;
    };
    let mut seen = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            problems.push(format!("tools[{i}]: `type` must be \"function\""));
        }
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
        if !tool.get("parameters").is_some_and(Value::is_object) {
            problems.push(format!(
                "tools[{i}]: `parameters` must be a JSON Schema object"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_needs_an_output_with_its_call_id() {
        let body = json!({ "model": "m", "stream": true, "input": [
            { "role": "user", "content": [{ "type": "input_text", "text": "hi" }] },
            { "type": "function_call", "call_id": "c1", "name": "read_file", "arguments": "{}" },
            { "type": "function_call", "call_id": "c2", "name": "read_file", "arguments": "{" },
            { "type": "function_call_output", "call_id": "c1", "output": "ok" },
            { "type": "function_call_output", "call_id": "c9", "output": "?" },
            { "type": "message", "role": "assistant", "content": [{ "type": "input_text", "text": "x" }] },
        ] });
        let problems = validate(&body);
        for needle in [
            "No tool output found for function call c2",
            "call_id c9",
            "JSON object",
            "not allowed",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
    }
}
