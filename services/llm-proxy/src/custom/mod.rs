//! The extension point for LLM providers implemented by an application that
//! embeds openheim: re-exported by the `openheim` library as `openheim::llm`,
//! and explained in `docs/custom-llm-provider.md`.
//!
//! An implementation of [`LlmProvider`] is registered under a provider name
//! and plugs in *below* llm-proxy's policy, not beside it: the service
//! resolves `name/model` to it, retries its retryable [`ProviderError`]s with
//! the provider's retry settings, falls back to the provider's `fallbacks`,
//! applies the idle timeout (`timeout_secs`) and the total deadline of a
//! completion, reports its usage and traces every call, exactly as for a
//! built-in provider. The implementation only turns one request into a
//! stream of normalised events, written to an [`EventSink`], and says how
//! the answer ended.
//!
//! Stability: the types of this module are the public API of that
//! extension point. They are shaped so that it can grow without breaking
//! implementations: the enums are `#[non_exhaustive]`, the request is read
//! through methods, and the trait's one method is all an implementation
//! writes. Everything else in this crate is internal to openheim.

mod adapter;
mod error;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use openheim_proto::common::v1::{Message, StopReason, ToolDefinition, Usage};
use tokio::sync::mpsc;

use crate::error::LlmError;
use crate::provider::{self, Conversation};

pub(crate) use adapter::{Registered, not_registered};
pub use error::{ErrorKind, ProviderError};

/// An LLM provider implemented by the embedding application.
///
/// [`LlmProvider::stream`] is called once per attempt (a retry or a
/// fallback calls it again with the same request). Dropping the future it
/// returns is cancellation: openheim does so when the turn is cancelled,
/// when the provider stays silent longer than its `timeout_secs`, and at the
/// completion's total deadline, so an implementation only needs to hold its
/// upstream request inside that future for it to be aborted too.
///
/// ```
/// use openheim_llm_proxy::custom::{
///     CompletionRequest, ErrorKind, EventSink, FinishReason, LlmProvider, ProviderError,
/// };
///
/// struct Echo;
///
/// #[async_trait::async_trait]
/// impl LlmProvider for Echo {
///     async fn stream(
///         &self,
///         request: &CompletionRequest,
///         events: &mut EventSink,
///     ) -> Result<FinishReason, ProviderError> {
///         let Some(last) = request.messages().last() else {
///             return Err(ProviderError::new(ErrorKind::InvalidRequest, "no messages"));
///         };
///         events.text(format!("{} blocks received", last.content.len())).await;
///         Ok(FinishReason::EndTurn)
///     }
/// }
/// ```
#[async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    /// Streams one answer to `request` into `events`, then returns why it
    /// ended. An `Err` ends the attempt: openheim retries it or falls back
    /// when [`ProviderError::is_retryable`] says so, and otherwise reports
    /// it to the user, naming this provider. If events were already written,
    /// the caller is told to discard them before a retry.
    async fn stream(
        &self,
        request: &CompletionRequest,
        events: &mut EventSink,
    ) -> Result<FinishReason, ProviderError>;
}

/// What to answer: the model (the part after `provider/`), the system
/// prompt, the conversation and the tools offered.
///
/// The conversation is a list of [`Message`]s: `user` messages with text
/// and images, `assistant` messages with text, thinking and tool calls, and
/// `tool` messages, each carrying exactly one result for an earlier call
/// (matched by its id). Shared between attempts: reading it copies nothing.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    model: String,
    conversation: Arc<Conversation>,
    max_tokens: Option<u32>,
}

impl CompletionRequest {
    pub(crate) fn new(
        model: String,
        conversation: Arc<Conversation>,
        configured_max_tokens: Option<u32>,
    ) -> Self {
        let max_tokens = conversation.max_tokens.or(configured_max_tokens);
        Self {
            model,
            conversation,
            max_tokens,
        }
    }

    /// The model id to ask for, as resolved from `provider/model`, the
    /// provider's `default_model` or one of its `models`.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The system prompt (may be empty).
    pub fn system_prompt(&self) -> &str {
        &self.conversation.system_prompt
    }

    /// The conversation, oldest first. Older turns that do not fit the
    /// provider's `context_window` have already been left out.
    pub fn messages(&self) -> &[Message] {
        &self.conversation.messages
    }

    /// The tools the model may call; each `input_schema_json` is a JSON
    /// Schema of the arguments object.
    pub fn tools(&self) -> &[ToolDefinition] {
        &self.conversation.tools
    }

    /// The output token limit: the request's own, else the provider's
    /// configured `max_tokens`; `None` leaves it to the model.
    pub fn max_tokens(&self) -> Option<u32> {
        self.max_tokens
    }

    /// The sampling temperature, when the caller chose one.
    pub fn temperature(&self) -> Option<f32> {
        self.conversation.temperature
    }
}

/// Why an answer ended: the `Ok` of [`LlmProvider::stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinishReason {
    /// The model finished its answer.
    EndTurn,
    /// The model asked for the tool calls it streamed.
    ToolUse,
    /// The answer was cut at the output token limit.
    MaxTokens,
    /// The model or the provider refused to answer.
    Refusal,
}

impl FinishReason {
    fn stop_reason(self) -> StopReason {
        match self {
            Self::EndTurn => StopReason::EndTurn,
            Self::ToolUse => StopReason::ToolUse,
            Self::MaxTokens => StopReason::MaxTokens,
            Self::Refusal => StopReason::Refusal,
        }
    }
}

/// One piece of a streamed answer, in the order the model produced it.
///
/// [`EventSink`] has a method for each; the enum lets an implementation
/// decode its wire format in a pure function (easy to test) and send what
/// it decoded with [`EventSink::send`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProviderEvent {
    /// A fragment of the answer's text.
    Text(String),
    /// A fragment of the model's reasoning, shown to the user as thinking.
    Thinking(String),
    /// An opaque signature of the reasoning, kept with it in the history
    /// and sent back in later requests (for providers that check it).
    ThinkingSignature(String),
    /// Tool call number `index` (0, 1, … within this answer) begins. An
    /// empty `id` is replaced by `call_{index}`; `name` must not be empty.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// The next fragment of the JSON arguments of tool call `index`, which
    /// must have started. The fragments joined make the arguments object.
    ToolCallArguments { index: u32, fragment: String },
    /// Token counts of this call. `input_tokens` counts the whole prompt,
    /// including its cached part (`cache_read_tokens`,
    /// `cache_write_tokens`). The last report counts; send it once, at the
    /// end, if the provider reports it then.
    Usage(Usage),
}

/// The most tool calls one answer may start (indexes `0..MAX_TOOL_CALLS`);
/// the agent loop accepts no more.
pub const MAX_TOOL_CALLS: u32 = 128;

/// A tool call a custom provider started wrongly.
#[derive(Debug, thiserror::Error)]
enum BadToolCall {
    #[error(
        "tool call index {0} is out of range (at most {max} calls per answer)",
        max = MAX_TOOL_CALLS
    )]
    OutOfRange(u32),
    #[error("tool call {0} has no name")]
    NoName(u32),
}

/// Where an [`LlmProvider`] writes its events. Writing waits while the
/// reader is behind, so a slow client slows the provider's read instead of
/// filling memory.
///
/// A malformed event (a tool call without a name, arguments for a call that
/// never started) ends the attempt with a protocol error naming the
/// provider; writes after that are ignored, as the attempt is over.
pub struct EventSink {
    tx: mpsc::Sender<Result<provider::ProviderEvent, LlmError>>,
    provider: Arc<str>,
    /// Bit `i` set: tool call `i` has started.
    started_calls: u128,
    /// For the ids of calls started without one.
    nonce: u64,
    failed: bool,
}

impl EventSink {
    fn new(
        tx: mpsc::Sender<Result<provider::ProviderEvent, LlmError>>,
        provider: Arc<str>,
    ) -> Self {
        Self {
            tx,
            provider,
            started_calls: 0,
            nonce: fastrand::u64(..),
            failed: false,
        }
    }

    /// Writes one event.
    pub async fn send(&mut self, event: ProviderEvent) {
        use provider::ProviderEvent as Internal;
        let internal = match event {
            ProviderEvent::Text(text) if text.is_empty() => return,
            ProviderEvent::Text(text) => Internal::TextDelta(text),
            ProviderEvent::Thinking(text) if text.is_empty() => return,
            ProviderEvent::Thinking(text) => Internal::ThinkingDelta {
                text,
                signature: String::new(),
            },
            ProviderEvent::ThinkingSignature(signature) if signature.is_empty() => return,
            ProviderEvent::ThinkingSignature(signature) => Internal::ThinkingDelta {
                text: String::new(),
                signature,
            },
            ProviderEvent::ToolCallStart { index, id, name } => {
                if let Err(problem) = self.start_call(index, &name) {
                    return self.fail(problem.to_string()).await;
                }
                let id = if id.is_empty() {
                    provider::made_up_call_id(index, self.nonce)
                } else {
                    id
                };
                Internal::ToolCallDelta {
                    index,
                    id,
                    name,
                    arguments_fragment: String::new(),
                }
            }
            ProviderEvent::ToolCallArguments { index, fragment } => {
                if !self.has_started(index) {
                    let message = format!("arguments for tool call {index} before it started");
                    return self.fail(message).await;
                }
                if fragment.is_empty() {
                    return;
                }
                Internal::ToolCallDelta {
                    index,
                    id: String::new(),
                    name: String::new(),
                    arguments_fragment: fragment,
                }
            }
            ProviderEvent::Usage(usage) => Internal::Usage(usage),
        };
        self.write(Ok(internal)).await;
    }

    /// Writes a fragment of the answer's text.
    pub async fn text(&mut self, text: impl Into<String>) {
        self.send(ProviderEvent::Text(text.into())).await;
    }

    /// Writes a fragment of the model's reasoning.
    pub async fn thinking(&mut self, text: impl Into<String>) {
        self.send(ProviderEvent::Thinking(text.into())).await;
    }

    /// Writes (a fragment of) the reasoning's signature.
    pub async fn thinking_signature(&mut self, signature: impl Into<String>) {
        self.send(ProviderEvent::ThinkingSignature(signature.into()))
            .await;
    }

    /// Starts tool call `index` (see [`ProviderEvent::ToolCallStart`]).
    pub async fn tool_call(&mut self, index: u32, id: impl Into<String>, name: impl Into<String>) {
        let (id, name) = (id.into(), name.into());
        self.send(ProviderEvent::ToolCallStart { index, id, name })
            .await;
    }

    /// Appends to the arguments of tool call `index`.
    pub async fn tool_call_arguments(&mut self, index: u32, fragment: impl Into<String>) {
        let fragment = fragment.into();
        self.send(ProviderEvent::ToolCallArguments { index, fragment })
            .await;
    }

    /// Reports the token counts of this call.
    pub async fn usage(&mut self, usage: Usage) {
        self.send(ProviderEvent::Usage(usage)).await;
    }

    fn start_call(&mut self, index: u32, name: &str) -> Result<(), BadToolCall> {
        if index >= MAX_TOOL_CALLS {
            return Err(BadToolCall::OutOfRange(index));
        }
        if name.is_empty() {
            return Err(BadToolCall::NoName(index));
        }
        self.started_calls |= 1 << index;
        Ok(())
    }

    fn has_started(&self, index: u32) -> bool {
        index < MAX_TOOL_CALLS && self.started_calls & (1 << index) != 0
    }

    async fn fail(&mut self, message: String) {
        let error = LlmError::Protocol {
            provider: self.provider.to_string(),
            message,
        };
        self.write(Err(error)).await;
        self.failed = true;
    }

    async fn write(&mut self, item: Result<provider::ProviderEvent, LlmError>) {
        if self.failed {
            return;
        }
        // The receiver lives as long as the future writing here: a send
        // cannot fail while anyone could observe it.
        let _ = self.tx.send(item).await;
    }
}
