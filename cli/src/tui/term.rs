//! The terminal as the TUI uses it: whether it is interactive, its width,
//! raw mode while a turn runs, and one writer that knows whether `\n` needs
//! a carriage return (raw mode turns off the terminal's output processing).

use std::io::{self, IsTerminal, Write};

/// How the session talks to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// stdin and stdout are terminals: line editor, raw-mode keys during a
    /// turn, live spinner lines.
    Interactive,
    /// Anything else (pipes, files): lines in, plain lines out.
    Plain,
}

impl Mode {
    pub(super) fn detect() -> Self {
        if io::stdin().is_terminal() && io::stdout().is_terminal() {
            Mode::Interactive
        } else {
            Mode::Plain
        }
    }
}

/// Columns of the terminal (80 when unknown).
pub(super) fn width() -> usize {
    crossterm::terminal::size()
        .map(|(cols, _)| usize::from(cols.max(20)))
        .unwrap_or(80)
}

/// Writes to stdout; in raw mode every `\n` becomes `\r\n`.
pub(super) struct Screen {
    raw: bool,
    buffer: String,
}

impl Default for Screen {
    fn default() -> Self {
        Self::new()
    }
}

impl Screen {
    pub(super) fn new() -> Self {
        Self {
            raw: false,
            buffer: String::with_capacity(4096),
        }
    }

    /// Writes `text` and flushes.
    pub(super) fn write(&mut self, text: &str) -> io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        if self.raw {
            self.buffer.clear();
            crlf(text, &mut self.buffer);
            out.write_all(self.buffer.as_bytes())?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        out.flush()
    }

    /// Raw mode on (keys arrive one by one, Ctrl-C is a key, no echo).
    pub(super) fn enter_raw(&mut self) -> io::Result<()> {
        crossterm::terminal::enable_raw_mode()?;
        self.raw = true;
        Ok(())
    }

    pub(super) fn leave_raw(&mut self) -> io::Result<()> {
        if self.raw {
            self.raw = false;
            crossterm::terminal::disable_raw_mode()?;
        }
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.leave_raw();
    }
}

/// Appends `text` with every `\n` not already preceded by `\r` turned into
/// `\r\n`.
pub(super) fn crlf(text: &str, out: &mut String) {
    let mut prev = '\0';
    for c in text.chars() {
        if c == '\n' && prev != '\r' {
            out.push('\r');
        }
        out.push(c);
        prev = c;
    }
}

/// Cuts `text` to at most `max` columns (counting chars; wide characters
/// may count double on screen, so callers leave a margin), adding `…`.
pub(super) fn fit(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let mut chars = text.char_indices();
    match chars.nth(max.saturating_sub(1)) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => {
            let mut short = text[..cut].to_owned();
            short.push('…');
            std::borrow::Cow::Owned(short)
        }
        _ => std::borrow::Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_output_gets_carriage_returns_once() {
        let mut out = String::new();
        crlf("a\nb\r\nc\n", &mut out);
        assert_eq!(out, "a\r\nb\r\nc\r\n");
    }

    #[test]
    fn fit_cuts_long_text_on_char_boundaries() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("exactly10!", 10), "exactly10!");
        assert_eq!(fit("héllo wörld, long", 8), "héllo w…");
        assert_eq!(fit("日本語のテキスト", 4), "日本語…");
    }
}
