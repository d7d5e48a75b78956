//! Input: the line editor at the prompt (reedline: history persisted under
//! the data dir, multi-line, completion, bracketed paste), keys one by one
//! while a turn runs (raw mode, read on a thread of its own), and plain
//! line reading when stdin is not a terminal.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use reedline::{
    ColumnarMenu, EditCommand, Emacs, FileBackedHistory, MenuBuilder, Prompt, PromptEditMode,
    PromptHistorySearch, Reedline, ReedlineEvent, ReedlineMenu, Signal, ValidationResult,
    Validator, default_emacs_keybindings,
};
use tokio::sync::mpsc;

use super::commands::{CommandCompleter, Vocabulary};
use super::theme::Theme;

/// Entries kept in the history file.
const HISTORY_SIZE: usize = 5_000;

/// What the prompt shows: the model on the right, the context fill.
#[derive(Debug, Clone, Default)]
pub(super) struct PromptLine {
    pub(super) status: String,
    pub(super) theme: Theme,
}

impl Prompt for PromptLine {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.status)
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("› ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("… ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        Cow::Owned(format!("(search: {}) ", search.term))
    }

    fn get_prompt_color(&self) -> reedline::Color {
        accent(self.theme)
    }

    fn get_indicator_color(&self) -> reedline::Color {
        accent(self.theme)
    }

    fn get_prompt_multiline_color(&self) -> reedline::Color {
        reedline::Color::DarkGray
    }

    fn get_prompt_right_color(&self) -> reedline::Color {
        reedline::Color::DarkGray
    }
}

fn accent(theme: Theme) -> reedline::Color {
    use reedline::Color;
    match theme {
        Theme::Green => Color::LightGreen,
        Theme::Blue => Color::LightBlue,
        Theme::Red => Color::LightRed,
        Theme::White => Color::White,
        Theme::Cyan => Color::LightCyan,
        Theme::Magenta => Color::LightMagenta,
        Theme::Yellow => Color::LightYellow,
    }
}

/// A line ending in `\` continues on the next line (Alt-Enter and
/// Shift-Enter insert a newline too).
struct ContinuationValidator;

impl Validator for ContinuationValidator {
    fn validate(&self, line: &str) -> ValidationResult {
        if line.ends_with('\\') && !line.ends_with("\\\\") {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Complete
        }
    }
}

/// Removes the `\` of continued lines from a submitted multi-line input.
pub(super) fn join_continuations(input: &str) -> String {
    input.replace("\\\n", "\n")
}

/// What the user did at the prompt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupt,
    /// Ctrl-D on an empty line, or end of input.
    Eof,
}

/// The reedline editor, moved to a blocking thread for each read.
pub(super) struct LineEditor {
    editor: Option<Box<Reedline>>,
}

impl LineEditor {
    pub(super) fn new(
        history_file: &Path,
        vocabulary: Arc<Mutex<Vocabulary>>,
        color: bool,
    ) -> anyhow::Result<Self> {
        let history = FileBackedHistory::with_file(HISTORY_SIZE, history_file.to_path_buf())
            .map_err(|e| anyhow::anyhow!("history {}: {e}", history_file.display()))?;
        let mut keybindings = default_emacs_keybindings();
        keybindings.add_binding(
            KeyModifiers::NONE,
            KeyCode::Tab,
            ReedlineEvent::UntilFound(vec![
                ReedlineEvent::Menu("completion_menu".to_owned()),
                ReedlineEvent::MenuNext,
            ]),
        );
        for modifiers in [KeyModifiers::ALT, KeyModifiers::SHIFT] {
            keybindings.add_binding(
                modifiers,
                KeyCode::Enter,
                ReedlineEvent::Edit(vec![EditCommand::InsertNewline]),
            );
        }
        let menu = ColumnarMenu::default().with_name("completion_menu");
        let editor = Reedline::create()
            .with_history(Box::new(history))
            .with_history_exclusion_prefix(Some(" ".to_owned()))
            .with_completer(Box::new(CommandCompleter::new(vocabulary)))
            .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
            .with_edit_mode(Box::new(Emacs::new(keybindings)))
            .with_validator(Box::new(ContinuationValidator))
            .with_ansi_colors(color)
            .use_bracketed_paste(true);
        Ok(Self {
            editor: Some(Box::new(editor)),
        })
    }

    /// Reads one entry (blocking work on a blocking thread).
    pub(super) async fn read(&mut self, prompt: PromptLine) -> anyhow::Result<Entry> {
        let mut editor = self
            .editor
            .take()
            .ok_or_else(|| anyhow::anyhow!("the line editor was lost"))?;
        let (editor, signal) = tokio::task::spawn_blocking(move || {
            let signal = editor.read_line(&prompt);
            (editor, signal)
        })
        .await?;
        self.editor = Some(editor);
        Ok(match signal? {
            Signal::Success(line) => Entry::Line(join_continuations(&line)),
            Signal::CtrlC => Entry::Interrupt,
            Signal::CtrlD => Entry::Eof,
            Signal::HostCommand(line) | Signal::ExternalBreak(line) => Entry::Line(line),
            // Signals added by later reedline versions: nothing was entered.
            _ => Entry::Line(String::new()),
        })
    }

    /// Puts text typed ahead (while a turn ran) into the next prompt.
    pub(super) fn prefill(&mut self, text: &str) {
        if let Some(editor) = self.editor.as_mut() {
            editor.run_edit_commands(&[EditCommand::InsertString(text.to_owned())]);
        }
    }

    pub(super) fn clear_screen(&mut self) {
        if let Some(editor) = self.editor.as_mut() {
            let _ = editor.clear_scrollback();
        }
    }
}

/// A key that matters while a turn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TurnKey {
    Char(char),
    Escape,
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D.
    Eof,
    Enter,
    Backspace,
    Resize(u16),
}

/// Reads keys on a thread while the terminal is in raw mode; stopped (and
/// joined) before the line editor reads again, so the two never compete.
pub(super) struct KeyReader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub(super) keys: mpsc::Receiver<TurnKey>,
}

impl KeyReader {
    pub(super) fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, keys) = mpsc::channel(64);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tui-keys".into())
            .spawn(move || read_keys(&flag, &tx))
            .ok();
        Self { stop, thread, keys }
    }

    /// Stops the reader; returns the keys it read that nobody took yet.
    pub(super) async fn stop(mut self) -> Vec<TurnKey> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let mut left = Vec::new();
        while let Ok(key) = self.keys.try_recv() {
            left.push(key);
        }
        left
    }
}

fn read_keys(stop: &AtomicBool, tx: &mpsc::Sender<TurnKey>) {
    while !stop.load(Ordering::Relaxed) {
        match event::poll(Duration::from_millis(40)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let key = match event::read() {
            Ok(Event::Key(key)) => turn_key(key),
            Ok(Event::Resize(cols, _)) => Some(TurnKey::Resize(cols)),
            Ok(_) => None,
            Err(_) => return,
        };
        if let Some(key) = key
            && tx.blocking_send(key).is_err()
        {
            return;
        }
    }
}

fn turn_key(key: KeyEvent) -> Option<TurnKey> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c') if ctrl => Some(TurnKey::Interrupt),
        KeyCode::Char('d') if ctrl => Some(TurnKey::Eof),
        KeyCode::Char(c) if !ctrl => Some(TurnKey::Char(c)),
        KeyCode::Esc => Some(TurnKey::Escape),
        KeyCode::Enter => Some(TurnKey::Enter),
        KeyCode::Backspace => Some(TurnKey::Backspace),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backslash_continues_a_line() {
        let v = ContinuationValidator;
        assert!(matches!(
            v.validate("first \\"),
            ValidationResult::Incomplete
        ));
        assert!(matches!(v.validate("done"), ValidationResult::Complete));
        assert!(matches!(
            v.validate("path C:\\\\"),
            ValidationResult::Complete
        ));
        assert_eq!(join_continuations("a \\\nb"), "a \nb");
    }

    #[test]
    fn ctrl_keys_map_to_turn_controls() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(turn_key(ctrl_c), Some(TurnKey::Interrupt));
        let y = KeyEvent::new(KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(turn_key(y), Some(TurnKey::Char('y')));
        let shift_n = KeyEvent::new(KeyCode::Char('N'), KeyModifiers::SHIFT);
        assert_eq!(turn_key(shift_n), Some(TurnKey::Char('N')));
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(turn_key(esc), Some(TurnKey::Escape));
    }
}
