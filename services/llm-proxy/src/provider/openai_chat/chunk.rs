//! Decoding of Chat Completions stream chunks (`data:` payloads of the SSE
//! stream) into [`ProviderEvent`]s, and of OpenAI-style error bodies.
//!
//! Chunks are deserialised into small structs that keep only what we use:
//! serde skips every other field without allocating, and the `choices` array
//! is reduced to its first element without building a `Vec`.

use std::collections::VecDeque;
use std::fmt;

use openheim_proto::common::v1::{StopReason, Usage};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::error::LlmError;
use crate::provider::ProviderEvent;

#[derive(Deserialize)]
struct Chunk {
    #[serde(default, deserialize_with = "first_choice")]
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
    /// DeepSeek reports cache hits here instead.
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// An OpenAI-style error: `{"error": {...}}` from OpenAI and vLLM,
/// `{"error": "text"}` from Ollama.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ErrorBody {
    Object(ErrorObject),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorObject {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// A string (`"context_length_exceeded"`) or a number (vLLM: `400`).
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

impl ErrorBody {
    pub(super) fn message(&self) -> &str {
        match self {
            Self::Object(o) => o.message.as_deref().unwrap_or_default(),
            Self::Text(t) => t,
        }
    }

    /// The machine-readable code or type, when there is one.
    pub(super) fn code(&self) -> Option<&str> {
        match self {
            Self::Object(o) => o
                .code
                .as_ref()
                .and_then(serde_json::Value::as_str)
                .or(o.kind.as_deref()),
            Self::Text(_) => None,
        }
    }

    fn numeric_code(&self) -> Option<u16> {
        match self {
            Self::Object(o) => o
                .code
                .as_ref()
                .and_then(serde_json::Value::as_u64)
                .and_then(|c| u16::try_from(c).ok()),
            Self::Text(_) => None,
        }
    }
}

/// Phrases with which servers that send no error code say the prompt is too
/// long (vLLM, llama.cpp, OpenAI's own message). Matching text is a last
/// resort here: the code is checked first.
const CONTEXT_TOO_LONG_PHRASES: &[&str] = &[
    "maximum context length",
    "context length exceeded",
    "context_length_exceeded",
    "exceeds the available context size",
    "context window",
];

/// Whether an error body says the context window was exceeded.
pub(super) fn is_context_too_long(code: Option<&str>, message: &str) -> bool {
    if code == Some("context_length_exceeded") {
        return true;
    }
    let message = message.to_ascii_lowercase();
    CONTEXT_TOO_LONG_PHRASES.iter().any(|p| message.contains(p))
}

/// Parses an error response body; `None` when it is not OpenAI-shaped.
pub(super) fn parse_error_body(body: &str) -> Option<ErrorBody> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        error: Option<ErrorBody>,
        /// Some servers answer `{"message": ...}` or FastAPI's `{"detail": ...}`.
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    let envelope: Envelope = serde_json::from_str(body).ok()?;
    envelope
        .error
        .or_else(|| envelope.message.map(ErrorBody::Text))
        .or_else(|| {
            envelope.detail.map(|d| match d {
                serde_json::Value::String(s) => ErrorBody::Text(s),
                other => ErrorBody::Text(other.to_string()),
            })
        })
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
    pub(super) fn decode(
        &mut self,
        data: &str,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), LlmError> {
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| LlmError::Protocol {
            provider: self.provider.clone(),
            message: format!("cannot parse stream chunk: {e}"),
        })?;
        if let Some(error) = chunk.error {
            return Err(self.stream_error(&error));
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
        let id = id.unwrap_or_else(|| format!("call_{index}_{:016x}", self.nonce));
        self.tool_calls.push(ToolCallState {
            index,
            id: id.clone(),
            name_sent: name.is_some(),
        });
        (id, name.unwrap_or_default())
    }

    fn stream_error(&self, error: &ErrorBody) -> LlmError {
        let message = error.message().to_owned();
        let provider = self.provider.clone();
        if let Some(status) = error.numeric_code().filter(|s| (400..600).contains(s)) {
            return LlmError::from_http(crate::error::HttpFailure {
                provider: &self.provider,
                model: &self.model,
                status,
                context_too_long: is_context_too_long(None, &message),
                message,
                retry_after: None,
                auth_hint: "check the provider's API key",
                url: "",
            });
        }
        match error.code() {
            code if is_context_too_long(code, &message) => LlmError::ContextTooLong {
                provider,
                model: self.model.clone(),
                status: None,
                message,
            },
            Some("rate_limit_exceeded" | "rate_limit_error") => LlmError::RateLimited {
                provider,
                message,
                retry_after: None,
            },
            Some("overloaded_error") => LlmError::Overloaded {
                provider,
                status: 529,
                message,
                retry_after: None,
            },
            Some("invalid_request_error") => LlmError::BadRequest {
                provider,
                status: 400,
                message,
            },
            // `server_error` and anything unknown: mid-stream failures are
            // usually transient on the provider's side.
            _ => LlmError::Provider {
                provider,
                status: None,
                message,
                retryable: true,
                retry_after: None,
            },
        }
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
    }
}

/// Deserialises `choices` into its first element, skipping the rest, so no
/// `Vec` is built per chunk. `null` and `[]` give `None`.
fn first_choice<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Choice>, D::Error> {
    struct FirstChoice;

    impl<'de> Visitor<'de> for FirstChoice {
        type Value = Option<Choice>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of choices")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<Choice>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    deserializer.deserialize_option(FirstChoice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut ChunkDecoder, chunks: &[&str]) -> Vec<ProviderEvent> {
        let mut out = VecDeque::new();
        for chunk in chunks {
            decoder.decode(chunk, &mut out).unwrap();
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
                    cache_write_tokens: 0
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
        let err =
            |d: &mut ChunkDecoder, out: &mut VecDeque<_>, s: &str| d.decode(s, out).unwrap_err();
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

    #[test]
    fn error_bodies_of_several_servers() {
        let openai = parse_error_body(
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        )
        .unwrap();
        assert_eq!(openai.code(), Some("context_length_exceeded"));
        assert!(is_context_too_long(openai.code(), openai.message()));
        let ollama = parse_error_body(r#"{"error":"model \"x\" not found"}"#).unwrap();
        assert_eq!(ollama.message(), "model \"x\" not found");
        let fastapi = parse_error_body(r#"{"detail":"Not Found"}"#).unwrap();
        assert_eq!(fastapi.message(), "Not Found");
        assert!(parse_error_body("<html>").is_none());
        assert!(is_context_too_long(
            Some("invalid_request_error"),
            "This model's maximum context length is 4096 tokens. However, you requested 5000"
        ));
        assert!(!is_context_too_long(
            None,
            "unknown parameter: stream_options"
        ));
    }
}
