//! Rendering of a scripted reply as OpenAI Chat Completions stream chunks.

use serde::Serialize;
use serde_json::{Value, json};

use super::reply::{
    ARGUMENT_FRAGMENT_BYTES, CONTENT_PIECE_BYTES, CREATED, DEFAULT_USAGE, StreamPlan,
    split_at_char_boundaries,
};

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice>,
    /// `None` omits the field; `Some(None)` sends `"usage":null`, which the real API puts on
    /// every content chunk when usage was requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageWire>>,
}

/// The usage object in the API's field order (structs, unlike `json!`, keep it).
#[derive(Serialize, Clone, Copy)]
struct UsageWire {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
}

#[derive(Serialize, Clone, Copy)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct Choice {
    index: u32,
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Serialize, Default)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `Some(Value::Null)` sends `"content":null`, as the API does on tool-call-only replies.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Serialize)]
struct ToolCallDelta {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta,
}

#[derive(Serialize)]
struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    arguments: String,
}

impl Delta {
    /// The first delta of a reply, announcing the assistant role.
    fn opening(content: Value) -> Self {
        Delta {
            role: Some("assistant"),
            content: Some(content),
            tool_calls: None,
        }
    }

    fn content(piece: &str) -> Self {
        Delta {
            content: Some(Value::String(piece.to_owned())),
            ..Delta::default()
        }
    }

    fn tool_call(call: ToolCallDelta) -> Self {
        Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        }
    }
}

impl ToolCallDelta {
    /// The first chunk of a call: id, type and name, with empty arguments.
    fn header(index: usize, id: &str, name: &str) -> Self {
        ToolCallDelta {
            index,
            id: Some(id.to_owned()),
            kind: Some("function"),
            function: FunctionDelta {
                name: Some(name.to_owned()),
                arguments: String::new(),
            },
        }
    }

    /// A later chunk of a call, carrying only the next piece of its arguments.
    fn fragment(index: usize, arguments: &str) -> Self {
        ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: FunctionDelta {
                name: None,
                arguments: arguments.to_owned(),
            },
        }
    }
}

impl StreamPlan<'_> {
    /// Renders the full list of Chat Completions SSE events (each `data: …\n\n`), `[DONE]`
    /// included. Chat Completions has no thinking; a stream error replaces the finish chunk,
    /// the usage chunk and `[DONE]` with an error chunk, as OpenAI sends mid-stream failures.
    pub(crate) fn chat_events(&self) -> Vec<String> {
        let default_finish = if self.tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        let finish = self.finish_reason.unwrap_or(default_finish).to_owned();
        let per_chunk_usage = self.include_usage.then_some(None);
        let mut events: Vec<String> = self
            .deltas()
            .into_iter()
            .map(|delta| self.event(delta, None, per_chunk_usage))
            .collect();
        if let Some(message) = self.stream_error {
            let error = json!({ "error": {
                "message": message, "type": "server_error", "param": null, "code": null } });
            events.push(format!("data: {error}\n\n"));
            return events;
        }
        events.push(self.event(Delta::default(), Some(finish), per_chunk_usage));
        if self.include_usage {
            events.push(self.usage_event());
        }
        events.push("data: [DONE]\n\n".to_owned());
        events
    }

    /// The deltas before the finish chunk: role, text pieces, then each call's header and its
    /// argument fragments.
    fn deltas(&self) -> Vec<Delta> {
        let mut deltas = Vec::new();
        if let Some(text) = self.text {
            deltas.push(Delta::opening(Value::String(String::new())));
            for piece in split_at_char_boundaries(text, CONTENT_PIECE_BYTES) {
                deltas.push(Delta::content(piece));
            }
        }
        for (index, (id, call)) in self.tool_calls.iter().enumerate() {
            let header = ToolCallDelta::header(index, id, &call.name);
            if deltas.is_empty() {
                // The real API folds the role into the first tool-call chunk when there is no
                // text, with `"content":null`.
                let mut opening = Delta::opening(Value::Null);
                opening.tool_calls = Some(vec![header]);
                deltas.push(opening);
            } else {
                deltas.push(Delta::tool_call(header));
            }
            for fragment in split_at_char_boundaries(&call.arguments, ARGUMENT_FRAGMENT_BYTES) {
                deltas.push(Delta::tool_call(ToolCallDelta::fragment(index, fragment)));
            }
        }
        if deltas.is_empty() {
            // An empty reply still announces the assistant role, as the API always does.
            deltas.push(Delta::opening(Value::String(String::new())));
        }
        deltas
    }

    fn event(
        &self,
        delta: Delta,
        finish_reason: Option<String>,
        usage: Option<Option<UsageWire>>,
    ) -> String {
        self.render(Chunk {
            id: self.completion_id,
            object: "chat.completion.chunk",
            created: CREATED,
            model: self.model,
            choices: vec![Choice {
                index: 0,
                delta,
                finish_reason,
            }],
            usage,
        })
    }

    fn usage_event(&self) -> String {
        let usage = self.usage.unwrap_or(DEFAULT_USAGE);
        self.render(Chunk {
            id: self.completion_id,
            object: "chat.completion.chunk",
            created: CREATED,
            model: self.model,
            choices: Vec::new(),
            usage: Some(Some(UsageWire {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                total_tokens: usage.prompt_tokens + usage.completion_tokens,
                prompt_tokens_details: PromptTokensDetails {
                    cached_tokens: usage.cached_tokens,
                },
            })),
        })
    }

    fn render(&self, chunk: Chunk<'_>) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        let json = serde_json::to_string(&chunk).expect("chunk serialises");
        format!("data: {json}\n\n")
    }
}
