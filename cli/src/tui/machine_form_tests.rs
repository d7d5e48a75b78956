//! An MCP server's question put to the user, input by input.

use std::time::Instant;

use openheim_proto::agent_loop::v1::turn_event::Event;
use openheim_proto::common::v1::Elicitation;
use serde_json::{Value, json};

use super::super::super::render::TurnView;
use super::super::super::status::Status;
use super::super::super::theme::Styler;
use super::super::{Input, TypeAhead};
use super::*;

fn plain() -> TurnState {
    let view = TurnView::new(Styler::plain(), false, 80);
    TurnState::new(view, Status::default(), TypeAhead::default(), 8)
}

/// Feeds `inputs`; returns everything shown and the other actions.
fn feed(state: &mut TurnState, inputs: Vec<Input>) -> (String, Vec<Action>) {
    let mut shown = String::new();
    let mut other = Vec::new();
    for input in inputs {
        for action in state.on(input, Instant::now()) {
            match action {
                Action::Show(text) => shown.push_str(&text),
                action => other.push(action),
            }
        }
    }
    (shown, other)
}

fn asked(id: &str, schema: Value) -> Input {
    Input::Event(Event::ClientRequest(ClientRequest {
        request_id: id.into(),
        tool_call_id: "c1".into(),
        operation: Some(Operation::Elicit(Elicitation {
            server: "everything".into(),
            message: "Please provide inputs".into(),
            requested_schema_json: schema.to_string(),
        })),
    }))
}

fn schema() -> Value {
    json!({
        "properties": {
            "name": {"type": "string", "description": "Your name"},
            "pet": {"type": "string", "enum": ["cat", "dog"], "default": "cat"},
        },
        "required": ["name"],
    })
}

fn keys(text: &str) -> Vec<Input> {
    text.chars()
        .map(|c| match c {
            '\n' => Input::Key(TurnKey::Enter),
            c => Input::Key(TurnKey::Char(c)),
        })
        .collect()
}

fn answered(actions: &[Action]) -> Vec<(String, &'static str, String)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Elicitation {
                request_id,
                action,
                content_json,
            } => Some((request_id.clone(), *action, content_json.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn typed_answers_are_checked_and_sent_as_the_content() {
    let mut state = plain();
    let (shown, actions) = feed(&mut state, vec![asked("q1", schema())]);
    assert!(actions.is_empty(), "{actions:?}");
    assert!(state.asking());
    assert!(
        shown.contains("? MCP server \"everything\" asks: Please provide inputs"),
        "{shown}"
    );
    assert!(shown.contains("  name* (text) Your name"), "{shown}");

    // Enter on a required field: asked again with the reason.
    let (shown, actions) = feed(&mut state, keys("\n"));
    assert!(actions.is_empty(), "{actions:?}");
    assert!(
        shown.contains("error: name: a value is required"),
        "{shown}"
    );
    assert!(shown.contains("  name* (text) Your name"), "{shown}");

    // Typed keys, a backspace, then the enum by number.
    let mut inputs = keys("Adx");
    inputs.push(Input::Key(TurnKey::Backspace));
    inputs.extend(keys("a\n"));
    let (shown, _) = feed(&mut state, inputs);
    assert!(shown.contains("  name: Ada"), "{shown}");
    assert!(shown.contains("  pet (choose a number) [cat]"), "{shown}");
    assert!(shown.contains("    2. dog"), "{shown}");
    let (shown, actions) = feed(&mut state, keys("9\n2\n"));
    assert!(
        shown.contains("error: pet: choose a number from 1 to 2"),
        "{shown}"
    );
    assert!(shown.contains("  sent to everything"), "{shown}");
    let answers = answered(&actions);
    assert_eq!(answers.len(), 1, "{actions:?}");
    assert_eq!((answers[0].0.as_str(), answers[0].1), ("q1", "accept"));
    let content: Value = serde_json::from_str(&answers[0].2).unwrap();
    assert_eq!(content, json!({"name": "Ada", "pet": "dog"}));
    assert!(!state.asking());
}

#[test]
fn escape_and_ctrl_c_decline_and_the_next_question_follows() {
    let mut state = plain();
    let (_, actions) = feed(
        &mut state,
        vec![
            asked("q1", schema()),
            asked("q2", schema()),
            Input::Key(TurnKey::Char('A')),
            Input::Key(TurnKey::Escape),
        ],
    );
    assert_eq!(
        answered(&actions),
        vec![("q1".to_owned(), "decline", String::new())]
    );
    // The turn is not cancelled: Esc answered the question.
    assert!(!actions.contains(&Action::Cancel), "{actions:?}");
    assert!(state.asking(), "the second question is open");
    let (shown, actions) = feed(&mut state, vec![Input::Key(TurnKey::Interrupt)]);
    assert_eq!(
        answered(&actions),
        vec![("q2".to_owned(), "decline", String::new())]
    );
    assert!(shown.contains("declined; everything is told so"), "{shown}");
    assert!(!actions.contains(&Action::Cancel), "{actions:?}");
    assert!(!state.asking());
}

#[test]
fn typed_lines_answer_without_a_terminal_and_end_of_input_cancels() {
    let mut state = plain();
    let line = |s: &str| Input::Answer(Some(s.to_owned()));
    let (_, actions) = feed(
        &mut state,
        vec![asked("q1", schema()), line("Grace"), line("")],
    );
    let answers = answered(&actions);
    let content: Value = serde_json::from_str(&answers[0].2).unwrap();
    assert_eq!(
        content,
        json!({"name": "Grace", "pet": "cat"}),
        "default kept"
    );

    let (_, actions) = feed(&mut state, vec![asked("q2", schema()), Input::Answer(None)]);
    assert_eq!(
        answered(&actions),
        vec![("q2".to_owned(), "cancel", String::new())]
    );
    let (end, _, _) = state.end();
    assert!(end.quit, "stdin closed: leave after the turn");
}

#[test]
fn a_form_that_cannot_be_answered_is_declined_with_a_notice() {
    let mut state = plain();
    let schema = json!({"properties": {"loc": {"type": "object"}}, "required": ["loc"]});
    let (shown, actions) = feed(&mut state, vec![asked("q1", schema)]);
    assert_eq!(
        answered(&actions),
        vec![("q1".to_owned(), "decline", String::new())]
    );
    assert!(
        shown.contains("note: MCP server \"everything\" asked for input (\"Please provide inputs\"); declined: its field \"loc\" is of a kind not supported"),
        "{shown}"
    );
    assert!(!state.asking());
}

#[test]
fn on_a_terminal_the_typed_answer_is_drawn_live() {
    let view = TurnView::new(Styler::plain(), true, 80);
    let mut state = TurnState::new(view, Status::default(), TypeAhead::default(), 8);
    let mut inputs = vec![asked("q1", schema())];
    inputs.extend(keys("Al"));
    let (shown, _) = feed(&mut state, inputs);
    assert!(shown.ends_with("  › Al"), "{shown:?}");
}

#[test]
fn a_long_typed_answer_stays_on_one_row_showing_its_end() {
    let view = TurnView::new(Styler::plain(), true, 20);
    let mut state = TurnState::new(view, Status::default(), TypeAhead::default(), 8);
    let mut inputs = vec![asked("q1", schema())];
    inputs.extend(keys("abcdefghijklmnopqrstuvwxyz"));
    let (shown, _) = feed(&mut state, inputs);
    let last_row = shown.rsplit("\x1b[2K").next().unwrap_or_default();
    assert_eq!(last_row, "…jklmnopqrstuvwxyz");
    assert_eq!(last_row.chars().count(), 18);
}
