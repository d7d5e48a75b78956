//! What a user sees of a turn, driven input by input without a terminal.

use std::time::{Duration, Instant};

use openheim_proto::agent_loop::v1::{
    ChildActivity, Compacted, DecisionSource, ModelSelected, Notice, PermissionRequest, Retracted,
    ToolCallStarted, ToolCallStatus, ToolCallUpdate, TurnEnded, TurnError, child_activity,
};
use openheim_proto::common::v1::{FileDiff, Usage};

use super::*;
use crate::tui::theme::Styler;

/// A turn shown as plain lines (no terminal, no colour), 80 columns.
fn plain() -> TurnState {
    let view = TurnView::new(Styler::plain(), false, 80);
    TurnState::new(view, Status::default(), TypeAhead::default(), 8)
}

/// Feeds `inputs` at `t0 + 5 ms` each; returns everything shown and the
/// other actions, in order.
fn feed(state: &mut TurnState, inputs: Vec<Input>) -> (String, Vec<Action>) {
    let t0 = Instant::now();
    let mut shown = String::new();
    let mut other = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let now = t0 + Duration::from_millis(5 * i as u64);
        for action in state.on(input, now) {
            match action {
                Action::Show(text) => shown.push_str(&text),
                action => other.push(action),
            }
        }
    }
    (shown, other)
}

fn text(s: &str) -> Input {
    Input::Event(Event::TextDelta(s.into()))
}

fn ended(stop: StopReason) -> Input {
    Input::Event(Event::Ended(TurnEnded {
        stop_reason: stop as i32,
        ..TurnEnded::default()
    }))
}

fn tool(id: &str, title: &str) -> ToolCallStarted {
    ToolCallStarted {
        id: id.into(),
        title: title.into(),
        ..ToolCallStarted::default()
    }
}

fn update(id: &str, status: ToolCallStatus, content: &str) -> ToolCallUpdate {
    ToolCallUpdate {
        id: id.into(),
        status: status as i32,
        content: content.into(),
        ..ToolCallUpdate::default()
    }
}

fn question(id: &str, title: &str) -> Input {
    Input::Event(Event::PermissionRequest(PermissionRequest {
        request_id: id.into(),
        title: title.into(),
        ..PermissionRequest::default()
    }))
}

#[test]
fn a_reply_redone_after_a_dropped_stream_is_marked_where_it_restarts() {
    let mut state = plain();
    let (shown, _) = feed(
        &mut state,
        vec![
            text("ECHO: s"),
            Input::Event(Event::Retracted(Retracted {
                reason: "stream dropped".into(),
            })),
            text("ECHO: say something"),
            ended(StopReason::EndTurn),
        ],
    );
    assert_eq!(
        shown,
        "ECHO: s\nnote: the reply was interrupted (stream dropped); it restarts here\n\
         ECHO: say something\n"
    );
    let (end, _, _) = state.end();
    assert_eq!(
        end,
        TurnEnd {
            quit: false,
            finished: true,
            closing: None
        }
    );
}

#[test]
fn tool_calls_show_a_line_when_they_start_and_end_with_the_edit_diff() {
    let mut state = plain();
    let mut edited = update("2", ToolCallStatus::Completed, "edited");
    edited.diffs.push(FileDiff {
        path: "a.txt".into(),
        old_text: Some("one\ntwo\n".into()),
        new_text: "one\nthree\n".into(),
    });
    let (shown, _) = feed(
        &mut state,
        vec![
            text("Looking."),
            Input::Event(Event::ToolCall(tool("1", "execute_command make"))),
            Input::Event(Event::ToolCallUpdate(update(
                "1",
                ToolCallStatus::Failed,
                "exit 2: no rule",
            ))),
            Input::Event(Event::ToolCall(tool("2", "edit_file a.txt"))),
            Input::Event(Event::ToolCallUpdate(edited)),
        ],
    );
    assert!(
        shown.starts_with(
            "Looking.\n▸ execute_command make\n✗ execute_command make (5 ms): exit 2: no rule\n\
             ▸ edit_file a.txt\n✓ edit_file a.txt (5 ms)\n"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("- two") && shown.contains("+ three"),
        "{shown}"
    );
}

#[test]
fn a_permission_question_is_answered_with_one_key() {
    let mut state = plain();
    let (shown, actions) = feed(
        &mut state,
        vec![
            question("r1", "write_file a.txt"),
            Input::Key(TurnKey::Char('x')),
            Input::Key(TurnKey::Char('a')),
        ],
    );
    assert_eq!(
        shown,
        "? Allow write_file a.txt?  y yes  a always  n no  N never  \n\
         ? Allow write_file a.txt? always\n"
    );
    assert_eq!(
        actions,
        vec![Action::Answer {
            request_id: "r1".into(),
            decision: Decision::AllowAlways
        }]
    );
    assert!(!state.asking());
}

#[test]
fn escape_refuses_a_question_and_otherwise_cancels() {
    let mut state = plain();
    let (shown, actions) = feed(
        &mut state,
        vec![
            question("r1", "execute_command rm -rf build"),
            Input::Key(TurnKey::Escape),
            Input::Key(TurnKey::Escape),
            Input::Key(TurnKey::Escape),
        ],
    );
    assert!(
        shown.ends_with("? Allow execute_command rm -rf build? no\ncancelling…\n"),
        "{shown}"
    );
    assert_eq!(
        actions,
        vec![
            Action::Answer {
                request_id: "r1".into(),
                decision: Decision::RejectOnce
            },
            Action::Cancel
        ]
    );
}

#[test]
fn ctrl_c_cancels_the_turn_and_a_second_one_leaves() {
    let mut state = plain();
    let (shown, actions) = feed(
        &mut state,
        vec![text("Working on"), Input::Key(TurnKey::Interrupt)],
    );
    assert_eq!(shown, "Working on\ncancelling… (Ctrl-C again to exit)\n");
    assert_eq!(actions, vec![Action::Cancel]);
    assert!(!state.is_over());

    // The agent records the cancel and ends the turn.
    let (shown, _) = feed(&mut state, vec![ended(StopReason::Cancelled)]);
    assert_eq!(shown, "");
    assert!(state.is_over());
    let (end, _, _) = state.end();
    assert_eq!(end.closing.as_deref(), Some("cancelled\n"));
    assert!(!end.quit);

    let mut state = plain();
    let (_, actions) = feed(
        &mut state,
        vec![
            Input::Key(TurnKey::Interrupt),
            Input::Key(TurnKey::Interrupt),
        ],
    );
    assert_eq!(actions, vec![Action::Cancel]);
    assert!(state.is_over());
    let (end, _, _) = state.end();
    assert!(end.quit && !end.finished, "{end:?}");
}

#[test]
fn ctrl_d_cancels_and_leaves() {
    let mut state = plain();
    let (_, actions) = feed(&mut state, vec![Input::Key(TurnKey::Eof)]);
    assert_eq!(actions, vec![Action::Cancel]);
    let (end, _, _) = state.end();
    assert!(end.quit && !end.finished);
}

#[test]
fn a_sub_agents_calls_show_under_its_delegation() {
    let mut state = plain();
    let child = |activity| {
        Input::Event(Event::Child(ChildActivity {
            tool_call_id: "d1".into(),
            agent: "reviewer".into(),
            session_id: "s2".into(),
            activity: Some(activity),
        }))
    };
    let (shown, _) = feed(
        &mut state,
        vec![
            Input::Event(Event::ToolCall(tool("d1", "reviewer: check lib.rs"))),
            child(child_activity::Activity::ToolCall(tool(
                "c1",
                "read_file lib.rs",
            ))),
            child(child_activity::Activity::ToolCallUpdate(update(
                "c1",
                ToolCallStatus::Failed,
                "missing",
            ))),
        ],
    );
    assert_eq!(
        shown,
        "▸ reviewer: check lib.rs\n  │ reviewer ✗ read_file lib.rs\n"
    );
}

#[test]
fn compaction_is_noted_and_the_context_shrinks_to_the_summary() {
    let mut state = plain();
    let (shown, _) = feed(
        &mut state,
        vec![
            Input::Event(Event::Usage(Usage {
                input_tokens: 9_000,
                output_tokens: 100,
                ..Usage::default()
            })),
            Input::Event(Event::Compacted(Compacted {
                message: "context: summarised 12 messages".into(),
                tokens_after: 800,
                ..Compacted::default()
            })),
        ],
    );
    assert_eq!(shown, "note: context: summarised 12 messages\n");
    assert_eq!(state.status().context_used, 800);
    assert_eq!(state.status().input, 9_000);
    assert_eq!(state.status().llm_calls, 1);
}

#[test]
fn the_model_in_use_follows_fallbacks() {
    let mut state = plain();
    feed(
        &mut state,
        vec![Input::Event(Event::ModelSelected(ModelSelected {
            provider: "backup".into(),
            model: "small".into(),
            context_window: 32_000,
            is_fallback: true,
        }))],
    );
    assert_eq!(state.status().model_label(), "backup/small");
    assert_eq!(state.status().context_window, 32_000);
}

#[test]
fn notices_hook_decisions_and_errors_are_lines() {
    let mut state = plain();
    let (shown, _) = feed(
        &mut state,
        vec![
            Input::Event(Event::Notice(Notice {
                message: "retrying in 1 s".into(),
                ..Notice::default()
            })),
            Input::Event(Event::PermissionDecided(PermissionDecided {
                tool_name: "execute_command".into(),
                allowed: false,
                source: DecisionSource::Hook as i32,
                reason: "no network".into(),
                hook: "guard".into(),
                ..PermissionDecided::default()
            })),
            Input::Event(Event::PermissionDecided(PermissionDecided {
                tool_name: "read_file".into(),
                allowed: true,
                source: DecisionSource::Policy as i32,
                ..PermissionDecided::default()
            })),
            Input::Event(Event::Error(TurnError {
                message: "provider unavailable".into(),
                ..TurnError::default()
            })),
        ],
    );
    assert_eq!(
        shown,
        "note: retrying in 1 s\nnote: hook \"guard\" denied execute_command: no network\n\
         error: provider unavailable\n"
    );
    assert!(state.is_over());
    let (end, _, _) = state.end();
    assert!(end.finished && !end.quit && end.closing.is_none());
}

#[test]
fn a_stream_that_breaks_off_ends_the_turn_with_an_error() {
    let mut state = plain();
    let (shown, _) = feed(&mut state, vec![text("Half"), Input::Closed]);
    assert_eq!(
        shown,
        "Half\nerror: the agent stopped without finishing the turn\n"
    );
    assert!(state.is_over());
}

#[test]
fn running_out_of_model_calls_says_so_with_the_limit() {
    let mut state = plain();
    feed(&mut state, vec![ended(StopReason::MaxTurnRequests)]);
    let (end, _, _) = state.end();
    assert_eq!(
        end.closing.as_deref(),
        Some("stopped: reached max_iterations (8) before a final answer\n")
    );
}

#[test]
fn lines_typed_during_a_turn_are_queued_and_the_rest_prefills_the_prompt() {
    let mut state = plain();
    let mut keys: Vec<Input> = "next\\"
        .chars()
        .map(|c| Input::Key(TurnKey::Char(c)))
        .collect();
    keys.push(Input::Key(TurnKey::Enter));
    keys.extend("line".chars().map(|c| Input::Key(TurnKey::Char(c))));
    keys.push(Input::Key(TurnKey::Enter));
    keys.extend("draftx".chars().map(|c| Input::Key(TurnKey::Char(c))));
    keys.push(Input::Key(TurnKey::Backspace));
    let (shown, actions) = feed(&mut state, keys);
    assert_eq!(shown, "queued: next\nline\n");
    assert!(actions.is_empty());
    state.late_keys(vec![TurnKey::Char('!')]);
    let (end, _, typeahead) = state.end();
    assert!(!end.quit);
    assert_eq!(typeahead.queued, ["next\nline"]);
    assert_eq!(typeahead.text, "draft!");
}

#[test]
fn without_a_terminal_questions_are_answered_with_a_line() {
    let mut state = plain();
    let (shown, actions) = feed(
        &mut state,
        vec![
            question("r1", "fetch example.com"),
            Input::Answer(Some("maybe".into())),
            Input::Answer(Some("y".into())),
            question("r2", "fetch example.org"),
            Input::Answer(None),
        ],
    );
    assert!(shown.contains("answer y, a, n or N\n? Allow fetch example.com? yes\n"));
    assert!(
        shown.ends_with("? Allow fetch example.org? no\n"),
        "{shown}"
    );
    assert_eq!(
        actions,
        vec![
            Action::Answer {
                request_id: "r1".into(),
                decision: Decision::AllowOnce
            },
            Action::Answer {
                request_id: "r2".into(),
                decision: Decision::RejectOnce
            }
        ]
    );
    // stdin is gone: the UI leaves once the turn is over.
    assert!(!state.is_over());
    let (end, _, _) = state.end();
    assert!(end.quit);
}
