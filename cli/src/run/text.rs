//! The human rendering of `openheim run`: the answer on stdout, tool
//! activity, notices and errors on stderr.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use openheim_proto::agent_loop::v1::{
    DecisionSource, PermissionDecided, SessionInfo, ToolCallStatus, TurnEvent, turn_event::Event,
};
use openheim_proto::common::v1::StopReason;

use super::events::ErrorKind;
use super::{LastMessage, Render, ends_message, exit, exit_code};

/// Renders turn events; returns an exit code once the turn is over.
#[derive(Default)]
pub(super) struct View {
    titles: HashMap<String, (String, Instant)>,
    text_ends_with_newline: bool,
    wrote_text: bool,
    session_id: String,
    last: LastMessage,
    /// Also report permission decisions (`--verbose`).
    verbose: bool,
}

impl Render for View {
    fn session(&mut self, info: &SessionInfo, _resumed: bool) -> std::io::Result<()> {
        self.session_id.clone_from(&info.id);
        Ok(())
    }

    fn event(&mut self, event: TurnEvent) -> std::io::Result<Option<u8>> {
        let code = self.show(event)?;
        if code.is_some() {
            eprintln!("session: {}", self.session_id);
        }
        Ok(code)
    }

    fn failed(
        &mut self,
        session_id: Option<&str>,
        _kind: ErrorKind,
        message: &str,
    ) -> std::io::Result<u8> {
        self.finish_line()?;
        eprintln!("error: {message}");
        if let Some(id) = session_id {
            eprintln!("session: {id}");
        }
        Ok(exit::FAILED)
    }

    fn last_message(&self) -> Option<&str> {
        self.last.get()
    }
}

impl View {
    pub(super) fn new(verbose: bool) -> Self {
        Self {
            verbose,
            ..Self::default()
        }
    }

    fn show(&mut self, event: TurnEvent) -> std::io::Result<Option<u8>> {
        let Some(event) = event.event else {
            return Ok(None);
        };
        if ends_message(&event) {
            self.last.complete();
        }
        match event {
            Event::TextDelta(text) => {
                self.last.push(&text);
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
                self.wrote_text = true;
                self.text_ends_with_newline = text.ends_with('\n');
            }
            Event::ToolCall(call) => {
                self.finish_line()?;
                eprintln!("▸ {}", call.title);
                self.titles.insert(call.id, (call.title, Instant::now()));
            }
            Event::ToolCallUpdate(update) => self.tool_done(&update),
            Event::Notice(notice) => eprintln!("note: {}", notice.message),
            Event::Retracted(r) => {
                self.last.retract();
                eprintln!("note: the reply was interrupted ({}); retrying", r.reason)
            }
            Event::Ended(ended) => {
                self.finish_line()?;
                let stop = ended.stop_reason();
                match stop {
                    StopReason::MaxTokens => {
                        eprintln!("note: the answer was cut at the model's output limit")
                    }
                    StopReason::Refusal => eprintln!("note: the model refused to answer"),
                    StopReason::MaxTurnRequests => {
                        eprintln!("stopped: reached max_iterations before a final answer")
                    }
                    StopReason::Cancelled => eprintln!("cancelled"),
                    StopReason::EndTurn | StopReason::ToolUse | StopReason::Unspecified => {}
                }
                return Ok(Some(exit_code(stop)));
            }
            Event::Error(error) => {
                self.finish_line()?;
                eprintln!("error: {}", error.message);
                return Ok(Some(exit::FAILED));
            }
            // `run` offers no client capabilities, so it is never asked.
            Event::Started(_)
            | Event::ThinkingDelta(_)
            | Event::Usage(_)
            | Event::ModelSelected(_)
            | Event::ClientRequest(_) => {}
            Event::PermissionDecided(decided) => {
                if self.verbose {
                    eprintln!("{}", decision_line(&decided));
                }
            }
            Event::PermissionRequest(request) => {
                // Sessions created by `run` never ask; answer nothing (reject).
                eprintln!(
                    "note: permission requested for {} was not granted",
                    request.title
                );
            }
        }
        Ok(None)
    }

    fn tool_done(&mut self, update: &openheim_proto::agent_loop::v1::ToolCallUpdate) {
        let status = update.status();
        if status == ToolCallStatus::InProgress || status == ToolCallStatus::Pending {
            return;
        }
        let Some((title, started)) = self.titles.remove(&update.id) else {
            return;
        };
        let ms = started.elapsed().as_millis();
        if status == ToolCallStatus::Failed {
            let first = update.content.lines().next().unwrap_or_default();
            eprintln!("✗ {title} ({ms} ms): {first}");
        } else {
            eprintln!("✓ {title} ({ms} ms)");
        }
    }

    /// Ends a partial line of answer text before writing to stderr.
    fn finish_line(&mut self) -> std::io::Result<()> {
        if self.wrote_text && !self.text_ends_with_newline {
            let mut out = std::io::stdout().lock();
            out.write_all(b"\n")?;
            out.flush()?;
            self.text_ends_with_newline = true;
        }
        Ok(())
    }
}

/// `permission: allow write_file (approval mode)`, for `--verbose`.
fn decision_line(decided: &PermissionDecided) -> String {
    let verb = if decided.allowed { "allow" } else { "deny" };
    let by = match decided.source() {
        DecisionSource::ApprovalMode => "approval mode",
        DecisionSource::Policy => "permissions policy",
        DecisionSource::Remembered => "remembered answer",
        DecisionSource::User => "user",
        DecisionSource::Hook => "hook",
        DecisionSource::Unspecified => "unknown",
    };
    let mut line = format!("permission: {verb} {} ({by}", decided.tool_name);
    if !decided.hook.is_empty() {
        line.push(' ');
        line.push_str(&decided.hook);
    }
    line.push(')');
    if !decided.reason.is_empty() {
        line.push_str(": ");
        line.push_str(&decided.reason);
    }
    line
}
