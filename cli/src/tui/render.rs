//! How a running turn looks: the answer streamed as markdown, thinking
//! dimmed, one line per tool call (a spinner while it runs, then ✓/✗ with
//! its duration and the diff of any file it changed), and permission
//! questions.
//!
//! Output is built into a `String` the caller writes, so the view is a pure
//! function of events and time (and tested as one). On an interactive
//! terminal the running tool calls and the open question form a *live
//! region* at the bottom: it is erased and redrawn in place, everything
//! above it is final scrollback.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openheim_proto::agent_loop::v1::{
    ChildActivity, Decision, PermissionRequest, ToolCallStarted, ToolCallStatus, ToolCallUpdate,
    child_activity,
};

use super::diff;
use super::markdown::MarkdownStream;
use super::term::fit;
use super::theme::{Role, Styler};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Running calls shown individually in the live region; more are counted.
const MAX_LIVE_TOOLS: usize = 6;
/// Lines of a file diff shown under its tool call.
const DIFF_LINES: usize = 40;

struct LiveTool {
    id: String,
    title: String,
    started: Instant,
    /// An `in_progress` update came (later ones are progress, e.g. of a
    /// sub-agent, and do not restart the clock).
    running: bool,
}

/// The rendering state of one turn.
pub(super) struct TurnView {
    styler: Styler,
    /// Draw the live region (interactive terminal); otherwise tool calls
    /// are plain lines when they start and end.
    live: bool,
    width: usize,
    md: MarkdownStream,
    wrote_text: bool,
    thinking: bool,
    /// The committed output ends at the start of a line.
    line_start: bool,
    tools: Vec<LiveTool>,
    /// Titles of sub-agents' running tool calls, by (session, call).
    child_titles: HashMap<(String, String), String>,
    questions: VecDeque<PermissionRequest>,
    /// A line being typed in answer to a form, drawn last in the live
    /// region.
    input: Option<String>,
    live_rows: usize,
    frame: usize,
    /// Paths under it are shown relative to it.
    work_dir: Option<PathBuf>,
}

impl TurnView {
    pub(super) fn new(styler: Styler, live: bool, width: usize) -> Self {
        Self {
            styler,
            live,
            width: width.max(20),
            md: MarkdownStream::new(styler),
            wrote_text: false,
            thinking: false,
            line_start: true,
            tools: Vec::new(),
            child_titles: HashMap::new(),
            questions: VecDeque::new(),
            input: None,
            live_rows: 0,
            frame: 0,
            work_dir: None,
        }
    }

    /// Shows paths under `dir` relative to it.
    pub(super) fn with_work_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.work_dir = dir;
        self
    }

    /// How the view colours its output.
    pub(super) fn styler(&self) -> Styler {
        self.styler
    }

    pub(super) fn set_width(&mut self, width: usize) {
        self.width = width.max(20);
    }

    /// Streams answer text.
    pub(super) fn text(&mut self, delta: &str, out: &mut String) {
        self.clear_live(out);
        self.end_thinking(out);
        self.md.push(delta, out);
        self.wrote_text = true;
        self.line_start = self.md.at_line_start();
        self.draw_live(out);
    }

    /// Streams model reasoning, dimmed.
    pub(super) fn thinking(&mut self, delta: &str, out: &mut String) {
        self.clear_live(out);
        self.end_text(out);
        if !self.thinking {
            self.newline_if_needed(out);
            self.styler.paint(Role::Dim, "∴ thinking\n", out);
            self.thinking = true;
        }
        self.styler.set(&[Role::Dim, Role::Italic], out);
        out.push_str(delta);
        self.styler.set(&[], out);
        self.line_start = delta.ends_with('\n');
        self.draw_live(out);
    }

    pub(super) fn tool_started(&mut self, call: &ToolCallStarted, now: Instant, out: &mut String) {
        self.tools.push(LiveTool {
            id: call.id.clone(),
            title: call.title.clone(),
            started: now,
            running: false,
        });
        if !self.live {
            let mut line = String::new();
            self.styler.paint(Role::Accent, "▸", &mut line);
            line.push(' ');
            line.push_str(&call.title);
            line.push('\n');
            self.commit(&line, out);
        } else {
            self.clear_live(out);
            self.end_text(out);
            self.end_thinking(out);
            self.draw_live(out);
        }
    }

    pub(super) fn tool_updated(&mut self, update: &ToolCallUpdate, now: Instant, out: &mut String) {
        let status = update.status();
        if status == ToolCallStatus::InProgress {
            // Approved (or never asked): the duration counts from here.
            if let Some(tool) = self.tools.iter_mut().find(|t| t.id == update.id)
                && !tool.running
            {
                tool.started = now;
                tool.running = true;
            }
            return;
        }
        if matches!(
            status,
            ToolCallStatus::Pending | ToolCallStatus::Unspecified
        ) {
            return;
        }
        let Some(index) = self.tools.iter().position(|t| t.id == update.id) else {
            return;
        };
        let tool = self.tools.remove(index);
        let took = duration(now.saturating_duration_since(tool.started));
        let mut line = self.finished_line(&tool.title, &took, update);
        self.diffs(update, &mut line);
        self.commit(&line, out);
    }

    /// `✓ title (took)`, or `✗ title (took): first line of the error`.
    fn finished_line(&self, title: &str, took: &str, update: &ToolCallUpdate) -> String {
        let mut line = String::new();
        let failed = update.status() == ToolCallStatus::Failed;
        if failed {
            self.styler.paint(Role::Error, "✗", &mut line);
        } else {
            self.styler.paint(Role::Success, "✓", &mut line);
        }
        line.push(' ');
        line.push_str(title);
        line.push(' ');
        self.styler
            .paint(Role::Dim, &format!("({took})"), &mut line);
        let reason = update.content.lines().find(|l| !l.trim().is_empty());
        if failed && let Some(reason) = reason {
            line.push_str(": ");
            let room = self.width.saturating_sub(title.len() + took.len() + 10);
            self.styler
                .paint(Role::Error, &fit(reason, room.max(20)), &mut line);
        }
        line.push('\n');
        line
    }

    /// The diffs of the files a finished call changed, paths shown
    /// relative to the workspace.
    fn diffs(&self, update: &ToolCallUpdate, out: &mut String) {
        for file in &update.diffs {
            let path = Path::new(&file.path);
            let shown = match &self.work_dir {
                Some(dir) => path.strip_prefix(dir).unwrap_or(path),
                None => path,
            };
            diff::render(
                &shown.to_string_lossy(),
                file.old_text.as_deref(),
                &file.new_text,
                DIFF_LINES,
                self.styler,
                out,
            );
        }
    }

    /// A permission question; it is shown until answered.
    pub(super) fn ask(&mut self, request: PermissionRequest, out: &mut String) {
        if !self.live {
            let line = self.question_line(&request, true);
            self.commit(&line, out);
        }
        self.questions.push_back(request);
        self.clear_live(out);
        self.draw_live(out);
    }

    /// The question waiting for an answer, if any.
    pub(super) fn question(&self) -> Option<&PermissionRequest> {
        self.questions.front()
    }

    /// Answers the current question; returns its request id.
    pub(super) fn answer(&mut self, decision: Decision, out: &mut String) -> Option<String> {
        let request = self.questions.pop_front()?;
        let (role, said) = match decision {
            Decision::AllowOnce => (Role::Success, "yes"),
            Decision::AllowAlways => (Role::Success, "always"),
            Decision::RejectAlways => (Role::Error, "never"),
            Decision::RejectOnce | Decision::Unspecified => (Role::Error, "no"),
        };
        let mut line = String::new();
        self.styler.paint(Role::Accent, "?", &mut line);
        line.push_str(" Allow ");
        line.push_str(&fit(&request.title, self.width.saturating_sub(20)));
        line.push_str("? ");
        self.styler.paint(role, said, &mut line);
        line.push('\n');
        self.commit(&line, out);
        Some(request.request_id)
    }

    /// The line being typed in answer to a form (`None`: none), redrawn in
    /// the live region; not shown without a terminal (the typed line is).
    pub(super) fn set_input(&mut self, input: Option<String>, out: &mut String) {
        self.input = input;
        self.clear_live(out);
        self.draw_live(out);
    }

    /// A sub-agent's finished tool call, as an indented line under its
    /// delegation: `  │ agent ✓ title`.
    pub(super) fn child(&mut self, child: &ChildActivity, out: &mut String) {
        let Some(child_activity::Activity::ToolCallUpdate(update)) = &child.activity else {
            return;
        };
        let (role, mark) = match update.status() {
            ToolCallStatus::Completed => (Role::Success, "✓"),
            ToolCallStatus::Failed => (Role::Error, "✗"),
            _ => return,
        };
        let title = self
            .child_titles
            .remove(&(child.session_id.clone(), update.id.clone()))
            .unwrap_or_else(|| update.id.clone());
        let mut line = String::from("  ");
        self.styler.paint(Role::Dim, "│", &mut line);
        line.push(' ');
        self.styler.paint(Role::Accent, &child.agent, &mut line);
        line.push(' ');
        self.styler.paint(role, mark, &mut line);
        line.push(' ');
        line.push_str(&title);
        line.push('\n');
        self.commit(&line, out);
    }

    /// Remembers a sub-agent's tool call title until it finishes.
    pub(super) fn child_started(&mut self, child: &ChildActivity) {
        if let Some(child_activity::Activity::ToolCall(call)) = &child.activity {
            self.child_titles.insert(
                (child.session_id.clone(), call.id.clone()),
                call.title.clone(),
            );
        }
    }

    pub(super) fn notice(&mut self, message: &str, out: &mut String) {
        let mut line = String::new();
        self.styler.paint(Role::Warning, "note:", &mut line);
        line.push(' ');
        line.push_str(message);
        line.push('\n');
        self.commit(&line, out);
    }

    /// Secondary information (dim).
    pub(super) fn info(&mut self, message: &str, out: &mut String) {
        let mut line = String::new();
        self.styler.paint(Role::Dim, message, &mut line);
        line.push('\n');
        self.commit(&line, out);
    }

    pub(super) fn error(&mut self, message: &str, out: &mut String) {
        let mut line = String::new();
        self.styler.paint(Role::Error, "error:", &mut line);
        line.push(' ');
        line.push_str(message);
        line.push('\n');
        self.commit(&line, out);
    }

    /// Advances the spinner and redraws the live region.
    pub(super) fn tick(&mut self, out: &mut String) {
        if self.tools.is_empty() && self.questions.is_empty() {
            return;
        }
        self.frame = self.frame.wrapping_add(1);
        self.clear_live(out);
        self.draw_live(out);
    }

    /// Ends the turn's output: closes text and styles, erases the live
    /// region, leaves the cursor at the start of a line.
    pub(super) fn finish(&mut self, out: &mut String) {
        self.clear_live(out);
        self.end_text(out);
        self.end_thinking(out);
        self.newline_if_needed(out);
        self.tools.clear();
        self.questions.clear();
        self.input = None;
    }

    fn commit(&mut self, text: &str, out: &mut String) {
        self.clear_live(out);
        self.end_text(out);
        self.end_thinking(out);
        self.newline_if_needed(out);
        out.push_str(text);
        self.line_start = text.is_empty() || text.ends_with('\n');
        self.draw_live(out);
    }

    fn end_text(&mut self, out: &mut String) {
        if self.wrote_text {
            self.md.finish(out);
            self.md = MarkdownStream::new(self.styler);
            self.wrote_text = false;
            self.line_start = true;
        }
    }

    fn end_thinking(&mut self, out: &mut String) {
        if self.thinking {
            self.thinking = false;
            self.newline_if_needed(out);
        }
    }

    fn newline_if_needed(&mut self, out: &mut String) {
        if !self.line_start {
            out.push('\n');
            self.line_start = true;
        }
    }

    fn question_line(&self, request: &PermissionRequest, plain: bool) -> String {
        let mut line = String::new();
        self.styler.paint(Role::Accent, "?", &mut line);
        line.push_str(" Allow ");
        line.push_str(&fit(&request.title, self.width.saturating_sub(48).max(16)));
        line.push_str("?  ");
        for (key, label) in [("y", "yes"), ("a", "always"), ("n", "no"), ("N", "never")] {
            self.styler.paint(Role::Accent, key, &mut line);
            line.push(' ');
            line.push_str(label);
            line.push_str("  ");
        }
        if plain {
            line.push('\n');
        } else {
            self.styler.paint(Role::Dim, "Esc no", &mut line);
        }
        line
    }

    fn clear_live(&mut self, out: &mut String) {
        if self.live_rows == 0 {
            return;
        }
        out.push_str("\r\x1b[2K");
        for _ in 1..self.live_rows {
            out.push_str("\x1b[1A\x1b[2K");
        }
        self.live_rows = 0;
    }

    fn draw_live(&mut self, out: &mut String) {
        if !self.live || !self.line_start || self.live_rows > 0 {
            return;
        }
        let now = Instant::now();
        let mut rows = 0;
        let spinner = SPINNER[self.frame % SPINNER.len()];
        let room = self.width.saturating_sub(16).max(10);
        for tool in self.tools.iter().take(MAX_LIVE_TOOLS) {
            if rows > 0 {
                out.push('\n');
            }
            let mut s = [0u8; 4];
            self.styler
                .paint(Role::Accent, spinner.encode_utf8(&mut s), out);
            out.push(' ');
            out.push_str(&fit(&tool.title, room));
            out.push(' ');
            let elapsed = now.saturating_duration_since(tool.started);
            self.styler.paint(Role::Dim, &duration(elapsed), out);
            rows += 1;
        }
        if self.tools.len() > MAX_LIVE_TOOLS {
            out.push('\n');
            let more = format!("  … {} more running", self.tools.len() - MAX_LIVE_TOOLS);
            self.styler.paint(Role::Dim, &more, out);
            rows += 1;
        }
        if let Some(request) = self.questions.front() {
            if rows > 0 {
                out.push('\n');
            }
            out.push_str(&self.question_line(request, false));
            rows += 1;
        }
        if let Some(input) = &self.input {
            if rows > 0 {
                out.push('\n');
            }
            // One row: a long answer shows its end, where the cursor is.
            let room = self.width.saturating_sub(2);
            let length = input.chars().count();
            if length > room {
                out.push('…');
                out.extend(input.chars().skip(length + 1 - room));
            } else {
                out.push_str(input);
            }
            rows += 1;
        }
        self.live_rows = rows;
    }
}

/// `12 ms`, `3.4 s`, `2m 05s`.
pub(super) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

/// The decision a key stands for in a permission question.
pub(super) fn decision_for_key(key: char) -> Option<Decision> {
    match key {
        'y' | 'Y' => Some(Decision::AllowOnce),
        'a' | 'A' => Some(Decision::AllowAlways),
        'n' => Some(Decision::RejectOnce),
        'N' => Some(Decision::RejectAlways),
        _ => None,
    }
}

/// The decision a typed answer stands for (plain mode reads lines).
pub(super) fn decision_for_answer(answer: &str) -> Option<Decision> {
    match answer.trim() {
        "y" | "Y" | "yes" => Some(Decision::AllowOnce),
        "a" | "A" | "always" => Some(Decision::AllowAlways),
        "n" | "no" | "" => Some(Decision::RejectOnce),
        "N" | "never" => Some(Decision::RejectAlways),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openheim_proto::common::v1::FileDiff;

    fn started(id: &str, title: &str) -> ToolCallStarted {
        ToolCallStarted {
            id: id.into(),
            name: title.split(' ').next().unwrap_or_default().into(),
            title: title.into(),
            ..Default::default()
        }
    }

    fn done(id: &str, status: ToolCallStatus, content: &str) -> ToolCallUpdate {
        ToolCallUpdate {
            id: id.into(),
            status: status as i32,
            content: content.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_sub_agents_finished_calls_are_indented_under_the_delegation() {
        let mut view = TurnView::new(Styler::plain(), false, 80);
        let mut out = String::new();
        let t0 = Instant::now();
        view.tool_started(&started("d1", "reviewer: check lib.rs"), t0, &mut out);
        let child = |activity| ChildActivity {
            tool_call_id: "d1".into(),
            agent: "reviewer".into(),
            session_id: "s2".into(),
            activity: Some(activity),
        };
        let call = child(child_activity::Activity::ToolCall(started(
            "c1",
            "read_file lib.rs",
        )));
        view.child_started(&call);
        view.child(&call, &mut out);
        let finished = child(child_activity::Activity::ToolCallUpdate(done(
            "c1",
            ToolCallStatus::Completed,
            "ok",
        )));
        view.child_started(&finished);
        view.child(&finished, &mut out);
        assert_eq!(
            out,
            "▸ reviewer: check lib.rs\n  │ reviewer ✓ read_file lib.rs\n"
        );
    }

    #[test]
    fn plain_view_prints_start_and_end_lines_with_duration() {
        let mut view = TurnView::new(Styler::plain(), false, 80);
        let mut out = String::new();
        let t0 = Instant::now();
        view.text("Let me look.", &mut out);
        view.tool_started(&started("1", "read_file a.txt"), t0, &mut out);
        view.tool_started(&started("2", "execute_command"), t0, &mut out);
        let later = t0 + Duration::from_millis(42);
        view.tool_updated(
            &done("2", ToolCallStatus::Failed, "\nexit 1: boom\n"),
            later,
            &mut out,
        );
        view.tool_updated(&done("1", ToolCallStatus::Completed, "ok"), later, &mut out);
        view.finish(&mut out);
        assert_eq!(
            out,
            "Let me look.\n▸ read_file a.txt\n▸ execute_command\n✗ execute_command (42 ms): exit 1: boom\n✓ read_file a.txt (42 ms)\n"
        );
    }

    #[test]
    fn live_region_is_erased_before_final_lines() {
        let mut view = TurnView::new(Styler::plain(), true, 80);
        let mut out = String::new();
        let t0 = Instant::now();
        view.tool_started(&started("1", "list_dir ."), t0, &mut out);
        view.tool_started(&started("2", "search foo"), t0, &mut out);
        assert!(out.contains("⠋ list_dir ."), "{out:?}");
        assert!(out.contains("\n⠋ search foo"), "{out:?}");
        out.clear();
        view.tick(&mut out);
        // Two live rows: erase both, then redraw with the next frame.
        assert!(out.starts_with("\r\x1b[2K\x1b[1A\x1b[2K"), "{out:?}");
        assert!(out.contains("⠙ list_dir ."), "{out:?}");
        out.clear();
        view.tool_updated(&done("1", ToolCallStatus::Completed, ""), t0, &mut out);
        let after_erase = out.trim_start_matches("\r\x1b[2K\x1b[1A\x1b[2K");
        assert!(after_erase.starts_with("✓ list_dir . (0 ms)\n"), "{out:?}");
        assert!(after_erase.ends_with(" ms"), "search still live: {out:?}");
        out.clear();
        view.finish(&mut out);
        assert_eq!(out, "\r\x1b[2K");
    }

    #[test]
    fn questions_are_answered_in_order_and_recorded() {
        let mut view = TurnView::new(Styler::plain(), true, 100);
        let mut out = String::new();
        for (id, title) in [("r1", "write_file a.txt"), ("r2", "execute_command")] {
            let request = PermissionRequest {
                request_id: id.into(),
                title: title.into(),
                ..Default::default()
            };
            view.ask(request, &mut out);
        }
        assert!(out.contains("? Allow write_file a.txt?  y yes  a always  n no  N never"));
        assert_eq!(view.question().map(|q| q.request_id.as_str()), Some("r1"));
        out.clear();
        assert_eq!(
            view.answer(Decision::AllowAlways, &mut out).as_deref(),
            Some("r1")
        );
        assert!(
            out.contains("? Allow write_file a.txt? always\n"),
            "{out:?}"
        );
        assert!(out.ends_with("Esc no"), "next question drawn: {out:?}");
        assert_eq!(
            view.answer(Decision::RejectOnce, &mut out).as_deref(),
            Some("r2")
        );
        assert!(view.answer(Decision::RejectOnce, &mut out).is_none());
    }

    #[test]
    fn file_edits_show_their_diff() {
        let mut view = TurnView::new(Styler::plain(), false, 80);
        let mut out = String::new();
        let t0 = Instant::now();
        view.tool_started(&started("1", "edit_file a.txt"), t0, &mut out);
        let mut update = done("1", ToolCallStatus::Completed, "edited");
        update.diffs.push(FileDiff {
            path: "a.txt".into(),
            old_text: Some("one\ntwo\n".into()),
            new_text: "one\nthree\n".into(),
        });
        view.tool_updated(&update, t0, &mut out);
        assert!(out.contains("- two"), "{out}");
        assert!(out.contains("+ three"), "{out}");
    }

    #[test]
    fn thinking_is_dimmed_and_separated_from_the_answer() {
        let styler = Styler::new(super::super::theme::Theme::Green, true);
        let mut view = TurnView::new(styler, false, 80);
        let mut out = String::new();
        view.thinking("pondering", &mut out);
        view.text("Answer", &mut out);
        view.finish(&mut out);
        assert!(
            out.contains("\x1b[0;2;3mpondering\x1b[0m\nAnswer"),
            "{out:?}"
        );
    }

    #[test]
    fn keys_and_answers() {
        assert_eq!(decision_for_key('y'), Some(Decision::AllowOnce));
        assert_eq!(decision_for_key('N'), Some(Decision::RejectAlways));
        assert_eq!(decision_for_key('x'), None);
        assert_eq!(
            decision_for_answer(" always\n"),
            Some(Decision::AllowAlways)
        );
        assert_eq!(decision_for_answer(""), Some(Decision::RejectOnce));
        assert_eq!(decision_for_answer("maybe"), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(7)), "7 ms");
        assert_eq!(duration(Duration::from_millis(3400)), "3.4 s");
        assert_eq!(duration(Duration::from_secs(125)), "2m 05s");
    }
}
