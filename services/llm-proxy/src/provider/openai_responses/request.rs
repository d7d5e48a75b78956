//! The request body of the OpenAI Responses API, serialised from the shared
//! message types.
//!
//! The system prompt goes into `instructions`; the history becomes `input`
//! items: user messages with `input_text` / `input_image` parts, assistant
//! text as `message` items with `output_text`, each tool call as a
//! `function_call` item and each result as a `function_call_output` with
//! the same `call_id`. Nothing is stored server-side (`store: false`), so
//! every request carries the whole conversation, like Chat Completions.
//! When the model reasons (`reasoning.effort`, with summaries), its
//! reasoning items are asked for encrypted (`include`) and replayed as
//! `reasoning` input items where the history kept them (as OpenAI records
//! in the thinking signature, see `signature`).

use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{Message, Role, ToolDefinition, ToolResult};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::LlmError;
use openheim_config::Thinking;

use crate::provider::{Conversation, content, signature};

#[derive(Serialize)]
struct ResponsesRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    instructions: &'a str,
    input: Vec<Item<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    stream: bool,
    store: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<Reasoning>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    include: Vec<&'static str>,
}

#[derive(Serialize)]
struct Reasoning {
    effort: &'static str,
    summary: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item<'a> {
    /// An encrypted reasoning item of an earlier reply, replayed.
    Reasoning {
        id: &'a str,
        encrypted_content: &'a str,
        summary: [(); 0],
    },
    Message {
        role: &'static str,
        content: Vec<Part<'a>>,
    },
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: Output<'a>,
    },
}

/// A function call's output: text, or text and images as input parts.
#[derive(Serialize)]
#[serde(untagged)]
enum Output<'a> {
    Text(&'a str),
    Parts(Vec<Part<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    InputText { text: &'a str },
    InputImage { image_url: String },
    OutputText { text: &'a str },
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    parameters: &'a RawValue,
    /// Strict mode (the default here) demands schemas our tools do not
    /// follow (every property required, no additional properties).
    strict: bool,
}

/// Encodes the JSON body of a streaming Responses request.
pub(super) fn encode(
    model: &str,
    conversation: &Conversation,
    default_max_tokens: Option<u32>,
    thinking: Thinking,
) -> Result<Vec<u8>, LlmError> {
    let mut input = Vec::with_capacity(conversation.messages.len());
    for message in &conversation.messages {
        push_items(message, &mut input);
    }
    let body = ResponsesRequest {
        model,
        instructions: &conversation.system_prompt,
        input,
        tools: tools(&conversation.tools)?,
        stream: true,
        store: false,
        max_output_tokens: conversation.max_tokens.or(default_max_tokens),
        temperature: conversation.temperature,
        reasoning: thinking.effort().map(|effort| Reasoning {
            effort: effort.as_str(),
            summary: "auto",
        }),
        include: match thinking {
            Thinking::Off => Vec::new(),
            _ => vec!["reasoning.encrypted_content"],
        },
    };
    content::to_json(&body)
}

fn tools(definitions: &[ToolDefinition]) -> Result<Vec<WireTool<'_>>, LlmError> {
    definitions
        .iter()
        .map(|tool| {
            Ok(WireTool {
                kind: "function",
                name: &tool.name,
                description: &tool.description,
                parameters: content::tool_schema(tool)?,
                strict: false,
            })
        })
        .collect()
}

/// Appends the items of one shared message, in the order of its blocks.
fn push_items<'a>(message: &'a Message, out: &mut Vec<Item<'a>>) {
    let assistant = message.role() == Role::Assistant;
    let mut parts = Vec::new();
    for block in content::blocks(message) {
        match block {
            Block::Text(text) if text.is_empty() => {}
            Block::Text(text) if assistant => parts.push(Part::OutputText { text }),
            Block::Text(text) => parts.push(Part::InputText { text }),
            Block::Image(image) if !assistant => parts.push(Part::InputImage {
                image_url: content::data_url(image),
            }),
            Block::ToolCall(call) => {
                flush(assistant, &mut parts, out);
                out.push(Item::FunctionCall {
                    call_id: &call.id,
                    name: &call.name,
                    arguments: content::arguments_text(&call.arguments_json),
                });
            }
            Block::ToolResult(result) => {
                flush(assistant, &mut parts, out);
                out.push(Item::FunctionCallOutput {
                    call_id: &result.tool_call_id,
                    output: output(result),
                });
            }
            Block::Thinking(thinking) if assistant => {
                for (id, encrypted_content) in signature::openai_items(&thinking.signature) {
                    flush(assistant, &mut parts, out);
                    out.push(Item::Reasoning {
                        id,
                        encrypted_content,
                        summary: [],
                    });
                }
            }
            Block::Image(_) | Block::Thinking(_) => {}
        }
    }
    flush(assistant, &mut parts, out);
}

/// The output of a tool result; with images, an array of `input_text`
/// and `input_image` parts (the Responses API's multimodal output).
fn output(result: &ToolResult) -> Output<'_> {
    if result.images.is_empty() {
        return Output::Text(&result.content);
    }
    let mut parts = Vec::with_capacity(result.images.len() + 1);
    if !result.content.is_empty() {
        parts.push(Part::InputText {
            text: &result.content,
        });
    }
    parts.extend(result.images.iter().map(|image| Part::InputImage {
        image_url: content::data_url(image),
    }));
    Output::Parts(parts)
}

fn flush<'a>(assistant: bool, parts: &mut Vec<Part<'a>>, out: &mut Vec<Item<'a>>) {
    if parts.is_empty() {
        return;
    }
    out.push(Item::Message {
        role: if assistant { "assistant" } else { "user" },
        content: std::mem::take(parts),
    });
}

#[cfg(test)]
mod tests {
    use openheim_proto::common::v1::{ContentBlock, Image, Thinking, ToolCall, ToolResult};
    use serde_json::{Value, json};

    use super::*;

    fn message(role: Role, blocks: Vec<Block>) -> Message {
        Message {
            role: role.into(),
            content: blocks
                .into_iter()
                .map(|b| ContentBlock { block: Some(b) })
                .collect(),
        }
    }

    #[test]
    fn maps_a_whole_conversation() {
        let conversation = Conversation {
            system_prompt: "be brief".into(),
            messages: vec![
                message(
                    Role::User,
                    vec![
                        Block::Text("look".into()),
                        Block::Image(Image {
                            mime_type: "image/png".into(),
                            data: vec![1, 2, 3],
                        }),
                    ],
                ),
                message(
                    Role::Assistant,
                    vec![
                        Block::Thinking(Thinking {
                            text: "hmm".into(),
                            signature: String::new(),
                        }),
                        Block::Text("Reading.".into()),
                        Block::ToolCall(ToolCall {
                            id: "call_1".into(),
                            name: "read_file".into(),
                            arguments_json: r#"{"path":"a"}"#.into(),
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
                            mime_type: "image/webp".into(),
                            data: vec![7],
                        }],
                    })],
                ),
            ],
            tools: vec![ToolDefinition {
                name: "read_file".into(),
                description: "Read a file.".into(),
                input_schema_json: r#"{"type":"object"}"#.into(),
                ..Default::default()
            }],
            max_tokens: Some(64),
            temperature: None,
            thinking: None,
        };
        let body: Value = serde_json::from_slice(
            &encode(
                "gpt-test",
                &conversation,
                None,
                openheim_config::Thinking::Off,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-test",
                "instructions": "be brief",
                "stream": true,
                "store": false,
                "max_output_tokens": 64,
                "input": [
                    {"type": "message", "role": "user", "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AQID"}
                    ]},
                    {"type": "message", "role": "assistant", "content": [
                        {"type": "output_text", "text": "Reading."}
                    ]},
                    {"type": "function_call", "call_id": "call_1", "name": "read_file", "arguments": "{\"path\":\"a\"}"},
                    {"type": "function_call_output", "call_id": "call_1", "output": [
                        {"type": "input_text", "text": "hello"},
                        {"type": "input_image", "image_url": "data:image/webp;base64,Bw=="}
                    ]}
                ],
                "tools": [{"type": "function", "name": "read_file", "description": "Read a file.",
                           "parameters": {"type": "object"}, "strict": false}]
            })
        );
    }
}
