//! `openheim run --json`: turn events as JSON Lines on stdout
//! ([`RunEvent`]); nothing else is written to stdout.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use openheim_proto::agent_loop::v1::{
    self as wire, DecisionSource, SessionInfo, ToolCallStatus, TurnEvent, turn_event::Event,
};
use openheim_proto::common::v1::{self as common, StopReason as WireStop};

use super::events::{
    DecidedBy, ErrorKind, NoticeKind, NoticeLevel, PermissionDecision, PlanStep, PlanStepPriority,
    PlanStepStatus, RESULT_CAP_BYTES, RunError, RunEvent, SCHEMA_VERSION, StopReason,
    ToolCallOutcome, ToolCallProgress, ToolKind, Usage,
};
use super::{LastMessage, Render, ends_message, error_kind, exit, exit_code};

/// Turns events into lines and keeps what later lines need: open tool
/// calls, the model serving the current call, the totals so far.
pub(super) struct JsonView {
    started: Instant,
    session_id: Option<String>,
    /// `session.started`, written before the turn's first line: its model
    /// is the one the turn's `Started` event names, resolved by the agent
    /// loop, so `run` asks no service for it.
    pending_start: Option<RunEvent>,
    /// Tool calls started and not finished: name and start time.
    calls: HashMap<String, (String, Instant)>,
    /// Provider and model of the current model call.
    serving: (String, String),
    thinking: String,
    message: LastMessage,
    total: common::Usage,
    usage_reports: u32,
}

impl JsonView {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            session_id: None,
            pending_start: None,
            calls: HashMap::new(),
            serving: (String::new(), String::new()),
            thinking: String::new(),
            message: LastMessage::default(),
            total: common::Usage::zero(),
            usage_reports: 0,
        }
    }

    /// Writes the held `session.started` once, naming the model as
    /// `provider/model` when `first` (the turn's first event) is its
    /// `Started` and the agent loop resolved the model.
    fn write_session_started(&mut self, first: Option<&Event>) -> std::io::Result<()> {
        let Some(mut line) = self.pending_start.take() else {
            return Ok(());
        };
        if let (Some(Event::Started(started)), RunEvent::SessionStarted { model, .. }) =
            (first, &mut line)
            && !started.provider.is_empty()
        {
            *model = format!("{}/{}", started.provider, started.model);
        }
        write(&line)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The events one turn event becomes. One match over every event kind,
    /// kept whole: it is the mapping docs/run-events.schema.json documents.
    fn translate(&mut self, event: Event) -> Vec<RunEvent> {
        let mut out = Vec::new();
        if ends_message(&event) || matches!(event, Event::TextDelta(_)) {
            self.complete_thinking(&mut out);
        }
        if ends_message(&event)
            && let Some(text) = self.message.complete()
        {
            out.push(RunEvent::MessageCompleted { text: text.into() });
        }
        match event {
            Event::TextDelta(text) => {
                self.message.push(&text);
                out.push(RunEvent::MessageDelta { text });
            }
            Event::ThinkingDelta(text) => {
                self.thinking.push_str(&text);
                out.push(RunEvent::ThinkingDelta { text });
            }
            Event::Retracted(retracted) => {
                self.message.retract();
                self.thinking.clear();
                out.push(RunEvent::MessageRetracted {
                    reason: retracted.reason,
                });
            }
            Event::ModelSelected(selected) => {
                self.serving = (selected.provider.clone(), selected.model.clone());
                out.push(RunEvent::ModelSelected {
                    provider: selected.provider,
                    model: selected.model,
                    context_window: (selected.context_window > 0)
                        .then_some(selected.context_window),
                    is_fallback: selected.is_fallback,
                });
            }
            Event::ToolCall(call) => out.push(self.tool_started(call)),
            Event::ToolCallUpdate(update) => out.push(self.tool_updated(update)),
            Event::PermissionDecided(decided) => out.push(permission(decided)),
            Event::Plan(plan) => out.push(plan_updated(&plan)),
            Event::Notice(notice) => out.push(RunEvent::Notice {
                level: match notice.level() {
                    wire::NoticeLevel::Warning => NoticeLevel::Warning,
                    wire::NoticeLevel::Info | wire::NoticeLevel::Unspecified => NoticeLevel::Info,
                },
                kind: match notice.kind() {
                    wire::NoticeKind::Context => NoticeKind::Context,
                    wire::NoticeKind::Retry => NoticeKind::Retry,
                    wire::NoticeKind::Fallback => NoticeKind::Fallback,
                    wire::NoticeKind::Hook => NoticeKind::Hook,
                    wire::NoticeKind::Mcp => NoticeKind::Mcp,
                    wire::NoticeKind::Unspecified => NoticeKind::Other,
                },
                message: notice.message,
            }),
            Event::Usage(usage) => {
                self.total.add(&usage);
                self.usage_reports += 1;
                out.push(RunEvent::Usage {
                    provider: self.serving.0.clone(),
                    model: self.serving.1.clone(),
                    usage: usage_of(&usage),
                });
            }
            Event::Ended(ended) => out.push(self.completed(&ended)),
            Event::Error(error) => {
                let kind = error_kind(error.kind());
                out.push(self.failure(kind, error.message));
            }
            // A summary replaced the older part of the conversation.
            Event::Compacted(compacted) => out.push(RunEvent::Notice {
                level: NoticeLevel::Info,
                kind: NoticeKind::Context,
                message: compacted.message,
            }),
            // A sub-agent's tool calls: its progress is also in the
            // delegation's own tool call updates.
            Event::Child(child) => {
                if let Some(message) = child_line(&child) {
                    out.push(RunEvent::Notice {
                        level: NoticeLevel::Info,
                        kind: NoticeKind::Other,
                        message,
                    });
                }
            }
            // Sessions of `run` never ask (their approval mode is auto or
            // deny) and offer the agent nothing to do for it.
            Event::PermissionRequest(_) | Event::ClientRequest(_) | Event::Started(_) => {}
        }
        out
    }

    fn complete_thinking(&mut self, out: &mut Vec<RunEvent>) {
        if !self.thinking.is_empty() {
            out.push(RunEvent::ThinkingCompleted {
                text: std::mem::take(&mut self.thinking),
            });
        }
    }

    fn tool_started(&mut self, call: wire::ToolCallStarted) -> RunEvent {
        let kind = tool_kind(call.kind());
        self.calls
            .insert(call.id.clone(), (call.name.clone(), Instant::now()));
        let arguments = serde_json::from_str(&call.raw_input_json)
            .unwrap_or(serde_json::Value::String(call.raw_input_json));
        RunEvent::ToolCallStarted {
            id: call.id,
            name: call.name,
            title: call.title,
            kind,
            arguments,
            locations: call.locations,
        }
    }

    fn tool_updated(&mut self, update: wire::ToolCallUpdate) -> RunEvent {
        let status = match update.status() {
            ToolCallStatus::Completed => ToolCallOutcome::Completed,
            ToolCallStatus::Failed => ToolCallOutcome::Failed,
            ToolCallStatus::Pending => {
                return RunEvent::ToolCallUpdated {
                    id: update.id,
                    status: ToolCallProgress::Pending,
                };
            }
            ToolCallStatus::InProgress | ToolCallStatus::Unspecified => {
                return RunEvent::ToolCallUpdated {
                    id: update.id,
                    status: ToolCallProgress::InProgress,
                };
            }
        };
        let (name, started) = self
            .calls
            .remove(&update.id)
            .unwrap_or_else(|| (String::new(), Instant::now()));
        let (result, result_truncated) = cap(update.content);
        RunEvent::ToolCallCompleted {
            id: update.id,
            name,
            status,
            result,
            result_truncated,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            output: serde_json::from_str(&update.raw_output_json).ok(),
        }
    }

    fn completed(&self, ended: &wire::TurnEnded) -> RunEvent {
        let stop = ended.stop_reason();
        RunEvent::TurnCompleted {
            session_id: self.session_id.clone().unwrap_or_default(),
            stop_reason: stop_reason(stop),
            usage: usage_of(&ended.usage.unwrap_or_else(common::Usage::zero)),
            llm_calls: ended.llm_calls,
            duration_ms: self.elapsed_ms(),
            exit_code: exit_code(stop),
        }
    }

    fn failure(&self, kind: ErrorKind, message: String) -> RunEvent {
        RunEvent::TurnFailed {
            session_id: self.session_id.clone(),
            error: RunError { kind, message },
            usage: usage_of(&self.total),
            llm_calls: self.usage_reports,
            duration_ms: self.elapsed_ms(),
            exit_code: exit::FAILED,
        }
    }
}

impl Render for JsonView {
    fn session(&mut self, info: &SessionInfo, resumed: bool) -> std::io::Result<()> {
        self.session_id = Some(info.id.clone());
        self.pending_start = Some(RunEvent::SessionStarted {
            schema_version: SCHEMA_VERSION,
            session_id: info.id.clone(),
            resumed,
            model: info.model.clone(),
            workspace: info.work_dir.clone(),
            openheim_version: env!("CARGO_PKG_VERSION").into(),
        });
        Ok(())
    }

    fn event(&mut self, event: TurnEvent) -> std::io::Result<Option<u8>> {
        let Some(event) = event.event else {
            return Ok(None);
        };
        self.write_session_started(Some(&event))?;
        let mut code = None;
        for line in self.translate(event) {
            match &line {
                RunEvent::TurnCompleted { exit_code, .. }
                | RunEvent::TurnFailed { exit_code, .. } => code = Some(*exit_code),
                _ => {}
            }
            write(&line)?;
        }
        Ok(code)
    }

    fn failed(
        &mut self,
        session_id: Option<&str>,
        kind: ErrorKind,
        message: &str,
    ) -> std::io::Result<u8> {
        if let Some(id) = session_id {
            self.session_id = Some(id.to_owned());
        }
        self.write_session_started(None)?;
        write(&self.failure(kind, message.to_owned()))?;
        Ok(exit::FAILED)
    }

    fn last_message(&self) -> Option<&str> {
        self.message.get()
    }
}

/// Writes one line and flushes it, so a reader sees each event at once.
fn write(event: &RunEvent) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)?;
    out.flush()
}

/// `text` cut to [`RESULT_CAP_BYTES`] at a character boundary.
fn cap(mut text: String) -> (String, bool) {
    if text.len() <= RESULT_CAP_BYTES {
        return (text, false);
    }
    let mut end = RESULT_CAP_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

fn usage_of(usage: &common::Usage) -> Usage {
    Usage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_read_tokens: usage.cache_read_tokens,
        cache_write_tokens: usage.cache_write_tokens,
        reasoning_tokens: usage.reasoning_tokens,
        cost_pico_usd: usage.cost_pico_usd,
    }
}

fn plan_updated(plan: &wire::Plan) -> RunEvent {
    use wire::{PlanPriority, PlanStatus};
    let entries = plan
        .entries
        .iter()
        .map(|e| PlanStep {
            content: e.content.clone(),
            status: match e.status() {
                PlanStatus::InProgress => PlanStepStatus::InProgress,
                PlanStatus::Completed => PlanStepStatus::Completed,
                PlanStatus::Pending | PlanStatus::Unspecified => PlanStepStatus::Pending,
            },
            priority: match e.priority() {
                PlanPriority::High => PlanStepPriority::High,
                PlanPriority::Low => PlanStepPriority::Low,
                PlanPriority::Medium | PlanPriority::Unspecified => PlanStepPriority::Medium,
            },
        })
        .collect();
    RunEvent::PlanUpdated { entries }
}

fn permission(decided: wire::PermissionDecided) -> RunEvent {
    let by = match decided.source() {
        DecisionSource::ApprovalMode => DecidedBy::ApprovalMode,
        DecisionSource::Policy | DecisionSource::Unspecified => DecidedBy::Policy,
        DecisionSource::Remembered => DecidedBy::Remembered,
        DecisionSource::User => DecidedBy::User,
        DecisionSource::Hook => DecidedBy::Hook,
    };
    RunEvent::PermissionDecided {
        decision: match decided.allowed {
            true => PermissionDecision::Allow,
            false => PermissionDecision::Deny,
        },
        by,
        reason: Some(decided.reason).filter(|r| !r.is_empty()),
        hook: Some(decided.hook).filter(|h| !h.is_empty()),
        tool_call_id: decided.tool_call_id,
        tool_name: decided.tool_name,
    }
}

fn stop_reason(stop: WireStop) -> StopReason {
    match stop {
        WireStop::EndTurn | WireStop::ToolUse | WireStop::Unspecified => StopReason::EndTurn,
        WireStop::MaxTokens => StopReason::MaxTokens,
        WireStop::Refusal => StopReason::Refusal,
        WireStop::MaxTurnRequests => StopReason::MaxIterations,
        WireStop::Cancelled => StopReason::Cancelled,
    }
}

fn tool_kind(kind: common::ToolKind) -> ToolKind {
    match kind {
        common::ToolKind::Read => ToolKind::Read,
        common::ToolKind::Edit => ToolKind::Edit,
        common::ToolKind::Delete => ToolKind::Delete,
        common::ToolKind::Move => ToolKind::Move,
        common::ToolKind::Search => ToolKind::Search,
        common::ToolKind::Execute => ToolKind::Execute,
        common::ToolKind::Think => ToolKind::Think,
        common::ToolKind::Fetch => ToolKind::Fetch,
        common::ToolKind::Other | common::ToolKind::Unspecified => ToolKind::Other,
    }
}

/// `[agent] ▸ title` when a sub-agent's tool call starts, `[agent] ✓ id`
/// or `[agent] ✗ id` when it ends.
fn child_line(child: &wire::ChildActivity) -> Option<String> {
    use wire::child_activity::Activity;
    let agent = if child.agent.is_empty() {
        "agent"
    } else {
        child.agent.as_str()
    };
    match child.activity.as_ref()? {
        Activity::ToolCall(call) => Some(format!("[{agent}] ▸ {}", call.title)),
        Activity::ToolCallUpdate(update) => match update.status() {
            wire::ToolCallStatus::Completed => Some(format!("[{agent}] ✓ {}", update.id)),
            wire::ToolCallStatus::Failed => Some(format!("[{agent}] ✗ {}", update.id)),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_call_s_text_is_completed_before_its_tool_calls() {
        let mut view = JsonView::new();
        let mut lines = Vec::new();
        for e in [
            Event::ThinkingDelta("hm".into()),
            Event::TextDelta("I'll ".into()),
            Event::TextDelta("write.".into()),
            Event::ToolCall(wire::ToolCallStarted {
                id: "c1".into(),
                name: "write_file".into(),
                raw_input_json: "{\"path\":\"a\"}".into(),
                ..Default::default()
            }),
        ] {
            lines.extend(view.translate(e));
        }
        let types: Vec<String> = lines
            .iter()
            .map(|l| {
                serde_json::to_value(l).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            types,
            [
                "thinking.delta",
                "thinking.completed",
                "message.delta",
                "message.delta",
                "message.completed",
                "tool_call.started"
            ]
        );
        assert_eq!(
            lines[4],
            RunEvent::MessageCompleted {
                text: "I'll write.".into()
            }
        );
        assert_eq!(view.last_message(), Some("I'll write."));
    }

    #[test]
    fn retracted_output_is_not_part_of_the_message() {
        let mut view = JsonView::new();
        view.translate(Event::TextDelta("broken".into()));
        view.translate(Event::Retracted(wire::Retracted {
            reason: "reset".into(),
        }));
        view.translate(Event::TextDelta("whole".into()));
        let lines = view.translate(Event::Usage(common::Usage::zero()));
        assert_eq!(
            lines[0],
            RunEvent::MessageCompleted {
                text: "whole".into()
            }
        );
    }

    #[test]
    fn long_results_are_cut_at_a_character_boundary() {
        let text = "é".repeat(RESULT_CAP_BYTES);
        let (cut, truncated) = cap(text);
        assert!(truncated && cut.len() <= RESULT_CAP_BYTES && cut.len() > RESULT_CAP_BYTES - 2);
        assert_eq!(cap("short".into()), ("short".into(), false));
    }

    #[test]
    fn a_failure_reports_the_usage_seen_so_far() {
        let mut view = JsonView::new();
        let priced = common::Usage {
            input_tokens: 10,
            output_tokens: 3,
            cost_pico_usd: Some(42),
            ..Default::default()
        };
        view.translate(Event::Usage(priced));
        let lines = view.translate(Event::Error(wire::TurnError {
            kind: wire::TurnErrorKind::Llm as i32,
            message: "boom".into(),
            ..Default::default()
        }));
        let RunEvent::TurnFailed {
            error,
            usage,
            exit_code,
            llm_calls,
            ..
        } = &lines[0]
        else {
            panic!("{lines:?}")
        };
        assert_eq!(error.kind, ErrorKind::Provider);
        assert_eq!((usage.input_tokens, usage.cost_pico_usd), (10, Some(42)));
        assert_eq!((*exit_code, *llm_calls), (exit::FAILED, 1));
    }
}
