//! Decoding of Chat Completions stream chunks (`data:` payloads of the SSE
//! stream) into [`ProviderEvent`]s.
//!
//! Chunks are deserialised into small structs that keep only what we use:
//! serde skips every other field without allocating, and the `choices` array
//! is reduced to its first element without building a `Vec`.

use std::collections::VecDeque;

use openheim_proto::common::v1::{StopReason, Usage};
use serde::Deserialize;

use crate::error::LlmError;
use crate::provider::ProviderEvent;
use crate::provider::content::first_element;
use crate::provider::http::{self, Decoder};
use crate::provider::wire_error::{self, ErrorBody, Origin};

#[derive(Deserialize)]
struct Chunk {
    #[serde(default, deserialize_with = "first_element")]
    choices: Option<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// Text fields are owned: every delta becomes an owned event string anyway,
/// so deserialising into `String` is exactly one allocation per field.
#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    /// DeepSeek, vLLM and others.
    #[serde(default)]
    reasoning_content: Option<String>,
    /// Ollama, OpenRouter and others.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

#[derive(Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(Deserialize)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Arguments>,
}

/// Arguments are a JSON string fragment per the spec; a few servers send the
/// whole object instead, which we forward as its JSON text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Arguments {
    Fragment(String),
    Object(serde_json::Value),
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionTokensDetails>,
    /// DeepSeek reports cache hits here instead.
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionTokensDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// Turns the chunks of one streamed answer into events.
pub(super) struct ChunkDecoder {
    provider: String,
    model: String,
    tool_calls: Vec<ToolCallState>,
    /// Makes ids synthesised for servers that send none unique per answer.
    nonce: u64,
    finish_reason: Option<StopReason>,
}

struct ToolCallState {
    index: u32,
    /// The id we reported (received or synthesised).
    id: String,
    name_sent: bool,
}

impl ChunkDecoder {
    pub(super) fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            tool_calls: Vec::new(),
            nonce: fastrand::u64(..),
            finish_reason: None,
        }
    }

    /// How the answer ended, once a chunk said so. A reply with tool calls
    /// is `TOOL_USE` even when a server reports `stop` (older Ollama does).
    pub(super) fn stop_reason(&self) -> Option<StopReason> {
        self.finish_reason.map(|reason| match reason {
            StopReason::EndTurn if !self.tool_calls.is_empty() => StopReason::ToolUse,
            other => other,
        })
    }

    /// Decodes one `data:` payload, appending its events to `out`.
    fn decode_chunk(
        &mut self,
        data: &str,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), LlmError> {
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| http::parse_error(&self.provider, "stream chunk", &e))?;
        if let Some(error) = chunk.error {
            let origin = Origin {
                provider: &self.provider,
                model: &self.model,
            };
            return Err(wire_error::stream_error(origin, &error));
        }
        if let Some(choice) = chunk.choices {
            if let Some(delta) = choice.delta {
                self.decode_delta(delta, out);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(stop_reason(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push_back(ProviderEvent::Usage(usage_of(&usage)));
        }
        Ok(())
    }

    fn decode_delta(&mut self, delta: Delta, out: &mut VecDeque<ProviderEvent>) {
        let thinking = delta.reasoning_content.or(delta.reasoning);
        if let Some(text) = thinking.filter(|t| !t.is_empty()) {
            out.push_back(ProviderEvent::ThinkingDelta {
                text,
                signature: String::new(),
            });
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            out.push_back(ProviderEvent::TextDelta(text));
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let event = self.tool_call_delta(call);
            out.push_back(event);
        }
    }

    fn tool_call_delta(&mut self, call: ToolCallChunk) -> ProviderEvent {
        let (name, arguments) = match call.function {
            Some(f) => (f.name.filter(|n| !n.is_empty()), f.arguments),
            None => (None, None),
        };
        let arguments_fragment = match arguments {
            Some(Arguments::Fragment(s)) => s,
            Some(Arguments::Object(v)) => v.to_string(),
            None => String::new(),
        };
        let id = call.id.filter(|id| !id.is_empty());
        let index = self.index_of(call.index, id.as_deref());
        let (id, name) = self.first_fragment_fields(index, id, name);
        ProviderEvent::ToolCallDelta {
            index,
            id,
            name,
            arguments_fragment,
        }
    }

    /// The index of a fragment. Servers that omit `index` start a new call
    /// with each new id and otherwise continue the last one.
    fn index_of(&self, index: Option<u32>, id: Option<&str>) -> u32 {
        if let Some(index) = index {
            return index;
        }
        match (self.tool_calls.last(), id) {
            (None, _) => 0,
            (Some(last), Some(id)) if last.id != id => last.index + 1,
            (Some(last), _) => last.index,
        }
    }

    /// Returns the id and name to report: on the first fragment of a call
    /// its id (synthesised when the server sent none), and its name the
    /// first time it is known; empty otherwise.
    fn first_fragment_fields(
        &mut self,
        index: u32,
        id: Option<String>,
        name: Option<String>,
    ) -> (String, String) {
        if let Some(state) = self.tool_calls.iter_mut().find(|s| s.index == index) {
            let name = match name {
                Some(name) if !state.name_sent => {
                    state.name_sent = true;
                    name
                }
                _ => String::new(),
            };
            return (String::new(), name);
        }
        let id = id.unwrap_or_else(|| crate::provider::made_up_call_id(index, self.nonce));
        self.tool_calls.push(ToolCallState {
            index,
            id: id.clone(),
            name_sent: name.is_some(),
        });
        (id, name.unwrap_or_default())
    }
}

impl Decoder for ChunkDecoder {
    fn decode(
        &mut self,
        _event: &str,
        data: &str,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Option<StopReason>, LlmError> {
        if data == "[DONE]" {
            return Ok(Some(self.stop_reason().unwrap_or(StopReason::EndTurn)));
        }
        self.decode_chunk(data, out)?;
        Ok(None)
    }

    /// Servers that omit `[DONE]` still end with a finish_reason.
    fn end_of_body(&mut self, _out: &mut VecDeque<ProviderEvent>) -> Option<StopReason> {
        self.stop_reason()
    }
}

fn stop_reason(finish_reason: &str) -> StopReason {
    match finish_reason {
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::Refusal,
        // "stop", and unknown reasons: the model ended its answer.
        _ => StopReason::EndTurn,
    }
}

fn usage_of(usage: &WireUsage) -> Usage {
    let cached = usage
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .or(usage.prompt_cache_hit_tokens)
        .unwrap_or(0);
    Usage {
        input_tokens: usage.prompt_tokens.unwrap_or(0),
        output_tokens: usage.completion_tokens.unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        reasoning_tokens: usage
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
        cost_pico_usd: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut ChunkDecoder, chunks: &[&str]) -> Vec<ProviderEvent> {
        let mut out = VecDeque::new();
        for chunk in chunks {
            decoder.decode_chunk(chunk, &mut out).unwrap();
        }
        out.into_iter().collect()
    }

    fn call(index: u32, id: &str, name: &str, args: &str) -> ProviderEvent {
        ProviderEvent::ToolCallDelta {
            index,
            id: id.into(),
            name: name.into(),
            arguments_fragment: args.into(),
        }
    }

    #[test]
    fn text_reasoning_finish_and_usage() {
        let mut d = ChunkDecoder::new("p", "m");
        let events = decode_all(
            &mut d,
            &[
                r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
                r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"reasoning":"ok"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"content":"Hel\"lo\n"},"finish_reason":null}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25,"prompt_tokens_details":{"cached_tokens":16,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
            ],
        );
        assert_eq!(
            events,
            vec![
                ProviderEvent::ThinkingDelta {
                    text: "hmm".into(),
                    signature: String::new()
                },
                ProviderEvent::ThinkingDelta {
                    text: "ok".into(),
                    signature: String::new()
                },
                ProviderEvent::TextDelta("Hel\"lo\n".into()),
                ProviderEvent::Usage(Usage {
                    input_tokens: 20,
                    output_tokens: 5,
                    cache_read_tokens: 16,
                    cache_write_tokens: 0,
                    reasoning_tokens: 0,
                    cost_pico_usd: None,
                }),
            ]
        );
        assert_eq!(d.stop_reason(), Some(StopReason::EndTurn));
    }

    #[test]
    fn tool_calls_by_index_with_id_and_name_once() {
        let mut d = ChunkDecoder::new("p", "m");
        let events = decode_all(
            &mut d,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"read","arguments":""}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"pa"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"list","arguments":"{}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"read","arguments":"th\":1}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            ],
        );
        assert_eq!(
            events,
            vec![
                call(0, "call_a", "read", ""),
                call(0, "", "", "{\"pa"),
                call(1, "call_b", "list", "{}"),
                call(0, "", "", "th\":1}"),
            ]
        );
        assert_eq!(d.stop_reason(), Some(StopReason::ToolUse));
    }

    #[test]
    fn missing_ids_and_indexes_are_synthesised() {
        let mut d = ChunkDecoder::new("p", "m");
        d.nonce = 0xab;
        let events = decode_all(
            &mut d,
            &[
                r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"a","arguments":{"x":1}}}]}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"id":"second","function":{"name":"b","arguments":"{"}}]}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"}"}}]}}]}"#,
                r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            ],
        );
        assert_eq!(
            events,
            vec![
                call(0, "call_0_00000000000000ab", "a", r#"{"x":1}"#),
                call(1, "second", "b", "{"),
                call(1, "", "", "}"),
            ]
        );
        // Tool calls were made: "stop" from such servers still means tool use.
        assert_eq!(d.stop_reason(), Some(StopReason::ToolUse));
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        for (reason, stop) in [
            ("stop", StopReason::EndTurn),
            ("length", StopReason::MaxTokens),
            ("content_filter", StopReason::Refusal),
            ("tool_calls", StopReason::ToolUse),
        ] {
            let mut d = ChunkDecoder::new("p", "m");
            let chunk = format!(r#"{{"choices":[{{"delta":{{}},"finish_reason":"{reason}"}}]}}"#);
            decode_all(&mut d, &[&chunk]);
            assert_eq!(d.stop_reason(), Some(stop), "{reason}");
        }
    }

    #[test]
    fn errors_inside_the_stream_are_typed() {
        let mut d = ChunkDecoder::new("p", "m");
        let mut out = VecDeque::new();
        let err = |d: &mut ChunkDecoder, out: &mut VecDeque<_>, s: &str| {
            d.decode_chunk(s, out).unwrap_err()
        };
        let e = err(
            &mut d,
            &mut out,
            r#"{"error":{"message":"boom","type":"server_error","code":null}}"#,
        );
        assert!(
            matches!(
                e,
                LlmError::Provider {
                    retryable: true,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = err(
            &mut d,
            &mut out,
            r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#,
        );
        assert!(matches!(e, LlmError::ContextTooLong { .. }), "{e:?}");
        let e = err(
            &mut d,
            &mut out,
            r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#,
        );
        assert!(e.is_retryable(), "{e:?}");
        let e = err(
            &mut d,
            &mut out,
            r#"{"error":{"message":"bad","code":400}}"#,
        );
        assert!(
            matches!(e, LlmError::BadRequest { status: 400, .. }),
            "{e:?}"
        );
        let e = err(&mut d, &mut out, r#"{"error":"model crashed"}"#);
        assert!(e.to_string().contains("model crashed"), "{e}");
        let e = err(&mut d, &mut out, "{not json");
        assert!(matches!(e, LlmError::Protocol { .. }), "{e:?}");
        assert!(out.is_empty());
    }
}
