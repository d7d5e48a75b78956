//! The request body of OpenAI Chat Completions, serialised directly from the
//! shared message types through borrowed structs (no intermediate JSON tree).

use std::borrow::Cow;

use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{Message, Role, ToolCall, ToolDefinition, ToolResult};
use serde::Serialize;
use serde_json::value::RawValue;

use openheim_config::Thinking;

use crate::error::LlmError;
use crate::provider::{Conversation, content};

/// How a provider wants a few fields spelled.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyOptions {
    /// Ask for a final usage chunk (`stream_options.include_usage`).
    pub stream_options: bool,
    /// OpenAI itself wants `max_completion_tokens`; compatible servers only
    /// know the older `max_tokens`.
    pub max_completion_tokens: bool,
    /// The provider's configured `max_tokens`, used when the request sets none.
    pub default_max_tokens: Option<u32>,
    /// How hard to reason (`reasoning_effort`; nothing is sent when off).
    pub thinking: Thinking,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        content: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Serialize)]
struct ImageUrl {
    url: String,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    parameters: &'a RawValue,
}

/// Encodes the JSON body of a streaming chat completion.
pub(super) fn encode(
    model: &str,
    conversation: &Conversation,
    options: BodyOptions,
) -> Result<Vec<u8>, LlmError> {
    let mut messages = Vec::with_capacity(conversation.messages.len() + 1);
    if !conversation.system_prompt.is_empty() {
        messages.push(WireMessage::System {
            content: &conversation.system_prompt,
        });
    }
    let mut attached = Vec::new();
    for message in &conversation.messages {
        push_message(message, &mut messages, &mut attached);
    }
    flush_attached(&mut attached, &mut messages);
    let max_tokens = conversation.max_tokens.or(options.default_max_tokens);
    let body = ChatRequest {
        model,
        messages,
        tools: tools(&conversation.tools)?,
        stream: true,
        stream_options: options.stream_options.then_some(StreamOptions {
            include_usage: true,
        }),
        max_tokens: max_tokens.filter(|_| !options.max_completion_tokens),
        max_completion_tokens: max_tokens.filter(|_| options.max_completion_tokens),
        temperature: conversation.temperature,
        reasoning_effort: options.thinking.effort().map(|e| e.as_str()),
    };
    content::to_json(&body)
}

fn tools(definitions: &[ToolDefinition]) -> Result<Vec<WireTool<'_>>, LlmError> {
    definitions
        .iter()
        .map(|tool| {
            Ok(WireTool {
                kind: "function",
                function: WireFunction {
                    name: &tool.name,
                    description: &tool.description,
                    parameters: content::tool_schema(tool)?,
                },
            })
        })
        .collect()
}

/// Appends the wire messages for one shared message. Tool results become
/// `tool` messages wherever they appear, so Anthropic-style histories (results
/// inside a user message) also map; thinking is not sent back, since Chat
/// Completions has no field for it.
///
/// A `tool` message takes text only, so the images of tool results collect
/// in `attached` and go out as one user message after the run of `tool`
/// messages (each labelled with its call id), before the next message.
fn push_message<'a>(
    message: &'a Message,
    out: &mut Vec<WireMessage<'a>>,
    attached: &mut Vec<Part<'a>>,
) {
    let is_tool = message.role() == Role::Tool;
    if !is_tool {
        flush_attached(attached, out);
    }
    let blocks = content::blocks(message);
    for block in blocks.clone() {
        if let Block::ToolResult(result) = block {
            push_tool_result(result, out, attached);
        }
    }
    if !is_tool {
        flush_attached(attached, out);
    }
    match message.role() {
        Role::Tool => {}
        Role::Assistant => push_assistant(blocks, out),
        // An unspecified role is treated as the user's, the only author
        // left once assistant and tool are excluded.
        Role::User | Role::Unspecified => {
            let parts: Vec<Part<'a>> = blocks
                .filter_map(|b| match b {
                    Block::Text(text) => Some(Part::Text {
                        text: Cow::Borrowed(text),
                    }),
                    Block::Image(image) => Some(Part::ImageUrl {
                        image_url: ImageUrl {
                            url: content::data_url(image),
                        },
                    }),
                    Block::Thinking(_) | Block::ToolCall(_) | Block::ToolResult(_) => None,
                })
                .collect();
            push_user(parts, out);
        }
    }
}

/// A tool result as a `tool` message; its images (which a `tool` message
/// cannot carry) wait in `attached` for the user message that follows.
fn push_tool_result<'a>(
    result: &'a ToolResult,
    out: &mut Vec<WireMessage<'a>>,
    attached: &mut Vec<Part<'a>>,
) {
    out.push(WireMessage::Tool {
        tool_call_id: &result.tool_call_id,
        content: &result.content,
    });
    if result.images.is_empty() {
        return;
    }
    attached.push(Part::Text {
        text: Cow::Owned(content::tool_images_label(&result.tool_call_id)),
    });
    attached.extend(result.images.iter().map(|image| Part::ImageUrl {
        image_url: ImageUrl {
            url: content::data_url(image),
        },
    }));
}

/// An assistant message: its texts joined, and its tool calls; nothing
/// when it has neither (a reply of thinking only).
fn push_assistant<'a>(
    blocks: impl Iterator<Item = &'a Block> + Clone,
    out: &mut Vec<WireMessage<'a>>,
) {
    let texts: Vec<&str> = blocks
        .clone()
        .filter_map(|b| match b {
            Block::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let tool_calls: Vec<WireToolCall<'a>> = blocks
        .filter_map(|b| match b {
            Block::ToolCall(call) => Some(tool_call(call)),
            _ => None,
        })
        .collect();
    let content = match texts.as_slice() {
        [] => None,
        [one] => Some(Cow::Borrowed(*one)),
        many => Some(Cow::Owned(many.concat())),
    };
    if content.is_some() || !tool_calls.is_empty() {
        out.push(WireMessage::Assistant {
            content,
            tool_calls,
        });
    }
}

/// A user message of `parts`: plain text when that is all it is.
fn push_user<'a>(mut parts: Vec<Part<'a>>, out: &mut Vec<WireMessage<'a>>) {
    let content = match parts.as_mut_slice() {
        [] => return,
        [Part::Text { text }] => UserContent::Text(std::mem::take(text)),
        _ => UserContent::Parts(parts),
    };
    out.push(WireMessage::User { content });
}

/// Sends the collected tool-result images as one user message.
fn flush_attached<'a>(attached: &mut Vec<Part<'a>>, out: &mut Vec<WireMessage<'a>>) {
    if !attached.is_empty() {
        push_user(std::mem::take(attached), out);
    }
}

fn tool_call(call: &ToolCall) -> WireToolCall<'_> {
    WireToolCall {
        id: &call.id,
        kind: "function",
        function: WireFunctionCall {
            name: &call.name,
            arguments: content::arguments_text(&call.arguments_json),
        },
    }
}

#[cfg(test)]
mod tests {
    use openheim_proto::common::v1::{ContentBlock, Image, ToolResult};
    use serde_json::{Value, json};

    use super::*;

    fn block(block: Block) -> ContentBlock {
        ContentBlock { block: Some(block) }
    }

    fn message(role: Role, blocks: Vec<Block>) -> Message {
        Message {
            role: role.into(),
            content: blocks.into_iter().map(block).collect(),
        }
    }

    fn encode_json(conversation: &Conversation, options: BodyOptions) -> Value {
        serde_json::from_slice(&encode("m", conversation, options).unwrap()).unwrap()
    }

    const OPENAI: BodyOptions = BodyOptions {
        stream_options: true,
        max_completion_tokens: true,
        default_max_tokens: None,
        thinking: Thinking::Off,
    };

    fn conversation() -> Conversation {
        Conversation {
            system_prompt: "be brief".into(),
            messages: vec![
                message(
                    Role::User,
                    vec![
                        Block::Text("what is in".into()),
                        Block::Image(Image {
                            mime_type: "image/png".into(),
                            data: vec![1, 2, 3],
                        }),
                    ],
                ),
                message(
                    Role::Assistant,
                    vec![
                        Block::Thinking(Default::default()),
                        Block::Text("Let me look.".into()),
                        Block::ToolCall(ToolCall {
                            id: "call_1".into(),
                            name: "read_file".into(),
                            arguments_json: r#"{"path":"a"}"#.into(),
                        }),
                        Block::ToolCall(ToolCall {
                            id: "call_2".into(),
                            name: "list_dir".into(),
                            arguments_json: String::new(),
                        }),
                    ],
                ),
                message(
                    Role::Tool,
                    vec![Block::ToolResult(ToolResult {
                        tool_call_id: "call_1".into(),
                        content: "hello".into(),
                        is_error: false,
                        images: vec![Image {
                            mime_type: "image/gif".into(),
                            data: vec![4, 5, 6],
                        }],
                    })],
                ),
                message(
                    Role::Tool,
                    vec![Block::ToolResult(ToolResult {
                        tool_call_id: "call_2".into(),
                        content: "a\nb".into(),
                        is_error: true,
                        images: Vec::new(),
                    })],
                ),
                message(Role::User, vec![Block::Text("thanks".into())]),
            ],
            tools: vec![ToolDefinition {
                name: "read_file".into(),
                description: "Read a file.".into(),
                input_schema_json: r#"{"type":"object","properties":{"path":{"type":"string"}}}"#
                    .into(),
                ..Default::default()
            }],
            max_tokens: Some(100),
            temperature: None,
            thinking: None,
        }
    }

    #[test]
    fn maps_a_whole_conversation() {
        let body = encode_json(&conversation(), OPENAI);
        assert_eq!(
            body,
            json!({
                "model": "m",
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_completion_tokens": 100,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is in"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AQID"}}
                    ]},
                    {"role": "assistant", "content": "Let me look.", "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}},
                        {"id": "call_2", "type": "function",
                         "function": {"name": "list_dir", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "hello"},
                    {"role": "tool", "tool_call_id": "call_2", "content": "a\nb"},
                    // Tool messages take text only: the image follows them.
                    {"role": "user", "content": [
                        {"type": "text", "text": "Images returned by tool call call_1:"},
                        {"type": "image_url", "image_url": {"url": "data:image/gif;base64,BAUG"}}
                    ]},
                    {"role": "user", "content": "thanks"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "read_file",
                    "description": "Read a file.",
                    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}
                }}]
            })
        );
    }

    #[test]
    fn compatible_spelling_and_defaults() {
        let mut c = conversation();
        c.max_tokens = None;
        c.temperature = Some(0.5);
        c.tools[0].input_schema_json = String::new();
        let options = BodyOptions {
            stream_options: false,
            max_completion_tokens: false,
            default_max_tokens: Some(42),
            thinking: Thinking::Off,
        };
        let body = encode_json(&c, options);
        assert_eq!(body["max_tokens"], 42);
        assert!(body.get("max_completion_tokens").is_none());
        assert!(body.get("stream_options").is_none());
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(
            body["tools"][0]["function"]["parameters"],
            json!({"type": "object", "properties": {}})
        );
    }

    #[test]
    fn tool_results_inside_user_messages_become_tool_messages() {
        let c = Conversation {
            messages: vec![message(
                Role::User,
                vec![Block::ToolResult(ToolResult {
                    tool_call_id: "t".into(),
                    content: "r".into(),
                    is_error: false,
                    images: Vec::new(),
                })],
            )],
            ..Default::default()
        };
        let body = encode_json(&c, OPENAI);
        assert_eq!(
            body["messages"],
            json!([{"role": "tool", "tool_call_id": "t", "content": "r"}])
        );
    }

    #[test]
    fn an_invalid_tool_schema_is_reported() {
        let mut c = conversation();
        c.tools[0].input_schema_json = "{not json".into();
        let err = encode("m", &c, OPENAI).unwrap_err().to_string();
        assert!(
            err.contains("tool \"read_file\" has an invalid input schema"),
            "{err}"
        );
    }
}
