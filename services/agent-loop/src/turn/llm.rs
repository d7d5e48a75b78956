//! The LLM calls of a turn: fitting the history into the model's context
//! window (`context.rs`), streaming one completion and assembling its reply
//! (`reply.rs`, `shown.rs`), and the retry with fewer turns when the
//! provider says the conversation is too long.

use futures::StreamExt;
use openheim_proto::agent_loop::v1::{
    ModelSelected, NoticeKind, NoticeLevel, Retracted, turn_event::Event,
};
use openheim_proto::common::v1::{Message, ToolCall, ToolDefinition};
use openheim_proto::llm_proxy::v1::{
    CompleteRequest, ErrorKind, LlmError, ResolveModelResponse, completion_event,
};

use super::{MAX_CONTEXT_RETRIES, Turn};
use crate::context::{self, ModelLimits};
use crate::error::AgentError;
use crate::reply::{Reply, apply_tool_delta};
use crate::shown::Shown;
use crate::store::StoredMessage;

/// How one turn fits its history into the model's context window.
pub(crate) struct ContextFit {
    /// `provider/model`, for notes.
    model: String,
    /// The model's window in tokens, 0 when unknown.
    window: u64,
    /// The model's limits as llm-proxy reported them.
    pub(crate) limits: ModelLimits,
    /// Estimated tokens the history may take per call; `None` = no limit
    /// known. Lowered for the rest of the turn when the provider refuses a
    /// conversation as too long.
    budget: Option<u64>,
    /// Estimated history tokens past which the conversation is compacted
    /// before the next call; `None` = no window known.
    pub(crate) threshold: Option<u64>,
    /// A summary failed in this turn: no other is tried until the next.
    pub(crate) compaction_failed: bool,
    /// Turns left out as last announced: the note is given once, and again
    /// only when the count changes.
    announced: usize,
}

impl Turn {
    /// The context budget of this turn from llm-proxy's answer about the
    /// session's model. Without an answer (an older llm-proxy, a model that
    /// does not resolve, which `Complete` then reports) nothing is dropped
    /// up front.
    pub(crate) fn context_fit(
        &self,
        resolved: Result<ResolveModelResponse, AgentError>,
        tools: &[ToolDefinition],
    ) -> ContextFit {
        match resolved {
            Ok(r) => {
                let limits = ModelLimits {
                    context_window: r.context_window,
                    max_output_tokens: u64::from(r.max_output_tokens),
                };
                let budget = limits.history_budget(&self.system_prompt, tools);
                let fixed =
                    context::text_tokens(&self.system_prompt) + context::tools_tokens(tools);
                let at = (self.settings.compact_at * r.context_window as f64) as u64;
                ContextFit {
                    model: format!("{}/{}", r.provider, r.model),
                    window: r.context_window,
                    limits,
                    budget,
                    threshold: budget.map(|b| b.min(at.saturating_sub(fixed))),
                    compaction_failed: false,
                    announced: 0,
                }
            }
            Err(error) => {
                tracing::debug!(%error, "model limits unknown; the history is sent whole");
                let model = match self.meta.model.as_str() {
                    "" => "the model".to_owned(),
                    model => model.to_owned(),
                };
                ContextFit {
                    model,
                    window: 0,
                    limits: ModelLimits::default(),
                    budget: None,
                    threshold: None,
                    compaction_failed: false,
                    announced: 0,
                }
            }
        }
    }

    /// One LLM call with the part of the history that fits. When the
    /// provider says the conversation is too long, older turns are left out
    /// and the call is made again, at most [`MAX_CONTEXT_RETRIES`] times;
    /// nothing of a refused call was persisted, so nothing is duplicated.
    pub(super) async fn call_fitting(
        &self,
        tools: &[ToolDefinition],
        fit: &mut ContextFit,
    ) -> Result<Reply, AgentError> {
        let mut retries = 0;
        let view = self.view();
        loop {
            let selection = context::select(&view, fit.budget);
            if selection.dropped_turns != fit.announced {
                fit.announced = selection.dropped_turns;
                if selection.dropped_turns > 0 {
                    let note = context::dropped_note(&selection, fit.window, &fit.model);
                    self.notice(NoticeLevel::Info, NoticeKind::Context, note)
                        .await;
                }
            }
            if selection.over(fit.budget) {
                // Nothing older is left to drop; the provider decides.
                tracing::debug!(
                    tokens = selection.kept_tokens,
                    "the current turn alone is over the context budget"
                );
            }
            let messages = view[selection.start..]
                .iter()
                .map(StoredMessage::to_wire)
                .collect();
            let call = self.call_llm(tools, messages);
            let span = crate::spans::llm_call(&self.meta.model);
            let error = match tracing::Instrument::instrument(call, span).await {
                Err(error) if is_context_too_long(&error) && retries < MAX_CONTEXT_RETRIES => error,
                other => return other,
            };
            let Some(budget) = context::shrink(&view, &selection) else {
                return Err(error);
            };
            retries += 1;
            fit.budget = Some(budget);
            let next = context::select(&view, fit.budget);
            tracing::warn!(%error, dropped_turns = next.dropped_turns, "context too long; retrying with fewer turns");
            fit.announced = next.dropped_turns;
            self.notice(
                NoticeLevel::Warning,
                NoticeKind::Context,
                context::retry_note(&next, &fit.model),
            )
            .await;
        }
    }

    async fn call_llm(
        &self,
        tools: &[ToolDefinition],
        messages: Vec<Message>,
    ) -> Result<Reply, AgentError> {
        let request = CompleteRequest {
            model: self.meta.model.clone(),
            system_prompt: self.system_prompt.clone(),
            messages,
            tools: tools.to_vec(),
            max_tokens: None,
            temperature: None,
            thinking: self.thinking,
        };
        let stream = self.backends.complete(request).await?;
        let mut stream = crate::spans::observe(stream, tracing::Span::current());
        let mut call = Streamed::default();
        loop {
            let item = tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    call.reply.cancelled = true;
                    return Ok(call.reply);
                }
                item = stream.next() => item,
            };
            let Some(event) = item.transpose()?.and_then(|e| e.event) else {
                return Err(AgentError::TruncatedStream);
            };
            if let Some(reply) = self.on_completion_event(event, &mut call).await? {
                return Ok(reply);
            }
        }
    }

    /// Applies one event of an LLM call's stream; the reply once it
    /// finished.
    async fn on_completion_event(
        &self,
        event: completion_event::Event,
        call: &mut Streamed,
    ) -> Result<Option<Reply>, AgentError> {
        use completion_event::Event as E;
        let reply = &mut call.reply;
        match event {
            E::ModelSelected(m) => {
                reply.served = (m.provider.clone(), m.model.clone());
                self.announce_model(m).await;
            }
            E::TextDelta(text) => {
                reply.text.push_str(&text);
                self.emit_all(call.shown.text(&text)).await;
            }
            E::ThinkingDelta(delta) => {
                let text = delta.text.clone();
                reply.add_thinking(delta);
                if !text.is_empty() {
                    self.emit_all(call.shown.thinking(&text)).await;
                }
            }
            E::ToolCallDelta(delta) => apply_tool_delta(&mut call.partial, delta),
            E::Usage(usage) => {
                reply.usage = usage;
                self.emit(Event::Usage(usage)).await;
            }
            E::Interrupted(interrupted) => {
                let reason = interrupted.error.map(|e| e.message).unwrap_or_default();
                *reply = Reply {
                    served: std::mem::take(&mut reply.served),
                    ..Reply::default()
                };
                call.partial.clear();
                call.shown.interrupted(reason);
            }
            E::Retrying(retrying) => {
                let cause = retrying.error.map(|e| e.message).unwrap_or_default();
                let message = format!(
                    "{cause}; retrying in {} ms (attempt {})",
                    retrying.delay_ms, retrying.attempt
                );
                self.notice(NoticeLevel::Warning, NoticeKind::Retry, message)
                    .await;
            }
            E::Finished(finished) => {
                self.emit_all(call.shown.finished()).await;
                reply.stop = finished.stop_reason();
                reply.calls = std::mem::take(&mut call.partial);
                return Ok(Some(std::mem::take(reply)));
            }
            E::Error(error) => return Err(self.call_failed(reply, error).await),
        }
        Ok(None)
    }

    /// Tells the caller which model serves the call, and when it is a
    /// fallback.
    async fn announce_model(&self, m: openheim_proto::llm_proxy::v1::ModelSelected) {
        let fallback = m
            .is_fallback
            .then(|| format!("falling back to {}/{}", m.provider, m.model));
        self.emit(Event::ModelSelected(model_selected(m))).await;
        if let Some(message) = fallback {
            self.notice(NoticeLevel::Warning, NoticeKind::Fallback, message)
                .await;
        }
    }

    /// The error of an LLM call that failed. Output streamed before a
    /// refusal that is retried with a shorter history is not part of any
    /// answer: the caller is told to drop it.
    async fn call_failed(&self, reply: &Reply, error: LlmError) -> AgentError {
        let streamed = !reply.text.is_empty() || reply.thinking.iter().any(|b| !b.text.is_empty());
        if error.kind() == ErrorKind::ContextTooLong && streamed {
            let reason = error.message.clone();
            self.emit(Event::Retracted(Retracted { reason })).await;
        }
        AgentError::Llm {
            kind: error.kind,
            message: error.message,
        }
    }
}

/// One LLM call's stream as read so far: the reply, the tool calls being
/// assembled, what the caller was shown.
#[derive(Default)]
struct Streamed {
    reply: Reply,
    partial: Vec<ToolCall>,
    shown: Shown,
}

/// Whether the provider refused the request because the conversation does
/// not fit the model's context window.
fn is_context_too_long(error: &AgentError) -> bool {
    matches!(error, AgentError::Llm { kind, .. } if *kind == ErrorKind::ContextTooLong as i32)
}

/// llm-proxy's announcement of the model serving a call, for the caller.
fn model_selected(m: openheim_proto::llm_proxy::v1::ModelSelected) -> ModelSelected {
    ModelSelected {
        provider: m.provider,
        model: m.model,
        context_window: m.context_window,
        is_fallback: m.is_fallback,
    }
}
