//! The request body of Gemini `streamGenerateContent`, serialised from the
//! shared message types.
//!
//! How the shared history is fitted to Gemini:
//! - roles are `user` and `model`; consecutive contents of one role are
//!   merged, so all `functionResponse` parts answering one model turn arrive
//!   together, as Gemini requires;
//! - a tool result carries only the call id, so its `functionResponse` takes
//!   the function name from the call with that id in the latest model turn;
//! - ids Gemini sent are replayed; ids the proxy made up (`call_<n>`, for
//!   models that send none) are not, since Gemini never saw them;
//! - thought signatures go back on the part they came with (see
//!   [`crate::provider::signature`]); thought text without one is not sent.

use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{Image, Message, Role, ToolCall, ToolDefinition, ToolResult};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::schema;
use openheim_config::{Effort, Thinking};

use crate::error::LlmError;
use crate::provider::signature::GeminiSignatures;
use crate::provider::{Conversation, content};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolGroup<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig,
}

#[derive(Serialize)]
struct SystemInstruction<'a> {
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: Vec<Part<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    thought: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<InlineData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponse<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InlineData<'a> {
    mime_type: &'a str,
    data: String,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: &'a RawValue,
}

#[derive(Serialize)]
struct FunctionResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: ResponseValue<'a>,
}

/// `{"content": "..."}`, or `{"error": "..."}` for a failed call (the key
/// Gemini's documentation names for errors).
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum ResponseValue<'a> {
    Content(&'a str),
    Error(&'a str),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolGroup<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
struct FunctionDeclaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    parameters: Value,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.thinking_config.is_none()
    }
}

/// Gemini 3 takes a level (`thinkingLevel`), earlier models a token budget
/// (`thinkingBudget`); thoughts are asked for in the stream either way.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_level: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<u32>,
    include_thoughts: bool,
}

impl ThinkingConfig {
    /// Nothing when off: the model's own default applies (models that
    /// always think keep doing so).
    fn of(model: &str, thinking: Thinking) -> Option<Self> {
        let by_level = model
            .trim_start_matches("models/")
            .strip_prefix("gemini-")
            .and_then(|rest| rest.split(['-', '.']).next())
            .and_then(|major| major.parse::<u32>().ok())
            .is_some_and(|major| major >= 3);
        let effort = thinking.effort()?;
        Some(match by_level {
            true => Self {
                // Gemini 3 knows "low" and "high".
                thinking_level: Some(match effort {
                    Effort::Low => "low",
                    Effort::Medium | Effort::High => "high",
                }),
                thinking_budget: None,
                include_thoughts: true,
            },
            false => Self {
                thinking_level: None,
                thinking_budget: thinking.budget(),
                include_thoughts: true,
            },
        })
    }
}

/// Whether `id` is one the proxy made up for a call Gemini sent without one.
pub(super) fn is_synthesised_id(id: &str) -> bool {
    id.strip_prefix("call_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Encodes the JSON body of a streaming generateContent request.
pub(super) fn encode(
    model: &str,
    conversation: &Conversation,
    default_max_tokens: Option<u32>,
    thinking: Thinking,
) -> Result<Vec<u8>, LlmError> {
    let system_instruction = (!conversation.system_prompt.is_empty()).then(|| SystemInstruction {
        parts: [Part {
            text: Some(&conversation.system_prompt),
            ..Part::default()
        }],
    });
    let body = GenerateRequest {
        system_instruction,
        contents: contents(&conversation.messages),
        tools: tools(&conversation.tools)?,
        generation_config: GenerationConfig {
            max_output_tokens: conversation.max_tokens.or(default_max_tokens),
            temperature: conversation.temperature,
            thinking_config: ThinkingConfig::of(model, thinking),
        },
    };
    content::to_json(&body)
}

fn tools(definitions: &[ToolDefinition]) -> Result<Vec<ToolGroup<'_>>, LlmError> {
    if definitions.is_empty() {
        return Ok(Vec::new());
    }
    let declarations = definitions
        .iter()
        .map(|tool| {
            let raw = content::tool_schema(tool)?;
            let parsed: Value =
                serde_json::from_str(raw.get()).map_err(|e| LlmError::Internal {
                    message: format!("tool {:?} has an invalid input schema: {e}", tool.name),
                })?;
            Ok(FunctionDeclaration {
                name: &tool.name,
                description: &tool.description,
                parameters: schema::clean(parsed),
            })
        })
        .collect::<Result<_, LlmError>>()?;
    Ok(vec![ToolGroup {
        function_declarations: declarations,
    }])
}

fn contents(history: &[Message]) -> Vec<Content<'_>> {
    let mut out: Vec<Content<'_>> = Vec::with_capacity(history.len());
    // The calls of the latest model turn, for naming function responses.
    let mut calls: Vec<&ToolCall> = Vec::new();
    for message in history {
        let (role, parts) = match message.role() {
            Role::Assistant => {
                let turn_calls: Vec<&ToolCall> = content::blocks(message)
                    .filter_map(|b| match b {
                        Block::ToolCall(call) => Some(call),
                        _ => None,
                    })
                    .collect();
                if !turn_calls.is_empty() {
                    calls = turn_calls;
                }
                ("model", model_parts(message))
            }
            Role::User | Role::Tool | Role::Unspecified => {
                ("user", user_parts(message, &calls, history))
            }
        };
        if parts.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => out.push(Content { role, parts }),
        }
    }
    for content in &mut out {
        if content.role == "user" {
            // Stable: all function responses of a turn first, as Gemini
            // wants them, then the images and text in their order.
            content.parts.sort_by_key(|p| p.function_response.is_none());
        }
    }
    out
}

/// The parts of a user (or tool) message. A tool result's images follow
/// its `functionResponse` as `inlineData` parts of the same content.
fn user_parts<'a>(
    message: &'a Message,
    calls: &[&'a ToolCall],
    history: &'a [Message],
) -> Vec<Part<'a>> {
    let mut parts = Vec::new();
    for block in content::blocks(message) {
        match block {
            Block::Text(text) if !text.is_empty() => parts.push(Part {
                text: Some(text),
                ..Part::default()
            }),
            Block::Image(image) => parts.push(inline_image(image)),
            Block::ToolResult(result) => {
                parts.push(function_response(result, calls, history));
                parts.extend(result.images.iter().map(inline_image));
            }
            Block::Text(_) | Block::Thinking(_) | Block::ToolCall(_) => {}
        }
    }
    parts
}

fn inline_image(image: &Image) -> Part<'_> {
    Part {
        inline_data: Some(InlineData {
            mime_type: content::mime_type(image),
            data: content::base64(image),
        }),
        ..Part::default()
    }
}

fn function_response<'a>(
    result: &'a ToolResult,
    calls: &[&'a ToolCall],
    history: &'a [Message],
) -> Part<'a> {
    let id = result.tool_call_id.as_str();
    let name = calls
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.name.as_str())
        .or_else(|| find_call_name(history, id))
        // Gemini will reject it, which is better than naming the wrong function.
        .unwrap_or(id);
    let response = if result.is_error {
        ResponseValue::Error(&result.content)
    } else {
        ResponseValue::Content(&result.content)
    };
    Part {
        function_response: Some(FunctionResponse {
            id: (!is_synthesised_id(id)).then_some(id),
            name,
            response,
        }),
        ..Part::default()
    }
}

/// The name of the latest call with `id` anywhere in the history.
fn find_call_name<'a>(history: &'a [Message], id: &str) -> Option<&'a str> {
    history.iter().rev().find_map(|m| {
        content::blocks(m).find_map(|b| match b {
            Block::ToolCall(call) if call.id == id => Some(call.name.as_str()),
            _ => None,
        })
    })
}

fn model_parts(message: &Message) -> Vec<Part<'_>> {
    let mut signatures = GeminiSignatures::default();
    let mut thought: Option<&str> = None;
    let mut texts: Vec<&str> = Vec::new();
    let mut calls: Vec<&ToolCall> = Vec::new();
    for block in content::blocks(message) {
        match block {
            Block::Thinking(t) => {
                signatures.add(&t.signature);
                if thought.is_none() && !t.text.is_empty() {
                    thought = Some(&t.text);
                }
            }
            Block::Text(text) if !text.is_empty() => texts.push(text),
            Block::ToolCall(call) => calls.push(call),
            Block::Text(_) | Block::Image(_) | Block::ToolResult(_) => {}
        }
    }
    let mut parts = Vec::with_capacity(texts.len() + calls.len() + 1);
    if let Some(signature) = signatures.thought {
        // Only here does thought text travel back: it must carry its signature.
        parts.push(Part {
            text: Some(thought.unwrap_or_default()),
            thought: true,
            thought_signature: Some(signature),
            ..Part::default()
        });
    }
    push_text_parts(&mut parts, &texts, signatures.text);
    for (k, call) in calls.into_iter().enumerate() {
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        parts.push(Part {
            function_call: Some(FunctionCall {
                id: (!is_synthesised_id(&call.id)).then_some(call.id.as_str()),
                name: &call.name,
                args: content::arguments_object(&call.arguments_json),
            }),
            thought_signature: signatures.call(k),
            ..Part::default()
        });
    }
    parts
}

/// Text parts: one per text block, the signature (if any) on the last one,
/// or alone on an empty part when the reply had no text.
fn push_text_parts<'a>(parts: &mut Vec<Part<'a>>, texts: &[&'a str], signature: Option<&'a str>) {
    let count = texts.len();
    for (i, &text) in texts.iter().enumerate() {
        parts.push(Part {
            text: Some(text),
            thought_signature: if i + 1 == count { signature } else { None },
            ..Part::default()
        });
    }
    if count == 0
        && let Some(signature) = signature
    {
        parts.push(Part {
            text: Some(""),
            thought_signature: Some(signature),
            ..Part::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use openheim_proto::common::v1::{ContentBlock, Image, Thinking};
    use serde_json::json;

    use super::*;
    use crate::provider::signature::{GeminiTarget, gemini_record};

    fn message(role: Role, blocks: Vec<Block>) -> Message {
        Message {
            role: role.into(),
            content: blocks
                .into_iter()
                .map(|b| ContentBlock { block: Some(b) })
                .collect(),
        }
    }

    fn call(id: &str, name: &str, arguments: &str) -> Block {
        Block::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments_json: arguments.into(),
        })
    }

    fn result(id: &str, content: &str, is_error: bool) -> Message {
        message(
            Role::Tool,
            vec![Block::ToolResult(ToolResult {
                tool_call_id: id.into(),
                content: content.into(),
                is_error,
                images: Vec::new(),
            })],
        )
    }

    fn encode_json(conversation: &Conversation) -> Value {
        serde_json::from_slice(
            &encode(
                "gemini-test",
                conversation,
                Some(1000),
                openheim_config::Thinking::Off,
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn maps_a_whole_conversation() {
        let signatures = [
            gemini_record(GeminiTarget::Call(0), "sig-call"),
            gemini_record(GeminiTarget::Text, "sig-text"),
        ]
        .concat();
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
                            text: "unsigned thoughts stay home".into(),
                            signature: signatures,
                        }),
                        Block::Text("Reading.".into()),
                        call("call_0", "read_file", r#"{"path":"a"}"#),
                        call("fc-7", "list_dir", ""),
                    ],
                ),
                {
                    let mut read = result("call_0", "hello", false);
                    if let Some(Block::ToolResult(r)) = &mut read.content[0].block {
                        r.images.push(Image {
                            mime_type: "image/jpeg".into(),
                            data: vec![8],
                        });
                    }
                    read
                },
                result("fc-7", "no such dir", true),
            ],
            tools: vec![ToolDefinition {
                name: "read_file".into(),
                description: "Read a file.".into(),
                input_schema_json: r#"{"$schema":"x","type":"object","additionalProperties":false,"properties":{"path":{"type":"string"}}}"#.into(),
                ..Default::default()
            }],
            max_tokens: None,
            temperature: Some(0.2),
            thinking: None,
        };
        let body = encode_json(&conversation);
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "look"},
                        {"inlineData": {"mimeType": "image/png", "data": "AQID"}}
                    ]},
                    {"role": "model", "parts": [
                        {"text": "Reading.", "thoughtSignature": "sig-text"},
                        {"functionCall": {"name": "read_file", "args": {"path": "a"}}, "thoughtSignature": "sig-call"},
                        {"functionCall": {"id": "fc-7", "name": "list_dir", "args": {}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "read_file", "response": {"content": "hello"}}},
                        {"functionResponse": {"id": "fc-7", "name": "list_dir", "response": {"error": "no such dir"}}},
                        // A result's image follows all the responses.
                        {"inlineData": {"mimeType": "image/jpeg", "data": "CA=="}}
                    ]}
                ],
                "tools": [{"functionDeclarations": [{
                    "name": "read_file",
                    "description": "Read a file.",
                    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}
                }]}],
                "generationConfig": {"maxOutputTokens": 1000, "temperature": 0.2}
            })
        );
    }

    #[test]
    fn signed_thoughts_and_lone_signatures_are_replayed() {
        let signatures = [
            gemini_record(GeminiTarget::Thought, "sig-r"),
            gemini_record(GeminiTarget::Text, "sig-t"),
        ]
        .concat();
        let conversation = Conversation {
            messages: vec![
                message(Role::User, vec![Block::Text("hi".into())]),
                message(
                    Role::Assistant,
                    vec![Block::Thinking(Thinking {
                        text: "pondering".into(),
                        signature: signatures,
                    })],
                ),
            ],
            ..Default::default()
        };
        let body = encode_json(&conversation);
        assert_eq!(
            body["contents"][1]["parts"],
            json!([
                {"text": "pondering", "thought": true, "thoughtSignature": "sig-r"},
                {"text": "", "thoughtSignature": "sig-t"}
            ])
        );
        assert!(body.get("systemInstruction").is_none());
        assert_eq!(body["generationConfig"], json!({"maxOutputTokens": 1000}));
    }

    #[test]
    fn responses_are_named_after_the_latest_call_with_their_id() {
        let conversation = Conversation {
            messages: vec![
                message(Role::User, vec![Block::Text("1".into())]),
                message(Role::Assistant, vec![call("call_0", "first", "{}")]),
                result("call_0", "a", false),
                message(Role::Assistant, vec![call("call_0", "second", "{}")]),
                result("call_0", "b", false),
            ],
            ..Default::default()
        };
        let body = encode_json(&conversation);
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"]["name"],
            "first"
        );
        assert_eq!(
            body["contents"][4]["parts"][0]["functionResponse"]["name"],
            "second"
        );
        assert!(is_synthesised_id("call_12"));
        assert!(!is_synthesised_id("call_"));
        assert!(!is_synthesised_id("call_x1"));
    }
}
