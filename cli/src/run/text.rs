//! The human rendering of `openheim run`: the answer on stdout, tool
//! activity, notices and errors on stderr.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use openheim_proto::agent_loop::v1::{
    DecisionSource, PermissionDecided, SessionInfo, ToolCallStatus, TurnEvent, turn_event::Event,
};

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
    /// Also report permission decisions and show thinking (`--verbose`).
    verbose: bool,
    /// Thinking is being written to stderr (its line is still open).
    in_thinking: bool,
    /// Text of the running LLM call not written yet; `None` when text is
    /// written as it arrives (stdout is a terminal).
    held: Option<String>,
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
        self.release()?;
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
    pub(super) fn new(verbose: bool, live: bool) -> Self {
        Self {
            verbose,
            held: (!live).then(String::new),
            ..Self::default()
        }
    }

    fn write_text(&mut self, text: &str) -> std::io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        self.wrote_text = true;
        self.text_ends_with_newline = text.ends_with('\n');
        Ok(())
    }

    /// Writes the held text: the LLM call that produced it is over.
    fn release(&mut self) -> std::io::Result<()> {
        let Some(held) = self.held.as_mut() else {
            return Ok(());
        };
        let text = std::mem::take(held);
        self.write_text(&text)
    }

    /// What one turn event shows. One match over every event kind, kept
    /// whole so each kind's output is read in one place.
    fn show(&mut self, event: TurnEvent) -> std::io::Result<Option<u8>> {
        let Some(event) = event.event else {
            return Ok(None);
        };
        if ends_message(&event) {
            self.last.complete();
        }
        match event {
            Event::ThinkingDelta(text) if self.verbose => {
                self.release()?;
                let mut err = std::io::stderr().lock();
                if !self.in_thinking {
                    err.write_all("thinking: ".as_bytes())?;
                    self.in_thinking = true;
                }
                err.write_all(text.as_bytes())?;
                err.flush()?;
            }
            Event::TextDelta(text) => {
                self.end_thinking();
                self.last.push(&text);
                match self.held.as_mut() {
                    Some(held) => held.push_str(&text),
                    None => self.write_text(&text)?,
                }
            }
            Event::ToolCall(call) => {
                self.release()?;
                self.finish_line()?;
                eprintln!("▸ {}", call.title);
                self.titles.insert(call.id, (call.title, Instant::now()));
            }
            Event::ToolCallUpdate(update) => self.tool_done(&update),
            Event::Child(child) => {
                self.release()?;
                self.finish_line()?;
                self.child(child);
            }
            Event::Notice(notice) => {
                self.end_thinking();
                eprintln!("note: {}", notice.message)
            }
            Event::Compacted(compacted) => {
                self.finish_line()?;
                eprintln!("note: {}", compacted.message)
            }
            Event::Retracted(r) => {
                self.last.retract();
                // Held text is dropped: the redone reply follows in full.
                if let Some(held) = self.held.as_mut() {
                    held.clear();
                } else {
                    self.finish_line()?;
                }
                eprintln!("note: {}", crate::texts::retracted_notice(&r.reason));
            }
            Event::Ended(ended) => {
                self.release()?;
                self.finish_line()?;
                let stop = ended.stop_reason();
                if let Some(line) = crate::texts::stop_line(stop, None) {
                    eprintln!("{line}");
                }
                return Ok(Some(exit_code(stop)));
            }
            Event::Error(error) => {
                self.release()?;
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
            Event::Plan(plan) => {
                if self.verbose {
                    self.release()?;
                    self.finish_line()?;
                    eprintln!("plan: {}", openheim_proto::plan::summary(&plan));
                    for line in openheim_proto::plan::checklist(&plan) {
                        eprintln!("  {line}");
                    }
                }
            }
            Event::PermissionDecided(decided) => {
                if self.verbose {
                    eprintln!("{}", decision_line(&decided));
                }
            }
            Event::PermissionRequest(request) => {
                self.release()?;
                self.finish_line()?;
                // Sessions created by `run` never ask; answer nothing (reject).
                eprintln!(
                    "note: permission requested for {} was not granted",
                    request.title
                );
            }
        }
        Ok(None)
    }

    /// A sub-agent's tool line, prefixed with its agent's name.
    fn child(&mut self, child: openheim_proto::agent_loop::v1::ChildActivity) {
        use openheim_proto::agent_loop::v1::child_activity::Activity;
        match child.activity {
            Some(Activity::ToolCall(call)) => {
                eprintln!("[{}] ▸ {}", child.agent, call.title);
                let key = format!("{}>{}", child.session_id, call.id);
                self.titles.insert(key, (call.title, Instant::now()));
            }
            Some(Activity::ToolCallUpdate(update)) => {
                let key = format!("{}>{}", child.session_id, update.id);
                if let Some(line) = self.done_line(&key, &update) {
                    eprintln!("[{}] {line}", child.agent);
                }
            }
            None => {}
        }
    }

    fn tool_done(&mut self, update: &openheim_proto::agent_loop::v1::ToolCallUpdate) {
        if let Some(line) = self.done_line(&update.id, update) {
            eprintln!("{line}");
        }
    }

    /// `✓ title (ms)` or `✗ title (ms): first line` for a finished call.
    fn done_line(
        &mut self,
        key: &str,
        update: &openheim_proto::agent_loop::v1::ToolCallUpdate,
    ) -> Option<String> {
        let status = update.status();
        if status == ToolCallStatus::InProgress || status == ToolCallStatus::Pending {
            return None;
        }
        let (title, started) = self.titles.remove(key)?;
        let ms = started.elapsed().as_millis();
        Some(if status == ToolCallStatus::Failed {
            let first = update.content.lines().next().unwrap_or_default();
            format!("✗ {title} ({ms} ms): {first}")
        } else {
            format!("✓ {title} ({ms} ms)")
        })
    }

    /// Ends the line of thinking on stderr, if one is open.
    fn end_thinking(&mut self) {
        if std::mem::take(&mut self.in_thinking) {
            eprintln!();
        }
    }

    /// Ends a partial line of answer text before writing to stderr.
    fn finish_line(&mut self) -> std::io::Result<()> {
        self.end_thinking();
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
