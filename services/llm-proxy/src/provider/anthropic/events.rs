//! Decoding of the Anthropic Messages event stream into [`ProviderEvent`]s.
//!
//! Events (named by the SSE `event:` line and repeated in `type`):
//! `message_start` (input and cache usage), `content_block_start` (text,
//! `tool_use` with id and name, thinking), `content_block_delta`
//! (`text_delta`, `input_json_delta`, `thinking_delta`, `signature_delta`),
//! `content_block_stop`, `message_delta` (stop reason, output usage),
//! `message_stop` (terminal), `ping`, `error`. Unknown events and block
//! types are ignored, as Anthropic's versioning policy asks.
//!
//! Deltas are read into one flat struct (no tagged enum), so a delta costs
//! one parse and one allocation: its text, which becomes the event.

use std::borrow::Cow;
use std::collections::VecDeque;

use openheim_proto::common::v1::{StopReason, Usage};
use serde::Deserialize;

use crate::error::LlmError;
use crate::provider::ProviderEvent;
use crate::provider::http::{self, Decoder};
use crate::provider::wire_error::{self, ErrorBody, Origin};

#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct MessageStart {
    message: StartedMessage,
}

#[derive(Deserialize)]
struct StartedMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct BlockStart<'a> {
    index: u32,
    #[serde(borrow)]
    content_block: Block<'a>,
}

#[derive(Deserialize)]
struct BlockDelta<'a> {
    index: u32,
    #[serde(borrow)]
    delta: Block<'a>,
}

/// A content block start or delta: every field any type uses, flat.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    /// A `redacted_thinking` block's opaque content.
    #[serde(default)]
    data: Option<String>,
}

#[derive(Deserialize)]
struct MessageDelta {
    #[serde(default)]
    delta: Option<StopDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct StopDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEvent {
    error: ErrorBody,
}

/// Turns the events of one streamed answer into provider events.
pub(super) struct EventDecoder {
    provider: String,
    model: String,
    /// Content block index → dense tool-call index, for `tool_use` blocks.
    tool_blocks: Vec<(u32, u32)>,
    usage: WireUsage,
    stop: Option<StopReason>,
}

impl EventDecoder {
    pub(super) fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            tool_blocks: Vec::new(),
            usage: WireUsage::default(),
            stop: None,
        }
    }

    fn parse<'a, T: Deserialize<'a>>(&self, data: &'a str, what: &str) -> Result<T, LlmError> {
        serde_json::from_str(data).map_err(|e| http::parse_error(&self.provider, what, &e))
    }

    fn block_start(&mut self, start: BlockStart<'_>, out: &mut VecDeque<ProviderEvent>) {
        let block = start.content_block;
        match &*block.kind {
            "text" => push_text(block.text, out),
            "tool_use" => {
                let index = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                self.tool_blocks.push((start.index, index));
                out.push_back(ProviderEvent::ToolCallDelta {
                    index,
                    id: block.id.unwrap_or_default(),
                    name: block.name.unwrap_or_default(),
                    arguments_fragment: String::new(),
                });
            }
            // Each thinking block is signed on its own and must be replayed
            // as a block of its own, in order.
            "thinking" => {
                out.push_back(ProviderEvent::ThinkingBlock { redacted: None });
                push_thinking(block.thinking, block.signature, out);
            }
            "redacted_thinking" => out.push_back(ProviderEvent::ThinkingBlock {
                redacted: Some(block.data.unwrap_or_default()),
            }),
            _ => {}
        }
    }

    fn block_delta(&self, delta: BlockDelta<'_>, out: &mut VecDeque<ProviderEvent>) {
        let block = delta.delta;
        match &*block.kind {
            "text_delta" => push_text(block.text, out),
            "input_json_delta" => {
                let Some(index) = self.tool_index(delta.index) else {
                    return;
                };
                if let Some(fragment) = block.partial_json.filter(|f| !f.is_empty()) {
                    out.push_back(ProviderEvent::ToolCallDelta {
                        index,
                        id: String::new(),
                        name: String::new(),
                        arguments_fragment: fragment,
                    });
                }
            }
            "thinking_delta" => push_thinking(block.thinking, None, out),
            "signature_delta" => push_thinking(None, block.signature, out),
            _ => {}
        }
    }

    fn tool_index(&self, block: u32) -> Option<u32> {
        self.tool_blocks
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, i)| *i)
    }

    fn message_delta(&mut self, delta: MessageDelta) {
        if let Some(reason) = delta.delta.and_then(|d| d.stop_reason) {
            self.stop = Some(stop_reason(&reason));
        }
        if let Some(usage) = delta.usage {
            // Later counts are cumulative and win.
            let u = &mut self.usage;
            u.output_tokens = usage.output_tokens.or(u.output_tokens);
            u.input_tokens = usage.input_tokens.or(u.input_tokens);
            u.cache_read_input_tokens = usage.cache_read_input_tokens.or(u.cache_read_input_tokens);
            u.cache_creation_input_tokens = usage
                .cache_creation_input_tokens
                .or(u.cache_creation_input_tokens);
        }
    }

    /// The whole prompt counts as input, including the cached parts
    /// Anthropic reports separately.
    fn usage(&self) -> Usage {
        let u = &self.usage;
        let cache_read = u.cache_read_input_tokens.unwrap_or(0);
        let cache_write = u.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: u.input_tokens.unwrap_or(0) + cache_read + cache_write,
            output_tokens: u.output_tokens.unwrap_or(0),
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            // Anthropic counts thinking in the output and does not say how
            // much of it.
            reasoning_tokens: 0,
            cost_pico_usd: None,
        }
    }
}

impl Decoder for EventDecoder {
    fn decode(
        &mut self,
        event: &str,
        data: &str,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Option<StopReason>, LlmError> {
        // The event name saves a parse; proxies that drop it still send `type`.
        let typed;
        let kind = if event.is_empty() || event == "message" {
            typed = self.parse::<Typed<'_>>(data, "event")?;
            &*typed.kind
        } else {
            event
        };
        match kind {
            "content_block_delta" => self.block_delta(self.parse(data, kind)?, out),
            "content_block_start" => self.block_start(self.parse(data, kind)?, out),
            "message_start" => {
                let start: MessageStart = self.parse(data, kind)?;
                if let Some(usage) = start.message.usage {
                    self.usage = usage;
                }
            }
            "message_delta" => self.message_delta(self.parse(data, kind)?),
            "message_stop" => {
                out.push_back(ProviderEvent::Usage(self.usage()));
                return Ok(Some(self.stop.unwrap_or(StopReason::EndTurn)));
            }
            "error" => {
                let error: ErrorEvent = self.parse(data, kind)?;
                let origin = Origin {
                    provider: &self.provider,
                    model: &self.model,
                };
                return Err(wire_error::stream_error(origin, &error.error));
            }
            // ping, content_block_stop, and events added later.
            _ => {}
        }
        Ok(None)
    }

    /// Anthropic always ends with `message_stop`; without it the answer is cut.
    fn end_of_body(&mut self, _out: &mut VecDeque<ProviderEvent>) -> Option<StopReason> {
        None
    }
}

fn push_text(text: Option<String>, out: &mut VecDeque<ProviderEvent>) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        out.push_back(ProviderEvent::TextDelta(text));
    }
}

fn push_thinking(
    text: Option<String>,
    signature: Option<String>,
    out: &mut VecDeque<ProviderEvent>,
) {
    let text = text.unwrap_or_default();
    let signature = signature.unwrap_or_default();
    if !text.is_empty() || !signature.is_empty() {
        out.push_back(ProviderEvent::ThinkingDelta { text, signature });
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "tool_use" => StopReason::ToolUse,
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "refusal" => StopReason::Refusal,
        // end_turn, stop_sequence, pause_turn and reasons added later.
        _ => StopReason::EndTurn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `(event, data)` pairs; returns the events and the stop reason.
    fn run(events: &[(&str, &str)]) -> (Vec<ProviderEvent>, Option<StopReason>) {
        let mut decoder = EventDecoder::new("anthropic", "claude");
        let mut out = VecDeque::new();
        let mut stop = None;
        for (event, data) in events {
            stop = decoder.decode(event, data, &mut out).unwrap();
        }
        (out.into_iter().collect(), stop)
    }

    #[test]
    fn text_usage_and_stop() {
        let (events, stop) = run(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel\"lo"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert_eq!(
            events,
            [
                ProviderEvent::TextDelta("Hel\"lo".into()),
                ProviderEvent::Usage(Usage {
                    input_tokens: 2125,
                    output_tokens: 15,
                    cache_read_tokens: 2000,
                    cache_write_tokens: 100,
                    reasoning_tokens: 0,
                    cost_pico_usd: None,
                }),
            ]
        );
        assert_eq!(stop, Some(StopReason::EndTurn));
    }

    #[test]
    fn every_thinking_block_starts_anew_and_redacted_ones_keep_their_data() {
        let (events, _) = run(&[
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"SIG1"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgB"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":2,"delta":{"type":"thinking_delta","thinking":"more"}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        let block = |redacted: Option<&str>| ProviderEvent::ThinkingBlock {
            redacted: redacted.map(str::to_owned),
        };
        let thinking = |text: &str, signature: &str| ProviderEvent::ThinkingDelta {
            text: text.into(),
            signature: signature.into(),
        };
        assert_eq!(
            events[..5],
            [
                block(None),
                thinking("", "SIG1"),
                block(Some("EmwKAhgB")),
                block(None),
                thinking("more", ""),
            ]
        );
    }

    #[test]
    fn tool_blocks_get_dense_indexes_and_thinking_keeps_its_signature() {
        let (events, stop) = run(&[
            (
                "",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_a","name":"read","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"p\":1}"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":7,"delta":{"type":"citations_delta","citation":{}}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":3}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        let thinking = |text: &str, signature: &str| ProviderEvent::ThinkingDelta {
            text: text.into(),
            signature: signature.into(),
        };
        assert_eq!(
            events[..5],
            [
                ProviderEvent::ThinkingBlock { redacted: None },
                thinking("hmm", ""),
                thinking("", "EqQB"),
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    id: "toolu_a".into(),
                    name: "read".into(),
                    arguments_fragment: String::new(),
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    id: String::new(),
                    name: String::new(),
                    arguments_fragment: "{\"p\":1}".into(),
                },
            ]
        );
        assert_eq!(stop, Some(StopReason::ToolUse));
    }

    #[test]
    fn stop_reasons_errors_and_early_ends() {
        for (reason, stop) in [
            ("max_tokens", StopReason::MaxTokens),
            ("refusal", StopReason::Refusal),
            ("stop_sequence", StopReason::EndTurn),
        ] {
            let delta =
                format!(r#"{{"type":"message_delta","delta":{{"stop_reason":"{reason}"}}}}"#);
            let (_, got) = run(&[("message_delta", &delta), ("message_stop", "{}")]);
            assert_eq!(got, Some(stop), "{reason}");
        }
        let mut decoder = EventDecoder::new("anthropic", "claude");
        let mut out = VecDeque::new();
        let error = decoder
            .decode(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(error.is_overload() && error.is_retryable(), "{error:?}");
        assert!(decoder.end_of_body(&mut out).is_none());
        let error = decoder.decode("", "{not json", &mut out).unwrap_err();
        assert!(matches!(error, LlmError::Protocol { .. }), "{error:?}");
    }
}
