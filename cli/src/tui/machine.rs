//! A running turn as a state machine: [`TurnState::on`] takes one input
//! (an event of the turn's stream, a key, a typed answer, a spinner tick)
//! and returns what to do ([`Action`]s: text to show, an answer or a cancel
//! to send). It does no I/O, so what the user sees is tested without a
//! terminal; `turn.rs` feeds it and carries out its actions.

use std::collections::VecDeque;
use std::time::Instant;

use openheim_proto::agent_loop::v1::{Decision, PermissionDecided, turn_event::Event};
use openheim_proto::common::v1::StopReason;

use super::editor::{TurnKey, join_continuations};
use super::elicit::Form;
use super::render::{TurnView, decision_for_answer, decision_for_key};
use super::status::Status;
use super::theme::Role;

/// One thing that happened while a turn runs.
#[derive(Debug)]
pub(super) enum Input {
    /// An event of the turn's stream.
    Event(Event),
    /// The stream ended without the turn's `ended` or `error` event.
    Closed,
    /// The stream failed (the agent loop is unreachable, …).
    Failed(String),
    Key(TurnKey),
    /// A line typed in answer to a permission question (no terminal);
    /// `None`: stdin was closed.
    Answer(Option<String>),
    /// Time passed: move the spinners.
    Tick,
}

/// What the driver does for the machine, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Action {
    /// Write this to the screen.
    Show(String),
    /// Answer a permission question.
    Answer {
        request_id: String,
        decision: Decision,
    },
    /// Answer an MCP server's elicitation request: `action` is `accept`
    /// (with `content_json`), `decline` or `cancel`.
    Elicitation {
        request_id: String,
        action: &'static str,
        content_json: String,
    },
    /// Ask the agent to cancel the turn.
    Cancel,
}

/// Text typed while a turn runs: finished lines run next, in order; an
/// unfinished line pre-fills the next prompt.
#[derive(Debug, Default)]
pub(super) struct TypeAhead {
    pub(super) text: String,
    pub(super) queued: VecDeque<String>,
}

impl TypeAhead {
    /// Applies a key typed outside a question; returns a line it queued.
    pub(super) fn key(&mut self, key: &TurnKey) -> Option<String> {
        match key {
            TurnKey::Char(c) => self.text.push(*c),
            TurnKey::Backspace => {
                self.text.pop();
            }
            TurnKey::Enter => return self.enter(),
            _ => {}
        }
        None
    }

    /// Enter: a line ending in `\` continues (as at the prompt); otherwise
    /// the line is queued to run next.
    fn enter(&mut self) -> Option<String> {
        if self.text.trim().is_empty() {
            self.text.clear();
            return None;
        }
        if self.text.ends_with('\\') && !self.text.ends_with("\\\\") {
            self.text.push('\n');
            return None;
        }
        let line = join_continuations(&std::mem::take(&mut self.text));
        self.queued.push_back(line.clone());
        Some(line)
    }
}

/// How a turn ended, for the session loop.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TurnEnd {
    /// The user asked to leave the UI.
    pub(super) quit: bool,
    /// The turn's stream reached its end (ended, failed or broke off); when
    /// leaving before that, the driver waits a moment for the cancel to be
    /// recorded.
    pub(super) finished: bool,
    /// The line to show after the turn (cancelled, cut short, …), styled.
    pub(super) closing: Option<String>,
}

/// The state of one running turn.
pub(super) struct TurnState {
    view: TurnView,
    status: Status,
    typeahead: TypeAhead,
    max_iterations: u32,
    cancelling: bool,
    quit: bool,
    /// The loop is over: no more input is taken.
    over: bool,
    finished: bool,
    ended: Option<StopReason>,
    /// MCP servers' elicitation requests, the first being answered.
    forms: VecDeque<Form>,
    /// What is typed for the current form field.
    typed: String,
}

impl TurnState {
    /// A turn shown by `view`, starting from the session's `status` and
    /// the text typed ahead so far.
    pub(super) fn new(
        view: TurnView,
        status: Status,
        typeahead: TypeAhead,
        max_iterations: u32,
    ) -> Self {
        Self {
            view,
            status,
            typeahead,
            max_iterations,
            cancelling: false,
            quit: false,
            over: false,
            finished: false,
            ended: None,
            forms: VecDeque::new(),
            typed: String::new(),
        }
    }

    /// A permission question or an elicitation form is waiting for an
    /// answer.
    pub(super) fn asking(&self) -> bool {
        self.view.question().is_some() || !self.forms.is_empty()
    }

    /// No more input is taken: the turn ended, or the user is leaving.
    pub(super) fn is_over(&self) -> bool {
        self.over
    }

    #[cfg(test)]
    pub(super) fn status(&self) -> &Status {
        &self.status
    }

    /// Handles one input at time `now`.
    pub(super) fn on(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = String::new();
        let mut actions = Vec::new();
        match input {
            Input::Tick => self.view.tick(&mut out),
            Input::Closed => {
                let message = "the agent stopped without finishing the turn";
                self.stream_over(message, &mut out);
            }
            Input::Failed(message) => self.stream_over(&message, &mut out),
            Input::Event(event) => self.event(event, now, &mut actions, &mut out),
            Input::Key(key) if !self.forms.is_empty() => self.form_key(key, &mut actions, &mut out),
            Input::Key(key) => self.key(key, &mut actions, &mut out),
            Input::Answer(line) if !self.forms.is_empty() => {
                self.form_line(line, &mut actions, &mut out);
            }
            Input::Answer(line) => self.typed_answer(line, &mut actions, &mut out),
        }
        if !out.is_empty() {
            actions.push(Action::Show(out));
        }
        actions
    }

    /// Keys typed as the turn ended belong to the next prompt.
    pub(super) fn late_keys(&mut self, keys: Vec<TurnKey>) {
        for key in keys {
            match key {
                TurnKey::Eof => self.quit = true,
                key => {
                    self.typeahead.key(&key);
                }
            }
        }
    }

    /// Ends the turn: the session's status and typed-ahead text go back to
    /// the session loop, with how the turn ended.
    pub(super) fn end(self) -> (TurnEnd, Status, TypeAhead) {
        let closing = self
            .ended
            .and_then(|stop| crate::texts::stop_line(stop, Some(self.max_iterations)))
            .map(|line| {
                let mut styled = String::new();
                self.view.styler().paint(Role::Warning, &line, &mut styled);
                styled.push('\n');
                styled
            });
        let end = TurnEnd {
            quit: self.quit,
            finished: self.finished,
            closing,
        };
        (end, self.status, self.typeahead)
    }

    fn stream_over(&mut self, message: &str, out: &mut String) {
        self.view.error(message, out);
        self.finished = true;
        self.over = true;
    }

    fn event(&mut self, event: Event, now: Instant, actions: &mut Vec<Action>, out: &mut String) {
        if let Event::ClientRequest(request) = event {
            self.client_request(request, actions, out);
            return;
        }
        let view = &mut self.view;
        match event {
            Event::TextDelta(text) => view.text(&text, out),
            Event::ThinkingDelta(text) => view.thinking(&text, out),
            Event::ToolCall(call) => view.tool_started(&call, now, out),
            Event::ToolCallUpdate(update) => view.tool_updated(&update, now, out),
            Event::Child(child) => {
                view.child_started(&child);
                view.child(&child, out);
            }
            Event::PermissionRequest(request) => view.ask(request, out),
            Event::Notice(notice) => view.notice(&notice.message, out),
            Event::Compacted(compacted) => {
                view.notice(&compacted.message, out);
                // What the next call sends is about the summary's size.
                self.status.context_used = compacted.tokens_after;
            }
            Event::Retracted(r) => view.notice(&crate::texts::retracted_notice(&r.reason), out),
            Event::Usage(usage) => self.status.add(&usage),
            Event::ModelSelected(selected) => {
                self.status.provider = selected.provider;
                self.status.model = selected.model;
                if selected.context_window > 0 {
                    self.status.context_window = selected.context_window;
                }
            }
            Event::Ended(end) => {
                self.ended = Some(end.stop_reason());
                self.finished = true;
                self.over = true;
                view.finish(out);
            }
            Event::Error(error) => {
                self.finished = true;
                self.over = true;
                view.error(&error.message, out);
                view.finish(out);
            }
            Event::PermissionDecided(decided) => {
                if let Some(line) = hook_decision(&decided) {
                    view.notice(&line, out);
                }
            }
            Event::Plan(plan) => super::plan::show(view, &plan, out),
            Event::Started(_) | Event::ClientRequest(_) => {}
        }
    }

    fn key(&mut self, key: TurnKey, actions: &mut Vec<Action>, out: &mut String) {
        let asking = self.asking();
        match key {
            TurnKey::Eof => {
                // Ctrl-D leaves, as at the prompt; the turn is cancelled
                // (and recorded so) on the way out.
                actions.push(Action::Cancel);
                self.leave(out);
            }
            // A second Ctrl-C: leave (dropping the turn cancels it).
            TurnKey::Interrupt if self.cancelling => self.leave(out),
            TurnKey::Interrupt => {
                self.cancelling = true;
                actions.push(Action::Cancel);
                self.view.info("cancelling… (Ctrl-C again to exit)", out);
            }
            TurnKey::Escape if asking => self.answer(Decision::RejectOnce, actions, out),
            TurnKey::Escape if !self.cancelling => {
                self.cancelling = true;
                actions.push(Action::Cancel);
                self.view.info("cancelling…", out);
            }
            TurnKey::Char(c) if asking => {
                if let Some(decision) = decision_for_key(c) {
                    self.answer(decision, actions, out);
                }
            }
            TurnKey::Resize(cols) => self.view.set_width(usize::from(cols)),
            key => {
                if let Some(line) = self.typeahead.key(&key) {
                    self.view.info(&format!("queued: {line}"), out);
                }
            }
        }
    }

    fn typed_answer(&mut self, line: Option<String>, actions: &mut Vec<Action>, out: &mut String) {
        match line.as_deref().map(decision_for_answer) {
            Some(Some(decision)) => self.answer(decision, actions, out),
            Some(None) => self.view.info("answer y, a, n or N", out),
            None => {
                // stdin closed while asked: refuse and leave after the turn.
                self.answer(Decision::RejectOnce, actions, out);
                self.quit = true;
            }
        }
    }

    fn answer(&mut self, decision: Decision, actions: &mut Vec<Action>, out: &mut String) {
        if let Some(request_id) = self.view.answer(decision, out) {
            actions.push(Action::Answer {
                request_id,
                decision,
            });
        }
    }

    fn leave(&mut self, out: &mut String) {
        self.quit = true;
        self.over = true;
        self.view.finish(out);
    }
}

/// `hook "guard" denied execute_command: reason`, when a hook decided;
/// other decisions show as the call's spinner and result (a hook's rewrite
/// comes as a notice).
fn hook_decision(decided: &PermissionDecided) -> Option<String> {
    use openheim_proto::agent_loop::v1::DecisionSource;
    if decided.source() != DecisionSource::Hook {
        return None;
    }
    let verb = if decided.allowed { "allowed" } else { "denied" };
    let mut line = format!("hook {:?} {verb} {}", decided.hook, decided.tool_name);
    if !decided.reason.is_empty() {
        line.push_str(": ");
        line.push_str(&decided.reason);
    }
    Some(line)
}

#[path = "machine_form.rs"]
mod form;

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
