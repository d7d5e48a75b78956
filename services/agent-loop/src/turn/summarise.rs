//! A turn's compactions: when the conversation would pass the threshold
//! (before any LLM call, also inside one long tool loop) and on demand
//! (`/compact`), the older part is summarised by the session's model or
//! `context.compaction_model` through llm-proxy, and the summary is stored
//! as a new record (docs/context.md). A failed summary never fails a turn:
//! the call goes on with the oldest turns left out instead.

use futures::StreamExt;
use openheim_proto::agent_loop::v1::{
    Compacted, NoticeKind, NoticeLevel, TurnEnded, turn_event::Event,
};
use openheim_proto::common::v1::{ContentBlock, Message, Role, StopReason, Usage, content_block};
use openheim_proto::llm_proxy::v1::{
    CompleteRequest, ThinkingLevel, ThinkingSetting, completion_event,
};

use super::{ContextFit, Turn};
use crate::compaction::{self, SUMMARY_MAX_TOKENS, SUMMARY_SYSTEM_PROMPT};
use crate::context::ModelLimits;
use crate::error::AgentError;
use crate::store::{Compaction, Record, now_ms};

/// Why a summary could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SummaryError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("the summary came back empty")]
    Empty,
    #[error("cancelled")]
    Cancelled,
}

/// A written summary and what writing it cost.
struct Written {
    compaction: Compaction,
    usage: Usage,
}

impl Turn {
    /// What the model is sent as history now.
    pub(crate) fn view(&self) -> Vec<crate::store::StoredMessage> {
        compaction::view(&self.history, self.compaction.as_ref())
    }

    /// Index of the first message no summary covers.
    fn covered(&self) -> usize {
        self.compaction.as_ref().map_or(0, |c| {
            usize::try_from(c.covers)
                .unwrap_or(usize::MAX)
                .min(self.history.len())
        })
    }

    /// Compacts when what the next call would send passes the threshold.
    /// Returns the summary call's usage when one was made.
    pub(crate) async fn compact_if_needed(&mut self, fit: &mut ContextFit) -> Option<Usage> {
        let threshold = fit.threshold.filter(|_| !fit.compaction_failed)?;
        let before = compaction::tokens(&self.view());
        if before <= threshold {
            return None;
        }
        let from = self.covered();
        // Nothing older than the last exchange: leaving turns out (or the
        // provider) decides.
        let cut = compaction::cut(&self.history, from, threshold / compaction::KEEP_DIVISOR)?;
        match self.summarise(from, cut, "", fit).await {
            Ok(written) => {
                let usage = written.usage;
                if let Err(error) = self.record(written.compaction, cut - from).await {
                    tracing::warn!(%error, "could not store the summary");
                }
                Some(usage)
            }
            Err(error) => {
                fit.compaction_failed = true;
                tracing::warn!(%error, "summarising the conversation failed");
                let message = format!(
                    "context: could not summarise the conversation ({error}); leaving out the oldest turns instead"
                );
                self.notice(NoticeLevel::Warning, NoticeKind::Context, message)
                    .await;
                None
            }
        }
    }

    /// `/compact [focus]`: summarises the whole conversation so far. A
    /// failure is reported as a warning and changes nothing.
    pub(crate) async fn compact_now(mut self, focus: &str) -> Result<TurnEnded, AgentError> {
        let resolved = self.backends.resolve_model(&self.meta.model).await;
        let fit = self.context_fit(resolved, &[]);
        let from = self.covered();
        let cut = self.history.len();
        let ended = |usage: Usage, calls| TurnEnded {
            stop_reason: StopReason::EndTurn as i32,
            usage: Some(usage),
            llm_calls: calls,
        };
        if cut <= from {
            let message = "context: nothing to compact yet".to_owned();
            self.notice(NoticeLevel::Info, NoticeKind::Context, message)
                .await;
            return Ok(ended(Usage::zero(), 0));
        }
        match self.summarise(from, cut, focus, &fit).await {
            Ok(written) => {
                let usage = written.usage;
                self.record(written.compaction, cut - from).await?;
                Ok(ended(usage, 1))
            }
            Err(SummaryError::Cancelled) => Ok(TurnEnded {
                stop_reason: StopReason::Cancelled as i32,
                ..ended(Usage::zero(), 1)
            }),
            Err(error) => {
                let message = format!("context: could not summarise the conversation: {error}");
                self.notice(NoticeLevel::Warning, NoticeKind::Context, message)
                    .await;
                Ok(ended(Usage::zero(), 1))
            }
        }
    }

    /// Stores `compaction`, uses it from the next call on and tells the
    /// caller.
    async fn record(
        &mut self,
        compaction: Compaction,
        summarised: usize,
    ) -> Result<(), AgentError> {
        let event = Compacted {
            message: compaction::notice(
                summarised,
                &compaction.model,
                compaction.tokens_before,
                compaction.tokens_after,
            ),
            summary: compaction.text.clone(),
            tokens_before: compaction.tokens_before,
            tokens_after: compaction.tokens_after,
            covers: compaction.covers,
        };
        let record = Record::Compaction {
            at_ms: now_ms(),
            compaction,
        };
        self.store.append(&self.meta.id, &record).await?;
        if let Record::Compaction { compaction, .. } = record {
            self.compaction = Some(compaction);
        }
        self.emit(Event::Compacted(event)).await;
        Ok(())
    }

    /// Asks the summary of the previous summary and `history[from..cut]`.
    async fn summarise(
        &self,
        from: usize,
        cut: usize,
        focus: &str,
        fit: &ContextFit,
    ) -> Result<Written, SummaryError> {
        let (model, limits) = self.summary_model(fit).await?;
        let max_tokens = match limits.context_window {
            0 => SUMMARY_MAX_TOKENS,
            window => SUMMARY_MAX_TOKENS.min(window / 8).max(256),
        };
        let request_limits = ModelLimits {
            max_output_tokens: max_tokens,
            ..limits
        };
        let room = request_limits
            .history_budget(SUMMARY_SYSTEM_PROMPT, &[])
            .unwrap_or(u64::MAX);
        let previous = self.compaction.as_ref().map(|c| c.text.as_str());
        let text = compaction::request_text(previous, &self.history[from..cut], focus, room);
        let request = CompleteRequest {
            model,
            system_prompt: SUMMARY_SYSTEM_PROMPT.to_owned(),
            messages: vec![Message {
                role: Role::User as i32,
                content: vec![ContentBlock {
                    block: Some(content_block::Block::Text(text)),
                }],
            }],
            tools: Vec::new(),
            max_tokens: Some(u32::try_from(max_tokens).unwrap_or(u32::MAX)),
            temperature: None,
            // A summary needs no reasoning, and reasoning would raise the
            // output reserve (Anthropic) past a small window.
            thinking: Some(ThinkingSetting {
                level: ThinkingLevel::Off as i32,
                budget_tokens: 0,
            }),
        };
        let before = compaction::tokens(&self.view());
        let (summary, usage, served_by) = self.stream_summary(request).await?;
        self.meter
            .spend(usage.input_tokens, usage.output_tokens)
            .await;
        let mut compaction = Compaction {
            covers: cut as u64,
            text: summary,
            model: served_by,
            tokens_before: before,
            tokens_after: 0,
        };
        compaction.tokens_after =
            compaction::tokens(&compaction::view(&self.history, Some(&compaction)));
        Ok(Written { compaction, usage })
    }

    /// The model that writes summaries (`context.compaction_model`, else the
    /// session's) and its limits.
    async fn summary_model(&self, fit: &ContextFit) -> Result<(String, ModelLimits), SummaryError> {
        match &self.settings.compaction_model {
            Some(model) => {
                let resolved = self.backends.resolve_model(model).await?;
                let limits = ModelLimits {
                    context_window: resolved.context_window,
                    max_output_tokens: u64::from(resolved.max_output_tokens),
                };
                Ok((model.clone(), limits))
            }
            None => Ok((self.meta.model.clone(), fit.limits)),
        }
    }

    /// Runs the summary call; its text is not streamed to the caller.
    async fn stream_summary(
        &self,
        request: CompleteRequest,
    ) -> Result<(String, Usage, String), SummaryError> {
        let mut served_by = request.model.clone();
        let span = crate::spans::llm_call(&request.model);
        let stream = self.backends.complete(request).await?;
        let mut stream = crate::spans::observe(stream, span);
        let mut text = String::new();
        let mut usage = Usage::zero();
        loop {
            let item = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(SummaryError::Cancelled),
                item = stream.next() => item,
            };
            let Some(event) = item.transpose()?.and_then(|e| e.event) else {
                return Err(AgentError::TruncatedStream.into());
            };
            use completion_event::Event as E;
            match event {
                E::ModelSelected(m) => served_by = format!("{}/{}", m.provider, m.model),
                E::TextDelta(delta) => text.push_str(&delta),
                E::Usage(u) => usage = u,
                E::Interrupted(_) => text.clear(),
                E::Finished(_) => break,
                E::Error(error) => {
                    return Err(AgentError::Llm {
                        kind: error.kind,
                        message: error.message,
                    }
                    .into());
                }
                E::ThinkingDelta(_) | E::ToolCallDelta(_) | E::Retrying(_) => {}
            }
        }
        let text = text.trim().to_owned();
        if text.is_empty() {
            return Err(SummaryError::Empty);
        }
        Ok((text, usage, served_by))
    }
}
