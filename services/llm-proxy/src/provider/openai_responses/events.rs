//! Decoding of the OpenAI Responses API event stream into
//! [`ProviderEvent`]s.
//!
//! Events used (named by the SSE `event:` line and repeated in `type`):
//! `response.output_item.added` (a `function_call` item with `call_id` and
//! `name` opens a tool call), `response.output_text.delta`,
//! `response.refusal.delta`, `response.function_call_arguments.delta`,
//! `response.reasoning_summary_text.delta` / `response.reasoning_text.delta`
//! (thinking), `response.output_item.done` (arguments of servers that send
//! no deltas), and the terminal `response.completed`, `response.incomplete`
//! and `response.failed`; `error` reports a failure. Everything else
//! (`response.created`, `…content_part.added`, `…done` events) is ignored.

use std::borrow::Cow;
use std::collections::VecDeque;

use openheim_proto::common::v1::{StopReason, Usage};
use serde::Deserialize;

use crate::error::LlmError;
use crate::provider::http::{self, Decoder};
use crate::provider::wire_error::{self, ErrorBody, ErrorObject, Origin};
use crate::provider::{ProviderEvent, signature};

#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ItemEvent {
    item: OutputItem,
}

#[derive(Deserialize)]
struct OutputItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    /// A reasoning item's encrypted content (asked for with `include`).
    #[serde(default)]
    encrypted_content: Option<String>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    item_id: Option<Cow<'a, str>>,
    delta: String,
}

#[derive(Deserialize)]
struct Terminal {
    response: ResponseObject,
}

#[derive(Deserialize)]
struct ResponseObject {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct IncompleteDetails {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: u64,
}

struct Call {
    item_id: String,
    arguments_sent: bool,
}

/// Turns the events of one streamed response into provider events.
pub(super) struct EventDecoder {
    provider: String,
    model: String,
    /// Function-call items in order; the position is the tool-call index.
    calls: Vec<Call>,
    refused: bool,
}

impl EventDecoder {
    pub(super) fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            calls: Vec::new(),
            refused: false,
        }
    }

    fn parse<'a, T: Deserialize<'a>>(&self, data: &'a str, what: &str) -> Result<T, LlmError> {
        serde_json::from_str(data).map_err(|e| http::parse_error(&self.provider, what, &e))
    }

    fn origin(&self) -> Origin<'_> {
        Origin {
            provider: &self.provider,
            model: &self.model,
        }
    }

    fn item_added(&mut self, item: OutputItem, out: &mut VecDeque<ProviderEvent>) {
        if item.kind != "function_call" {
            return;
        }
        let index = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
        let arguments = item.arguments.unwrap_or_default();
        self.calls.push(Call {
            item_id: item.id.unwrap_or_default(),
            arguments_sent: !arguments.is_empty(),
        });
        out.push_back(ProviderEvent::ToolCallDelta {
            index,
            id: item.call_id.unwrap_or_default(),
            name: item.name.unwrap_or_default(),
            arguments_fragment: arguments,
        });
    }

    /// Arguments of a finished call that sent none before (some compatible
    /// servers skip the deltas).
    fn item_done(&mut self, item: OutputItem, out: &mut VecDeque<ProviderEvent>) {
        if item.kind == "reasoning" {
            // Kept as a signature record, to be replayed on the next request.
            if let (Some(id), Some(encrypted)) = (&item.id, &item.encrypted_content)
                && !encrypted.is_empty()
            {
                out.push_back(ProviderEvent::ThinkingDelta {
                    text: String::new(),
                    signature: signature::openai_record(id, encrypted),
                });
            }
            return;
        }
        let Some(position) = item.id.as_deref().and_then(|id| self.position(id)) else {
            return;
        };
        let arguments = item.arguments.unwrap_or_default();
        if let Some(call) = self.calls.get_mut(position)
            && !call.arguments_sent
            && !arguments.is_empty()
        {
            call.arguments_sent = true;
            out.push_back(call_fragment(position, arguments));
        }
    }

    fn arguments_delta(&mut self, delta: Delta<'_>, out: &mut VecDeque<ProviderEvent>) {
        // Without an item id, the latest call is the one being streamed.
        let position = match delta.item_id.as_deref() {
            Some(id) => self.position(id),
            None => self.calls.len().checked_sub(1),
        };
        let Some(position) = position else { return };
        if let Some(call) = self.calls.get_mut(position)
            && !delta.delta.is_empty()
        {
            call.arguments_sent = true;
            out.push_back(call_fragment(position, delta.delta));
        }
    }

    fn position(&self, item_id: &str) -> Option<usize> {
        self.calls.iter().position(|c| c.item_id == item_id)
    }

    /// `{"type":"error","code":…,"message":…}`, or the same nested in `error`.
    fn error_event(&self, data: &str) -> LlmError {
        #[derive(Deserialize)]
        struct ErrorEvent {
            #[serde(flatten)]
            top: ErrorObject,
            #[serde(default)]
            error: Option<ErrorObject>,
        }
        let event: ErrorEvent = match self.parse(data, "error") {
            Ok(event) => event,
            Err(error) => return error,
        };
        let mut error = event.error.unwrap_or(event.top);
        // The event's own `type` is "error", which says nothing.
        error.kind = error.kind.filter(|k| k != "error");
        wire_error::stream_error(self.origin(), &ErrorBody::Object(error))
    }

    fn terminal(
        &self,
        kind: &str,
        terminal: Terminal,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<StopReason, LlmError> {
        let response = terminal.response;
        if kind == "response.failed" {
            let error = ErrorBody::Object(response.error.unwrap_or_default());
            return Err(wire_error::stream_error(self.origin(), &error));
        }
        if let Some(usage) = response.usage {
            out.push_back(ProviderEvent::Usage(Usage {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cache_read_tokens: usage.input_tokens_details.map_or(0, |d| d.cached_tokens),
                cache_write_tokens: 0,
                reasoning_tokens: usage
                    .output_tokens_details
                    .map_or(0, |d| d.reasoning_tokens),
                cost_pico_usd: None,
            }));
        }
        let incomplete = response.incomplete_details.and_then(|d| d.reason);
        Ok(match incomplete.as_deref() {
            Some("max_output_tokens") => StopReason::MaxTokens,
            Some("content_filter") => StopReason::Refusal,
            _ if self.refused => StopReason::Refusal,
            _ if !self.calls.is_empty() => StopReason::ToolUse,
            _ => StopReason::EndTurn,
        })
    }
}

impl Decoder for EventDecoder {
    fn decode(
        &mut self,
        event: &str,
        data: &str,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Option<StopReason>, LlmError> {
        let typed;
        let kind = if event.is_empty() || event == "message" {
            typed = self.parse::<Typed<'_>>(data, "event")?;
            &*typed.kind
        } else {
            event
        };
        match kind {
            "response.output_text.delta" => {
                let delta: Delta<'_> = self.parse(data, kind)?;
                push_text(delta.delta, out);
            }
            "response.refusal.delta" => {
                let delta: Delta<'_> = self.parse(data, kind)?;
                self.refused = true;
                push_text(delta.delta, out);
            }
            "response.function_call_arguments.delta" => {
                let delta = self.parse(data, kind)?;
                self.arguments_delta(delta, out);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let delta: Delta<'_> = self.parse(data, kind)?;
                if !delta.delta.is_empty() {
                    out.push_back(ProviderEvent::ThinkingDelta {
                        text: delta.delta,
                        signature: String::new(),
                    });
                }
            }
            "response.output_item.added" => {
                let added: ItemEvent = self.parse(data, kind)?;
                self.item_added(added.item, out);
            }
            "response.output_item.done" => {
                let done: ItemEvent = self.parse(data, kind)?;
                self.item_done(done.item, out);
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let terminal = self.parse(data, kind)?;
                return self.terminal(kind, terminal, out).map(Some);
            }
            "error" => return Err(self.error_event(data)),
            _ => {}
        }
        Ok(None)
    }

    /// A response always ends with a terminal event; without it, it was cut.
    fn end_of_body(&mut self, _out: &mut VecDeque<ProviderEvent>) -> Option<StopReason> {
        None
    }
}

fn push_text(text: String, out: &mut VecDeque<ProviderEvent>) {
    if !text.is_empty() {
        out.push_back(ProviderEvent::TextDelta(text));
    }
}

fn call_fragment(position: usize, arguments: String) -> ProviderEvent {
    ProviderEvent::ToolCallDelta {
        index: u32::try_from(position).unwrap_or(u32::MAX),
        id: String::new(),
        name: String::new(),
        arguments_fragment: arguments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[(&str, &str)]) -> (Vec<ProviderEvent>, Option<StopReason>) {
        let mut decoder = EventDecoder::new("openai", "gpt-test");
        let mut out = VecDeque::new();
        let mut stop = None;
        for (event, data) in events {
            stop = decoder.decode(event, data, &mut out).unwrap();
        }
        (out.into_iter().collect(), stop)
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
    fn text_reasoning_and_usage() {
        let (events, stop) = run(&[
            (
                "response.created",
                r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[],"usage":null}}"#,
            ),
            (
                "response.reasoning_summary_text.delta",
                r#"{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Thinking","sequence_number":2}"#,
            ),
            (
                "response.output_text.delta",
                r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hi \"there\"","logprobs":[],"sequence_number":5}"#,
            ),
            (
                "response.completed",
                r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","status":"completed","incomplete_details":null,"output":[],"usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1024},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":1207}}}"#,
            ),
        ]);
        assert_eq!(
            events,
            [
                ProviderEvent::ThinkingDelta {
                    text: "Thinking".into(),
                    signature: String::new()
                },
                ProviderEvent::TextDelta("Hi \"there\"".into()),
                ProviderEvent::Usage(Usage {
                    input_tokens: 1200,
                    output_tokens: 7,
                    cache_read_tokens: 1024,
                    cache_write_tokens: 0,
                    reasoning_tokens: 3,
                    cost_pico_usd: None,
                }),
            ]
        );
        assert_eq!(stop, Some(StopReason::EndTurn));
    }

    #[test]
    fn interleaved_function_calls_by_item_id() {
        let (events, stop) = run(&[
            (
                "",
                r#"{"type":"response.output_item.added","output_index":0,"item":{"id":"fc_a","type":"function_call","status":"in_progress","arguments":"","call_id":"call_a","name":"read"}}"#,
            ),
            (
                "response.output_item.added",
                r#"{"type":"response.output_item.added","output_index":1,"item":{"id":"fc_b","type":"function_call","status":"in_progress","arguments":"","call_id":"call_b","name":"list"}}"#,
            ),
            (
                "response.function_call_arguments.delta",
                r#"{"type":"response.function_call_arguments.delta","item_id":"fc_b","output_index":1,"delta":"{}"}"#,
            ),
            (
                "response.function_call_arguments.delta",
                r#"{"type":"response.function_call_arguments.delta","item_id":"fc_a","output_index":0,"delta":"{\"p\":1}"}"#,
            ),
            (
                "response.output_item.done",
                r#"{"type":"response.output_item.done","output_index":0,"item":{"id":"fc_a","type":"function_call","status":"completed","arguments":"{\"p\":1}","call_id":"call_a","name":"read"}}"#,
            ),
            (
                "response.completed",
                r#"{"type":"response.completed","response":{"status":"completed","usage":null}}"#,
            ),
        ]);
        assert_eq!(
            events,
            [
                call(0, "call_a", "read", ""),
                call(1, "call_b", "list", ""),
                call(1, "", "", "{}"),
                call(0, "", "", "{\"p\":1}"),
            ]
        );
        assert_eq!(stop, Some(StopReason::ToolUse));
    }

    #[test]
    fn incomplete_refusals_and_failures() {
        let (_, stop) = run(&[(
            "response.incomplete",
            r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}}"#,
        )]);
        assert_eq!(stop, Some(StopReason::MaxTokens));
        let (events, stop) = run(&[
            (
                "response.refusal.delta",
                r#"{"type":"response.refusal.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"I can't"}"#,
            ),
            (
                "response.completed",
                r#"{"type":"response.completed","response":{"status":"completed"}}"#,
            ),
        ]);
        assert_eq!(events, [ProviderEvent::TextDelta("I can't".into())]);
        assert_eq!(stop, Some(StopReason::Refusal));
        let mut decoder = EventDecoder::new("openai", "gpt-test");
        let mut out = VecDeque::new();
        let error = decoder
            .decode(
                "response.failed",
                r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"The model failed"}}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
        let error = decoder
            .decode(
                "error",
                r#"{"type":"error","code":"rate_limit_exceeded","message":"Slow down","param":null,"sequence_number":3}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(error, LlmError::RateLimited { .. }), "{error:?}");
        let error = decoder
            .decode(
                "error",
                r#"{"type":"error","error":{"type":"invalid_request_error","code":"context_length_exceeded","message":"Too long"}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(
            matches!(error, LlmError::ContextTooLong { .. }),
            "{error:?}"
        );
        assert!(decoder.end_of_body(&mut out).is_none());
    }
}
