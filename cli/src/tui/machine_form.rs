//! The machine's part in MCP elicitation: an `Elicit` client request opens
//! a form (`elicit.rs`) asked field by field; keys (or typed lines without
//! a terminal) answer it; Esc or Ctrl-C declines it, leaving (Ctrl-D,
//! end of input) cancels it.

use openheim_proto::agent_loop::v1::{ClientRequest, client_request::Operation};

use super::super::editor::TurnKey;
use super::super::elicit::Form;
use super::{Action, TurnState};

impl TurnState {
    /// A client request: only elicitation is announced by the terminal UI,
    /// so other operations are not expected and are left unanswered.
    pub(super) fn client_request(
        &mut self,
        request: ClientRequest,
        actions: &mut Vec<Action>,
        out: &mut String,
    ) {
        let Some(Operation::Elicit(elicitation)) = request.operation else {
            return;
        };
        match Form::new(request.request_id.clone(), &elicitation) {
            Ok(form) => {
                self.forms.push_back(form);
                if self.forms.len() == 1 {
                    self.open_form(out);
                }
            }
            Err(reason) => {
                let line = format!(
                    "MCP server {:?} asked for input ({:?}); declined: {reason}",
                    elicitation.server, elicitation.message
                );
                self.view.notice(&line, out);
                actions.push(Action::Elicitation {
                    request_id: request.request_id,
                    action: "decline",
                    content_json: String::new(),
                });
            }
        }
    }

    /// A key while a form is open.
    pub(super) fn form_key(&mut self, key: TurnKey, actions: &mut Vec<Action>, out: &mut String) {
        match key {
            TurnKey::Char(c) => {
                self.typed.push(c);
                self.show_typed(out);
            }
            TurnKey::Backspace => {
                self.typed.pop();
                self.show_typed(out);
            }
            TurnKey::Enter => {
                let line = std::mem::take(&mut self.typed);
                self.submit(&line, actions, out);
            }
            TurnKey::Escape | TurnKey::Interrupt => self.close_form("decline", actions, out),
            TurnKey::Eof => {
                self.close_form("cancel", actions, out);
                self.forms.clear();
                actions.push(Action::Cancel);
                self.leave(out);
            }
            TurnKey::Resize(cols) => self.view.set_width(usize::from(cols)),
        }
    }

    /// A line typed for a form (no terminal); `None`: stdin was closed.
    pub(super) fn form_line(
        &mut self,
        line: Option<String>,
        actions: &mut Vec<Action>,
        out: &mut String,
    ) {
        match line {
            Some(line) => self.submit(&line, actions, out),
            None => {
                self.close_form("cancel", actions, out);
                self.forms.clear();
                self.quit = true;
            }
        }
    }

    fn submit(&mut self, line: &str, actions: &mut Vec<Action>, out: &mut String) {
        let Some(form) = self.forms.front_mut() else {
            return;
        };
        let label = form.label().to_owned();
        match form.submit(line) {
            Ok(said) => {
                if !label.is_empty() {
                    let said = said.unwrap_or_else(|| "(left out)".to_owned());
                    self.view.info(&format!("  {label}: {said}"), out);
                }
                self.next_field(actions, out);
            }
            Err(reason) => {
                self.view.error(&format!("{label}: {reason}"), out);
                self.ask_field(out);
            }
        }
    }

    fn next_field(&mut self, actions: &mut Vec<Action>, out: &mut String) {
        let done = self.forms.front().is_some_and(Form::done);
        if done {
            self.close_form("accept", actions, out);
        } else {
            self.ask_field(out);
        }
    }

    /// Shows the first form's message and asks its first field.
    fn open_form(&mut self, out: &mut String) {
        let Some(form) = self.forms.front() else {
            return;
        };
        let line = format!("? MCP server {:?} asks: {}", form.server, form.message);
        let hint = if form.done() {
            "  Enter sends, Esc declines"
        } else {
            "  * required, [default] kept with Enter; Esc declines"
        };
        self.view.info(&line, out);
        self.view.info(hint, out);
        self.ask_field(out);
    }

    fn ask_field(&mut self, out: &mut String) {
        let lines = self.forms.front().map(Form::question).unwrap_or_default();
        for line in lines {
            self.view.info(&format!("  {line}"), out);
        }
        self.show_typed(out);
    }

    fn show_typed(&mut self, out: &mut String) {
        let typed = self.forms.front().map(|_| format!("  › {}", self.typed));
        self.view.set_input(typed, out);
    }

    /// Answers the first form with `action` and opens the next one.
    fn close_form(&mut self, action: &'static str, actions: &mut Vec<Action>, out: &mut String) {
        let Some(form) = self.forms.pop_front() else {
            return;
        };
        self.typed.clear();
        self.view.set_input(None, out);
        let said = match action {
            "accept" => format!("  sent to {}", form.server),
            "decline" => format!("  declined; {} is told so", form.server),
            _ => format!("  cancelled; {} is told so", form.server),
        };
        self.view.info(&said, out);
        actions.push(Action::Elicitation {
            request_id: form.request_id.clone(),
            action,
            content_json: match action {
                "accept" => form.content(),
                _ => String::new(),
            },
        });
        if !self.forms.is_empty() {
            self.open_form(out);
        }
    }
}

#[cfg(test)]
#[path = "machine_form_tests.rs"]
mod tests;
