//! The request body of the Anthropic Messages API, serialised directly from
//! the shared message types through borrowed structs.
//!
//! Anthropic's rules, and how the shared history is fitted to them:
//! - roles alternate user/assistant: consecutive messages of one role are
//!   merged, and `ROLE_TOOL` results become `tool_result` blocks of a user
//!   message, placed before any text of that message;
//! - text blocks must not be empty: empty ones are dropped;
//! - thinking blocks are replayed only with an Anthropic signature (other
//!   providers' reasoning cannot be verified and would be rejected);
//! - `max_tokens` is required.
//!
//! Prompt caching needs explicit breakpoints: one after the system prompt
//! (which caches the tools too, as they come first) and one on the last
//! block of the conversation, so the next call of the same turn reads the
//! whole prefix from the cache.

use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{Image, Message, Role, ToolCall, ToolDefinition, ToolResult};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::LlmError;
use openheim_config::{MIN_THINKING_BUDGET, Thinking, ThinkingStyle};

use crate::provider::{Conversation, content, signature};

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<SystemBlock<'a>>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<WireThinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig>,
}

/// `thinking`: a token budget, or adaptive (the model decides, within the
/// effort of `output_config`).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireThinking {
    Enabled { budget_tokens: u32 },
    Adaptive,
}

#[derive(Serialize)]
struct OutputConfig {
    effort: &'static str,
}

/// Room for the answer besides a thinking budget: `max_tokens` counts both.
const ANSWER_ROOM: u32 = 4096;

/// How Anthropic is asked to think for `model` when the configuration does
/// not say: adaptively from Claude 4.6 on (which require it from 4.7), with
/// a token budget before.
pub(super) fn default_style(model: &str) -> ThinkingStyle {
    let version: Vec<u32> = model
        .split('-')
        .filter_map(|part| part.parse().ok())
        .filter(|n: &u32| *n < 100)
        .take(2)
        .collect();
    match version.as_slice() {
        [major, ..] if *major >= 5 => ThinkingStyle::Adaptive,
        [4, minor, ..] if *minor >= 6 => ThinkingStyle::Adaptive,
        _ => ThinkingStyle::Budget,
    }
}

#[derive(Serialize)]
struct SystemBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    cache_control: CacheControl,
}

#[derive(Serialize, Clone, Copy)]
struct CacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
}

const EPHEMERAL: CacheControl = CacheControl { kind: "ephemeral" };

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<WireBlock<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Image {
        source: ImageSource<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "ResultContent::is_empty")]
        content: ResultContent<'a>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
}

impl WireBlock<'_> {
    /// Marks a cache breakpoint here; `false` for blocks that cannot carry one.
    fn set_cache_control(&mut self) -> bool {
        match self {
            Self::Text { cache_control, .. }
            | Self::Image { cache_control, .. }
            | Self::ToolUse { cache_control, .. }
            | Self::ToolResult { cache_control, .. } => {
                *cache_control = Some(EPHEMERAL);
                true
            }
            Self::Thinking { .. } => false,
        }
    }
}

/// A tool result's content: text, or text and image blocks.
#[derive(Serialize)]
#[serde(untagged)]
enum ResultContent<'a> {
    Text(&'a str),
    Blocks(Vec<ResultBlock<'a>>),
}

impl ResultContent<'_> {
    fn is_empty(&self) -> bool {
        matches!(self, Self::Text(text) if text.is_empty())
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResultBlock<'a> {
    Text { text: &'a str },
    Image { source: ImageSource<'a> },
}

#[derive(Serialize)]
struct ImageSource<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    media_type: &'a str,
    data: String,
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    input_schema: &'a RawValue,
}

/// Encodes the JSON body of a streaming Messages request.
pub(super) fn encode(
    model: &str,
    conversation: &Conversation,
    default_max_tokens: u32,
    thinking: Thinking,
    style: Option<ThinkingStyle>,
) -> Result<Vec<u8>, LlmError> {
    let system = if conversation.system_prompt.is_empty() {
        Vec::new()
    } else {
        vec![SystemBlock {
            kind: "text",
            text: &conversation.system_prompt,
            cache_control: EPHEMERAL,
        }]
    };
    let mut messages = messages(&conversation.messages);
    if let Some(last) = messages.last_mut() {
        let _ = last
            .content
            .iter_mut()
            .rev()
            .any(WireBlock::set_cache_control);
    }
    let mut max_tokens = conversation.max_tokens.unwrap_or(default_max_tokens);
    let (wire_thinking, output_config) = match (thinking, style.unwrap_or(default_style(model))) {
        (Thinking::Off, _) => (None, None),
        (thinking, ThinkingStyle::Adaptive) => (
            Some(WireThinking::Adaptive),
            thinking
                .effort()
                .map(|e| OutputConfig { effort: e.as_str() }),
        ),
        (thinking, ThinkingStyle::Budget) => {
            let budget = thinking.budget().unwrap_or(MIN_THINKING_BUDGET);
            max_tokens = max_tokens.max(budget.saturating_add(ANSWER_ROOM));
            let budget_tokens = budget.max(MIN_THINKING_BUDGET);
            (Some(WireThinking::Enabled { budget_tokens }), None)
        }
    };
    let body = MessagesRequest {
        model,
        max_tokens,
        system,
        messages,
        tools: tools(&conversation.tools)?,
        stream: true,
        // Anthropic takes no temperature while the model thinks.
        temperature: conversation.temperature.filter(|_| wire_thinking.is_none()),
        thinking: wire_thinking,
        output_config,
    };
    content::to_json(&body)
}

fn tools(definitions: &[ToolDefinition]) -> Result<Vec<WireTool<'_>>, LlmError> {
    definitions
        .iter()
        .map(|tool| {
            Ok(WireTool {
                name: &tool.name,
                description: &tool.description,
                input_schema: content::tool_schema(tool)?,
            })
        })
        .collect()
}

/// The alternating message list: consecutive same-role messages merged,
/// tool results first within each user message, empty messages dropped.
fn messages(history: &[Message]) -> Vec<WireMessage<'_>> {
    let mut out: Vec<WireMessage<'_>> = Vec::with_capacity(history.len());
    for message in history {
        let (role, blocks) = match message.role() {
            Role::Assistant => ("assistant", assistant_blocks(message)),
            Role::User | Role::Tool | Role::Unspecified => ("user", user_blocks(message)),
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.push(WireMessage {
                role,
                content: blocks,
            }),
        }
    }
    for message in &mut out {
        if message.role == "user" {
            // Stable: results keep their order, and so does the text.
            message
                .content
                .sort_by_key(|b| !matches!(b, WireBlock::ToolResult { .. }));
        }
    }
    out
}

fn user_blocks(message: &Message) -> Vec<WireBlock<'_>> {
    content::blocks(message)
        .filter_map(|block| match block {
            Block::Text(text) => text_block(text),
            Block::Image(image) => Some(WireBlock::Image {
                source: image_source(image),
                cache_control: None,
            }),
            Block::ToolResult(result) => Some(tool_result(result)),
            Block::Thinking(_) | Block::ToolCall(_) => None,
        })
        .collect()
}

fn assistant_blocks(message: &Message) -> Vec<WireBlock<'_>> {
    content::blocks(message)
        .filter_map(|block| match block {
            Block::Thinking(thinking) if signature::is_anthropic(&thinking.signature) => {
                Some(WireBlock::Thinking {
                    thinking: &thinking.text,
                    signature: &thinking.signature,
                })
            }
            Block::Text(text) => text_block(text),
            Block::ToolCall(call) => Some(tool_use(call)),
            Block::Thinking(_) | Block::Image(_) | Block::ToolResult(_) => None,
        })
        .collect()
}

fn text_block(text: &str) -> Option<WireBlock<'_>> {
    (!text.trim().is_empty()).then_some(WireBlock::Text {
        text,
        cache_control: None,
    })
}

fn tool_use(call: &ToolCall) -> WireBlock<'_> {
    WireBlock::ToolUse {
        id: &call.id,
        name: &call.name,
        input: content::arguments_object(&call.arguments_json),
        cache_control: None,
    }
}

fn image_source(image: &Image) -> ImageSource<'_> {
    ImageSource {
        kind: "base64",
        media_type: content::mime_type(image),
        data: content::base64(image),
    }
}

/// A `tool_result`; its images go inside it, after its text.
fn tool_result(result: &ToolResult) -> WireBlock<'_> {
    let content = if result.images.is_empty() {
        ResultContent::Text(&result.content)
    } else {
        let text = (!result.content.is_empty()).then(|| ResultBlock::Text {
            text: &result.content,
        });
        let images = result.images.iter().map(|image| ResultBlock::Image {
            source: image_source(image),
        });
        ResultContent::Blocks(text.into_iter().chain(images).collect())
    };
    WireBlock::ToolResult {
        tool_use_id: &result.tool_call_id,
        content,
        is_error: result.is_error,
        cache_control: None,
    }
}

#[cfg(test)]
mod tests {
    use openheim_proto::common::v1::{ContentBlock, Image, Thinking};
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

    fn with_image(mut message: Message) -> Message {
        if let Some(Block::ToolResult(result)) = &mut message.content[0].block {
            result.images.push(Image {
                mime_type: "image/png".into(),
                data: vec![9],
            });
        }
        message
    }

    fn call(id: &str, name: &str, arguments: &str) -> Block {
        Block::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments_json: arguments.into(),
        })
    }

    fn encode_json(conversation: &Conversation) -> Value {
        serde_json::from_slice(
            &encode(
                "claude-test",
                conversation,
                8192,
                openheim_config::Thinking::Off,
                None,
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn maps_a_whole_conversation() {
        let conversation = Conversation {
            system_prompt: "be brief".into(),
            messages: vec![
                message(
                    Role::User,
                    vec![
                        Block::Text("what is in".into()),
                        Block::Image(Image {
                            mime_type: "image/jpeg".into(),
                            data: vec![1, 2, 3],
                        }),
                    ],
                ),
                message(
                    Role::Assistant,
                    vec![
                        Block::Thinking(Thinking {
                            text: "let me see".into(),
                            signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3h".into(),
                        }),
                        Block::Text("Reading.".into()),
                        call("toolu_1", "read_file", r#"{"path":"a"}"#),
                        call("toolu_2", "list_dir", ""),
                    ],
                ),
                with_image(result("toolu_1", "hello", false)),
                result("toolu_2", "no such dir", true),
                message(Role::User, vec![Block::Text("thanks".into())]),
            ],
            tools: vec![ToolDefinition {
                name: "read_file".into(),
                description: "Read a file.".into(),
                input_schema_json: r#"{"type":"object","properties":{"path":{"type":"string"}}}"#
                    .into(),
                ..Default::default()
            }],
            max_tokens: None,
            temperature: Some(0.5),
            thinking: None,
        };
        assert_eq!(
            encode_json(&conversation),
            json!({
                "model": "claude-test",
                "max_tokens": 8192,
                "stream": true,
                "temperature": 0.5,
                "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is in"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AQID"}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "let me see", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"},
                        {"type": "text", "text": "Reading."},
                        {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "list_dir", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                            {"type": "text", "text": "hello"},
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "CQ=="}}
                        ]},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such dir", "is_error": true},
                        {"type": "text", "text": "thanks", "cache_control": {"type": "ephemeral"}}
                    ]}
                ],
                "tools": [{
                    "name": "read_file",
                    "description": "Read a file.",
                    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}
                }]
            })
        );
    }

    #[test]
    fn foreign_and_unsigned_thinking_and_empty_text_are_dropped() {
        let conversation = Conversation {
            messages: vec![
                message(Role::User, vec![Block::Text("hi".into())]),
                message(
                    Role::Assistant,
                    vec![
                        Block::Thinking(Thinking {
                            text: "from another provider".into(),
                            signature: String::new(),
                        }),
                        Block::Thinking(Thinking {
                            text: String::new(),
                            signature: "t:gemini-signature;".into(),
                        }),
                        Block::Text(" ".into()),
                    ],
                ),
                message(Role::User, vec![Block::Text("again".into())]),
            ],
            max_tokens: Some(10),
            ..Default::default()
        };
        let body = encode_json(&conversation);
        // The assistant message had nothing left: the user messages merge.
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "text", "text": "again", "cache_control": {"type": "ephemeral"}}
            ]}])
        );
        assert_eq!(body["max_tokens"], 10);
        assert!(body.get("system").is_none());
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn results_come_first_and_garbled_arguments_become_an_empty_object() {
        let conversation = Conversation {
            messages: vec![
                message(Role::User, vec![Block::Text("go".into())]),
                message(Role::Assistant, vec![call("t1", "run", r#"{"cmd":"#)]),
                message(Role::User, vec![Block::Text("also this".into())]),
                result("t1", "", false),
            ],
            ..Default::default()
        };
        let body = encode_json(&conversation);
        assert_eq!(body["messages"][1]["content"][0]["input"], json!({}));
        assert_eq!(
            body["messages"][2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "t1"},
                {"type": "text", "text": "also this", "cache_control": {"type": "ephemeral"}}
            ])
        );
    }
}
