//! Decoding of Gemini's `streamGenerateContent?alt=sse` chunks into
//! [`ProviderEvent`]s.
//!
//! Each `data:` payload is a `GenerateContentResponse`: `candidates[0]` with
//! `content.parts` (`text`, `thought: true` text, `functionCall {id?, name,
//! args}`, any part with a `thoughtSignature`) and, on the last one,
//! `finishReason`; `usageMetadata` (cumulative); `promptFeedback.blockReason`
//! when the prompt itself was blocked. Function calls arrive whole, never
//! fragmented. The stream has no terminal event: a chunk with a finish
//! reason followed by the end of the body is a complete answer, a body that
//! ends without one was cut.

use std::collections::VecDeque;

use openheim_proto::common::v1::{StopReason, Usage};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::LlmError;
use crate::provider::content::first_element;
use crate::provider::http::{self, Decoder};
use crate::provider::signature::{GeminiTarget, gemini_record};
use crate::provider::wire_error::{self, ErrorBody, Origin};
use crate::provider::{ProviderEvent, made_up_call_id};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    #[serde(default, deserialize_with = "first_element")]
    candidates: Option<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<FunctionCall>,
    #[serde(default)]
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    args: Option<Box<RawValue>>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

/// What a finish reason means.
enum Finish {
    Stop(StopReason),
    /// The model produced a call it cannot make; worth another attempt.
    Failed(&'static str),
}

/// Turns the chunks of one streamed answer into provider events.
pub(super) struct ChunkDecoder {
    provider: String,
    model: String,
    /// Function calls seen so far; the next one gets this index.
    calls: u32,
    /// Random per reply, for the ids of calls Gemini sent without one
    /// ([`made_up_call_id`]).
    nonce: u64,
    usage: Option<UsageMetadata>,
    stop: Option<StopReason>,
}

impl ChunkDecoder {
    pub(super) fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            calls: 0,
            nonce: fastrand::u64(..),
            usage: None,
            stop: None,
        }
    }

    fn part(&mut self, part: Part, out: &mut VecDeque<ProviderEvent>) {
        let target = if let Some(call) = part.function_call {
            let k = self.calls;
            self.calls += 1;
            out.push_back(ProviderEvent::ToolCallDelta {
                index: k,
                // Older models send no ids; made-up ones must not repeat
                // across replies (clients and the history key calls by id).
                id: call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| made_up_call_id(k, self.nonce)),
                name: call.name,
                arguments_fragment: call
                    .args
                    .map_or_else(|| "{}".to_owned(), |a| String::from(Box::<str>::from(a))),
            });
            GeminiTarget::Call(k)
        } else if part.thought {
            if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                out.push_back(ProviderEvent::ThinkingDelta {
                    text,
                    signature: String::new(),
                });
            }
            GeminiTarget::Thought
        } else {
            if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                out.push_back(ProviderEvent::TextDelta(text));
            }
            GeminiTarget::Text
        };
        if let Some(signature) = part.thought_signature.filter(|s| !s.is_empty()) {
            out.push_back(ProviderEvent::ThinkingDelta {
                text: String::new(),
                signature: gemini_record(target, &signature),
            });
        }
    }

    fn finish(&mut self, reason: &str) -> Result<(), LlmError> {
        match finish_reason(reason) {
            Finish::Stop(stop) => {
                self.stop = Some(stop);
                Ok(())
            }
            Finish::Failed(what) => Err(LlmError::Provider {
                provider: self.provider.clone(),
                status: None,
                message: format!("the model {what} (finishReason {reason})"),
                retryable: true,
                retry_after: None,
            }),
        }
    }

    /// Thoughts are output the model was billed for; tool-use prompt tokens
    /// are input. The prompt count already includes the cached part.
    fn usage(&self) -> Option<Usage> {
        let u = self.usage?;
        Some(Usage {
            input_tokens: u.prompt_token_count.unwrap_or(0)
                + u.tool_use_prompt_token_count.unwrap_or(0),
            output_tokens: u.candidates_token_count.unwrap_or(0)
                + u.thoughts_token_count.unwrap_or(0),
            cache_read_tokens: u.cached_content_token_count.unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: u.thoughts_token_count.unwrap_or(0),
            cost_pico_usd: None,
        })
    }
}

impl Decoder for ChunkDecoder {
    fn decode(
        &mut self,
        _event: &str,
        data: &str,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Option<StopReason>, LlmError> {
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| http::parse_error(&self.provider, "stream chunk", &e))?;
        if let Some(error) = chunk.error {
            let origin = Origin {
                provider: &self.provider,
                model: &self.model,
            };
            return Err(wire_error::stream_error(origin, &error));
        }
        if let Some(usage) = chunk.usage_metadata {
            self.usage = Some(usage);
        }
        if chunk
            .prompt_feedback
            .is_some_and(|f| f.block_reason.is_some())
        {
            self.stop = Some(StopReason::Refusal);
        }
        if let Some(candidate) = chunk.candidates {
            for part in candidate.content.into_iter().flat_map(|c| c.parts) {
                self.part(part, out);
            }
            if let Some(reason) = candidate.finish_reason {
                self.finish(&reason)?;
            }
        }
        Ok(None)
    }

    fn end_of_body(&mut self, out: &mut VecDeque<ProviderEvent>) -> Option<StopReason> {
        let stop = self.stop?;
        if let Some(usage) = self.usage() {
            out.push_back(ProviderEvent::Usage(usage));
        }
        // Gemini says STOP for replies with function calls too.
        Some(match stop {
            StopReason::EndTurn if self.calls > 0 => StopReason::ToolUse,
            other => other,
        })
    }
}

fn finish_reason(reason: &str) -> Finish {
    match reason {
        "MAX_TOKENS" => Finish::Stop(StopReason::MaxTokens),
        "SAFETY" | "RECITATION" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => Finish::Stop(StopReason::Refusal),
        "MALFORMED_FUNCTION_CALL" => Finish::Failed("produced a malformed function call"),
        "UNEXPECTED_TOOL_CALL" => Finish::Failed("called a tool it was not offered"),
        // STOP, OTHER, FINISH_REASON_UNSPECIFIED and reasons added later.
        _ => Finish::Stop(StopReason::EndTurn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str]) -> (Vec<ProviderEvent>, Option<StopReason>) {
        run_with_nonce(fastrand::u64(..), chunks)
    }

    fn run_with_nonce(nonce: u64, chunks: &[&str]) -> (Vec<ProviderEvent>, Option<StopReason>) {
        let mut decoder = ChunkDecoder::new("gemini", "gemini-test");
        decoder.nonce = nonce;
        let mut out = VecDeque::new();
        for chunk in chunks {
            assert_eq!(decoder.decode("", chunk, &mut out).unwrap(), None);
        }
        let stop = decoder.end_of_body(&mut out);
        (out.into_iter().collect(), stop)
    }

    #[test]
    fn text_thoughts_signatures_and_usage() {
        let (events, stop) = run(&[
            r#"{"candidates": [{"content": {"parts": [{"text": "Let me think","thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 10,"totalTokenCount": 10},"modelVersion": "gemini-test","responseId": "r1"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 10,"candidatesTokenCount": 1,"totalTokenCount": 11},"modelVersion": "gemini-test"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "","thoughtSignature": "AY89a18i"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 1200,"candidatesTokenCount": 9,"cachedContentTokenCount": 1024,"thoughtsTokenCount": 30,"totalTokenCount": 1239}}"#,
        ]);
        assert_eq!(
            events,
            [
                ProviderEvent::ThinkingDelta {
                    text: "Let me think".into(),
                    signature: String::new()
                },
                ProviderEvent::TextDelta("Hello".into()),
                ProviderEvent::ThinkingDelta {
                    text: String::new(),
                    signature: "t:AY89a18i;".into()
                },
                ProviderEvent::Usage(Usage {
                    input_tokens: 1200,
                    output_tokens: 39,
                    cache_read_tokens: 1024,
                    cache_write_tokens: 0,
                    reasoning_tokens: 30,
                    cost_pico_usd: None,
                }),
            ]
        );
        assert_eq!(stop, Some(StopReason::EndTurn));
    }

    #[test]
    fn function_calls_get_ids_and_make_stop_a_tool_use() {
        let chunk = r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"read_file","args":{}}}]},"finishReason":"STOP"}]}"#;
        let made_up = |events: Vec<ProviderEvent>| match &events[0] {
            ProviderEvent::ToolCallDelta { id, .. } => id.clone(),
            other => panic!("{other:?}"),
        };
        let (first, second) = (made_up(run(&[chunk]).0), made_up(run(&[chunk]).0));
        assert_ne!(first, second, "made-up ids repeat across replies");
        let nonce = 7;
        let (events, stop) = run_with_nonce(
            nonce,
            &[
                r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"read_file","args":{"path":"a.txt"}},"thoughtSignature":"Cs0B"},{"functionCall":{"id":"fc-2","name":"list_dir","args":{}}}]},"finishReason":"STOP"}]}"#,
            ],
        );
        assert_eq!(
            events,
            [
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    id: made_up_call_id(0, nonce),
                    name: "read_file".into(),
                    arguments_fragment: r#"{"path":"a.txt"}"#.into()
                },
                ProviderEvent::ThinkingDelta {
                    text: String::new(),
                    signature: "c0:Cs0B;".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 1,
                    id: "fc-2".into(),
                    name: "list_dir".into(),
                    arguments_fragment: "{}".into()
                },
            ]
        );
        assert_eq!(stop, Some(StopReason::ToolUse));
    }

    #[test]
    fn finish_reasons_blocks_errors_and_early_ends() {
        for (reason, stop) in [
            ("MAX_TOKENS", StopReason::MaxTokens),
            ("SAFETY", StopReason::Refusal),
            ("RECITATION", StopReason::Refusal),
            ("PROHIBITED_CONTENT", StopReason::Refusal),
            ("OTHER", StopReason::EndTurn),
        ] {
            let chunk = format!(r#"{{"candidates":[{{"finishReason":"{reason}"}}]}}"#);
            assert_eq!(run(&[&chunk]).1, Some(stop), "{reason}");
        }
        let blocked =
            r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":5}}"#;
        assert_eq!(run(&[blocked]).1, Some(StopReason::Refusal));
        // Text without a finish reason, then the body ends: cut.
        assert_eq!(
            run(&[r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}"#]).1,
            None
        );
        let mut decoder = ChunkDecoder::new("gemini", "m");
        let mut out = VecDeque::new();
        let error = decoder
            .decode(
                "",
                r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(error.is_overload(), "{error:?}");
        let error = decoder
            .decode(
                "",
                r#"{"candidates":[{"finishReason":"MALFORMED_FUNCTION_CALL"}]}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
    }
}
