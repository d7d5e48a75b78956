//! Checks that a chat-completions request is one the real OpenAI API would accept.
//!
//! The mock is only useful if it is stricter than the providers it stands in for: a client bug
//! that a lenient mock lets through would only show up in production.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Longest tool name the API accepts.
const MAX_TOOL_NAME_LEN: usize = 64;

const KNOWN_ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

/// Returns one human-readable message per problem found in `body`; empty means valid.
pub(crate) fn validate_chat_request(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(request) = body.as_object() else {
        problems.push("request body is not a JSON object".to_owned());
        return problems;
    };
    match request.get("model").and_then(Value::as_str) {
        Some(model) if !model.is_empty() => {}
        _ => problems.push("`model` must be a non-empty string".to_owned()),
    }
    if request.get("stream") != Some(&Value::Bool(true)) {
        problems.push("`stream` must be true (the mock only speaks streaming)".to_owned());
    }
    match request.get("messages").and_then(Value::as_array) {
        Some(messages) if !messages.is_empty() => check_messages(messages, &mut problems),
        _ => problems.push("`messages` must be a non-empty array".to_owned()),
    }
    if let Some(tools) = request.get("tools") {
        check_tools(tools, &mut problems);
    }
    problems
}

/// Tracks the tool calls of the latest assistant message that tool messages may still answer.
struct OpenToolCalls {
    assistant_index: usize,
    ids: Vec<String>,
    answered: HashSet<String>,
}

impl OpenToolCalls {
    /// Reports every call that got no answer before the history moved on.
    fn close(self, problems: &mut Vec<String>, why: &str) {
        for id in self.ids.iter().filter(|id| !self.answered.contains(*id)) {
            problems.push(format!(
                "messages[{}]: tool call `{id}` is not answered by a tool message {why}",
                self.assistant_index
            ));
        }
    }
}

fn check_messages(messages: &[Value], problems: &mut Vec<String>) {
    let mut open: Option<OpenToolCalls> = None;
    for (i, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            problems.push(format!("messages[{i}] is not an object"));
            continue;
        };
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if !KNOWN_ROLES.contains(&role) {
            problems.push(format!("messages[{i}]: unknown role {role:?}"));
            continue;
        }
        if role == "tool" {
            check_tool_message(i, message, open.as_mut(), problems);
            continue;
        }
        // Any non-tool message ends the window in which the previous calls could be answered.
        if let Some(previous) = open.take() {
            previous.close(problems, "before the next non-tool message");
        }
        match role {
            "system" => {
                if i != 0 {
                    problems.push(format!(
                        "messages[{i}]: a system message must be the first message"
                    ));
                }
                check_has_content(i, message, problems);
            }
            "user" => {
                check_has_content(i, message, problems);
                check_parts(i, message, &["text", "image_url"], problems);
            }
            _ => open = check_assistant_message(i, message, problems),
        }
    }
    if let Some(previous) = open {
        previous.close(problems, "(the history ends with unanswered tool calls)");
    }
}

fn check_has_content(i: usize, message: &Map<String, Value>, problems: &mut Vec<String>) {
    match message.get("content") {
        Some(Value::String(_) | Value::Array(_)) => {}
        _ => problems.push(format!(
            "messages[{i}]: `content` must be a string or an array of parts"
        )),
    }
}

/// Validates an assistant message and returns its tool calls, which the following tool
/// messages must answer.
fn check_assistant_message(
    i: usize,
    message: &Map<String, Value>,
    problems: &mut Vec<String>,
) -> Option<OpenToolCalls> {
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(calls)) => calls.as_slice(),
        Some(_) => {
            problems.push(format!("messages[{i}]: `tool_calls` must be an array"));
            &[][..]
        }
    };
    let has_content = matches!(
        message.get("content"),
        Some(Value::String(_) | Value::Array(_))
    );
    if calls.is_empty() && !has_content {
        problems.push(format!(
            "messages[{i}]: an assistant message needs `content` or `tool_calls`"
        ));
    }
    if calls.is_empty() {
        return None;
    }
    let mut ids = Vec::new();
    for (j, call) in calls.iter().enumerate() {
        let at = format!("messages[{i}].tool_calls[{j}]");
        if let Some(id) = check_tool_call(&at, call, problems) {
            if ids.contains(&id) {
                problems.push(format!("{at}: duplicate tool call id `{id}`"));
            } else {
                ids.push(id);
            }
        }
    }
    Some(OpenToolCalls {
        assistant_index: i,
        ids,
        answered: HashSet::new(),
    })
}

/// Validates one assistant tool-call entry and returns its id when it has one.
fn check_tool_call(at: &str, call: &Value, problems: &mut Vec<String>) -> Option<String> {
    let id = call.get("id").and_then(Value::as_str).unwrap_or("");
    if id.is_empty() {
        problems.push(format!("{at}: `id` must be a non-empty string"));
    }
    if call.get("type").and_then(Value::as_str) != Some("function") {
        problems.push(format!("{at}: `type` must be \"function\""));
    }
    let function = call.get("function");
    let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
    if !name.is_some_and(is_valid_tool_name) {
        problems.push(format!(
            "{at}: `function.name` {name:?} is not a valid tool name"
        ));
    }
    match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(arguments)) => match serde_json::from_str::<Value>(arguments) {
            Ok(Value::Object(_)) => {}
            Ok(_) => problems.push(format!(
                "{at}: `function.arguments` must encode a JSON object, got {arguments:?}"
            )),
            Err(e) => problems.push(format!(
                "{at}: `function.arguments` is not valid JSON ({e}): {arguments:?}"
            )),
        },
        _ => problems.push(format!(
            "{at}: `function.arguments` must be a string holding JSON"
        )),
    }
    (!id.is_empty()).then(|| id.to_owned())
}

/// Checks the parts of an array `content`: each of an allowed type, images
/// as data URLs of well-formed images.
fn check_parts(
    i: usize,
    message: &Map<String, Value>,
    allowed: &[&str],
    problems: &mut Vec<String>,
) {
    let Some(Value::Array(parts)) = message.get("content") else {
        return;
    };
    for (j, part) in parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some(kind) if !allowed.contains(&kind) => problems.push(format!(
                "{at}: part type {kind:?} is not allowed here (allowed: {allowed:?})"
            )),
            Some("text") if !part.get("text").is_some_and(Value::is_string) => {
                problems.push(format!("{at}: a text part needs a `text` string"));
            }
            Some("image_url") => match part.pointer("/image_url/url").and_then(Value::as_str) {
                Some(url) => super::images::check_data_url(&at, url, problems),
                None => problems.push(format!("{at}: an image_url part needs `image_url.url`")),
            },
            Some(_) => {}
            None => problems.push(format!("{at}: a part needs a `type`")),
        }
    }
}

fn check_tool_message(
    i: usize,
    message: &Map<String, Value>,
    open: Option<&mut OpenToolCalls>,
    problems: &mut Vec<String>,
) {
    check_has_content(i, message, problems);
    // The API takes text parts only in tool messages: images must travel in
    // a user message.
    check_parts(i, message, &["text"], problems);
    let Some(id) = message.get("tool_call_id").and_then(Value::as_str) else {
        problems.push(format!(
            "messages[{i}]: a tool message needs a string `tool_call_id`"
        ));
        return;
    };
    let Some(open) = open else {
        problems.push(format!(
            "messages[{i}]: tool message for `{id}` answers no tool call of the preceding \
             assistant message"
        ));
        return;
    };
    if !open.ids.iter().any(|known| known == id) {
        problems.push(format!(
            "messages[{i}]: tool message for `{id}` answers no tool call of messages[{}]",
            open.assistant_index
        ));
    } else if !open.answered.insert(id.to_owned()) {
        problems.push(format!(
            "messages[{i}]: tool call `{id}` is answered more than once"
        ));
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
        let Some(function) = tool.get("function").and_then(Value::as_object) else {
            problems.push(format!("tools[{i}]: `function` must be an object"));
            continue;
        };
        match function.get("name").and_then(Value::as_str) {
            Some(name) if is_valid_tool_name(name) => {
                if !seen.insert(name) {
                    problems.push(format!("tools[{i}]: duplicate tool name `{name}`"));
                }
            }
            name => problems.push(format!(
                "tools[{i}]: name {name:?} must match ^[a-zA-Z0-9_-]{{1,64}}$"
            )),
        }
        if !function.get("description").is_some_and(Value::is_string) {
            problems.push(format!(
                "tools[{i}]: `function.description` must be a string"
            ));
        }
        if !function.get("parameters").is_some_and(Value::is_object) {
            problems.push(format!(
                "tools[{i}]: `function.parameters` must be a JSON Schema object"
            ));
        }
    }
}

/// The API's tool-name rule, `^[a-zA-Z0-9_-]{1,64}$`, without pulling in a regex engine.
pub(crate) fn is_valid_tool_name(name: &str) -> bool {
    (1..=MAX_TOOL_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(messages: Value) -> Value {
        json!({ "model": "gpt-test", "stream": true, "messages": messages })
    }

    fn call(id: &str) -> Value {
        json!({ "id": id, "type": "function", "function": { "name": "read_file", "arguments": "{}" } })
    }

    #[test]
    fn valid_tool_round_trip_passes() {
        let body = request(json!([
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": "hi" },
            { "role": "assistant", "content": null, "tool_calls": [call("a"), call("b")] },
            { "role": "tool", "tool_call_id": "b", "content": "2" },
            { "role": "tool", "tool_call_id": "a", "content": "1" },
            { "role": "assistant", "content": "done" },
            { "role": "user", "content": "again" },
        ]));
        assert_eq!(validate_chat_request(&body), Vec::<String>::new());
    }

    #[test]
    fn late_system_message_and_unknown_role_are_reported() {
        let body = request(json!([
            { "role": "user", "content": "hi" },
            { "role": "system", "content": "late" },
            { "role": "developer", "content": "?" },
        ]));
        let problems = validate_chat_request(&body);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn tool_answer_after_user_message_is_rejected() {
        let body = request(json!([
            { "role": "user", "content": "hi" },
            { "role": "assistant", "tool_calls": [call("a")] },
            { "role": "user", "content": "interrupt" },
            { "role": "tool", "tool_call_id": "a", "content": "1" },
        ]));
        let problems = validate_chat_request(&body);
        assert!(
            problems.iter().any(|p| p.contains("not answered")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("answers no tool call")),
            "{problems:?}"
        );
    }

    #[test]
    fn duplicate_answer_and_bad_arguments_are_rejected() {
        let mut bad = call("a");
        bad["function"]["arguments"] = json!("{\"path\":");
        let body = request(json!([
            { "role": "user", "content": "hi" },
            { "role": "assistant", "tool_calls": [bad] },
            { "role": "tool", "tool_call_id": "a", "content": "1" },
            { "role": "tool", "tool_call_id": "a", "content": "1" },
        ]));
        let problems = validate_chat_request(&body);
        assert!(
            problems.iter().any(|p| p.contains("not valid JSON")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("more than once")),
            "{problems:?}"
        );
    }

    #[test]
    fn images_must_be_well_formed_and_stay_out_of_tool_messages() {
        let png = "data:image/png;base64,iVBORw0KGgoAAAA=";
        let image = |url: &str| json!({ "type": "image_url", "image_url": { "url": url } });
        let body = request(json!([
            { "role": "user", "content": [{ "type": "text", "text": "see" }, image(png)] },
            { "role": "assistant", "tool_calls": [call("a")] },
            { "role": "tool", "tool_call_id": "a", "content": [image(png)] },
            { "role": "user", "content": [image("data:image/jpeg;base64,iVBORw0KGgoAAAA=")] },
        ]));
        let problems = validate_chat_request(&body);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("messages[2].content[0]: part type \"image_url\" is not allowed")
        );
        assert!(problems[1].contains("declared as image/jpeg but its bytes are image/png"));
    }

    #[test]
    fn tools_are_checked() {
        let tool = |name: &str| {
            json!({ "type": "function", "function": {
                "name": name, "description": "d", "parameters": { "type": "object" } } })
        };
        let mut body = request(json!([{ "role": "user", "content": "hi" }]));
        body["tools"] = json!([
            tool("ok_name-1"),
            tool("ok_name-1"),
            tool("bad.name"),
            tool("")
        ]);
        let problems = validate_chat_request(&body);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn missing_model_and_stream_are_reported() {
        let problems = validate_chat_request(&json!({ "messages": [] }));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(is_valid_tool_name(&"a".repeat(64)));
        assert!(!is_valid_tool_name(&"a".repeat(65)));
    }
}
