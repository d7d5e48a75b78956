//! The wire formats the mock speaks, and format-aware reading of the requests it records:
//! the system prompt, the offered tools, the last tool result and the last user text mean
//! the same thing in every format but live in different places.

use serde_json::{Value, json};

/// A provider API the mock emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    Chat,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
    /// Google Gemini (`POST /v1beta/models/{model}:streamGenerateContent?alt=sse`).
    Gemini,
    /// OpenAI Responses (`POST /v1/responses`).
    Responses,
}

impl Wire {
    /// The format a request path belongs to.
    pub fn from_path(path: &str) -> Option<Wire> {
        if path.ends_with("/chat/completions") {
            Some(Wire::Chat)
        } else if path.ends_with("/messages") {
            Some(Wire::Anthropic)
        } else if path.contains("/models/") && path.contains(':') {
            Some(Wire::Gemini)
        } else if path.ends_with("/responses") {
            Some(Wire::Responses)
        } else {
            None
        }
    }
}

/// An error answer in the format's own shape.
pub(crate) fn error_body(wire: Wire, status: u16, message: &str, openai_type: &str) -> Value {
    match wire {
        Wire::Chat | Wire::Responses => {
            let code = (status == 401).then_some("invalid_api_key");
            json!({ "error": { "message": message, "type": openai_type, "param": null, "code": code } })
        }
        Wire::Anthropic => {
            let kind = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500.. => "api_error",
                _ => "invalid_request_error",
            };
            json!({ "type": "error", "error": { "type": kind, "message": message } })
        }
        Wire::Gemini => {
            let code = match status {
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                500.. => "INTERNAL",
                _ => "INVALID_ARGUMENT",
            };
            json!({ "error": { "code": status, "message": message, "status": code } })
        }
    }
}

/// The text of a content value: a string, or the `text` of its parts joined.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn array<'a>(body: &'a Value, key: &str) -> &'a [Value] {
    body.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The system prompt (Chat system message, Anthropic `system`, Gemini
/// `systemInstruction`, Responses `instructions`).
pub(crate) fn system_prompt(wire: Wire, body: &Value) -> Option<String> {
    match wire {
        Wire::Chat => array(body, "messages")
            .iter()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("system"))
            .map(|m| content_text(m.get("content").unwrap_or(&Value::Null))),
        Wire::Anthropic => body.get("system").map(content_text),
        Wire::Gemini => body.pointer("/systemInstruction/parts").map(content_text),
        Wire::Responses => body
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// The names of the tools offered, in order.
pub(crate) fn tool_names(wire: Wire, body: &Value) -> Vec<String> {
    let tools = array(body, "tools");
    let names: Vec<Option<&str>> = match wire {
        Wire::Chat => tools
            .iter()
            .map(|t| t.pointer("/function/name").and_then(Value::as_str))
            .collect(),
        Wire::Anthropic | Wire::Responses => tools
            .iter()
            .map(|t| t.get("name").and_then(Value::as_str))
            .collect(),
        Wire::Gemini => tools
            .iter()
            .flat_map(|t| array(t, "functionDeclarations"))
            .map(|d| d.get("name").and_then(Value::as_str))
            .collect(),
    };
    names.into_iter().flatten().map(str::to_owned).collect()
}

/// The content of the last tool result of a request body, whatever its format.
pub(crate) fn last_tool_result(body: &Value) -> Option<String> {
    let chat = || {
        array(body, "messages")
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
            .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
    };
    let anthropic = || {
        array(body, "messages")
            .iter()
            .rev()
            .flat_map(|m| array(m, "content").iter().rev())
            .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .map(|b| content_text(b.get("content").unwrap_or(&Value::Null)))
    };
    let gemini = || {
        array(body, "contents")
            .iter()
            .rev()
            .flat_map(|c| array(c, "parts").iter().rev())
            .find_map(|p| p.pointer("/functionResponse/response"))
            .map(|r| match r.get("content").or_else(|| r.get("error")) {
                Some(Value::String(s)) => s.clone(),
                _ => r.to_string(),
            })
    };
    let responses = || {
        array(body, "input")
            .iter()
            .rev()
            .find(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"))
            .map(|i| content_text(i.get("output").unwrap_or(&Value::Null)))
    };
    chat().or_else(anthropic).or_else(gemini).or_else(responses)
}

/// The text of the last user message (tool results excluded).
pub(crate) fn last_user_text(wire: Wire, body: &Value) -> Option<String> {
    let is = |v: &Value, key: &str, want: &str| v.get(key).and_then(Value::as_str) == Some(want);
    let text_of_parts = |parts: &[Value]| -> String {
        parts
            .iter()
            .filter(|p| p.get("functionResponse").is_none() && !is(p, "type", "tool_result"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()
    };
    let found = match wire {
        Wire::Chat => array(body, "messages")
            .iter()
            .rev()
            .find(|m| is(m, "role", "user"))
            .map(|m| content_text(m.get("content").unwrap_or(&Value::Null))),
        Wire::Anthropic => array(body, "messages")
            .iter()
            .rev()
            .find(|m| is(m, "role", "user"))
            .map(|m| match m.get("content") {
                Some(Value::Array(blocks)) => text_of_parts(blocks),
                other => content_text(other.unwrap_or(&Value::Null)),
            }),
        Wire::Gemini => array(body, "contents")
            .iter()
            .rev()
            .find(|c| is(c, "role", "user"))
            .map(|c| text_of_parts(array(c, "parts"))),
        Wire::Responses => array(body, "input")
            .iter()
            .rev()
            .find(|i| is(i, "role", "user"))
            .map(|i| content_text(i.get("content").unwrap_or(&Value::Null))),
    };
    found.filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_format() {
        assert_eq!(Wire::from_path("/v1/chat/completions"), Some(Wire::Chat));
        assert_eq!(Wire::from_path("/chat/completions"), Some(Wire::Chat));
        assert_eq!(Wire::from_path("/v1/messages"), Some(Wire::Anthropic));
        assert_eq!(
            Wire::from_path("/v1beta/models/m:streamGenerateContent"),
            Some(Wire::Gemini)
        );
        assert_eq!(Wire::from_path("/v1/responses"), Some(Wire::Responses));
        assert_eq!(Wire::from_path("/v1/embeddings"), None);
    }

    #[test]
    fn tool_results_are_found_in_every_format() {
        let anthropic = json!({ "messages": [{ "role": "user", "content": [
            { "type": "tool_result", "tool_use_id": "t", "content": "A" }] }] });
        let gemini = json!({ "contents": [{ "role": "user", "parts": [
            { "functionResponse": { "name": "f", "response": { "content": "G" } } }] }] });
        let responses = json!({ "input": [
            { "type": "function_call_output", "call_id": "c", "output": "R" }] });
        let chat = json!({ "messages": [{ "role": "tool", "tool_call_id": "c", "content": "C" }] });
        for (body, want) in [
            (anthropic, "A"),
            (gemini, "G"),
            (responses, "R"),
            (chat, "C"),
        ] {
            assert_eq!(last_tool_result(&body).as_deref(), Some(want));
        }
    }
}
