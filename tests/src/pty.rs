//! Drives an interactive terminal program through a real pseudo-terminal for end-to-end tests.
//!
//! [`Pty`] starts the program on the slave side of a pty and a background thread reads the
//! master side: it records every byte, keeps a `vt100` screen of what a user would see, and
//! answers the queries a plain terminal answers. The answering matters: line editors such as
//! `reedline` (through crossterm) ask for the cursor position with `ESC [ 6 n` and stall, or
//! fail, when no `ESC [ row ; col R` comes back.
//!
//! All waiting methods block the calling thread, so async tests call them from
//! `tokio::task::spawn_blocking` or a multi-threaded runtime.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use portable_pty::{Child, CommandBuilder, ExitStatus, MasterPty, PtySize, native_pty_system};

/// Lines of history the terminal emulator keeps above the visible screen.
const SCROLLBACK_ROWS: usize = 10_000;

/// How much of the stripped transcript a failure message shows.
const TAIL_CHARS: usize = 3_000;

/// How often [`Pty::wait_exit`] checks whether the child is gone.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long [`Pty::wait_exit`] waits, after the child exited, for its last output to be read.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The terminal type the child is told about unless the caller overrides `TERM`.
const DEFAULT_TERM: &str = "xterm-256color";

/// The only variables the child inherits from the test process, so that the developer's
/// environment (colours, editors, API keys) cannot change what a scenario sees.
const INHERITED_ENV: [&str; 2] = ["PATH", "HOME"];

const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Longer CSI parameter strings are consumed but never taken for a query or an SGR sequence.
const MAX_CSI_PARAM_BYTES: usize = 64;

/// What xterm answers to a primary device attributes query: a VT100 with advanced video.
const PRIMARY_DEVICE_ATTRIBUTES_REPLY: &[u8] = b"\x1b[?1;2c";

/// Marks the position of the last successful [`Pty::expect`] in failure messages.
const MARK_LABEL: &str = "\u{27e8}expect mark\u{27e9}";

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
/// CAN and SUB abort an escape sequence in progress.
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;
const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;

/// The bracketed-paste frame a terminal puts around pasted text.
const PASTE_START: &str = "\x1b[200~";
const PASTE_END: &str = "\x1b[201~";

/// The writing half of the master, shared by the test and the reader thread's replies; a whole
/// write happens under the lock so a reply never lands inside a paste.
type SharedWriter = Arc<Mutex<Box<dyn Write + Send>>>;

/// A program running in a pseudo-terminal; the child is killed when this is dropped.
pub struct Pty {
    program: String,
    shared: Arc<Shared>,
    writer: SharedWriter,
    /// Kept open for the lifetime of the driver: closing the master hangs up the terminal.
    _master: Mutex<Box<dyn MasterPty + Send>>,
    child: Box<dyn Child + Send + Sync>,
    /// The offset in the stripped transcript where the next [`Pty::expect`] starts looking.
    mark: AtomicUsize,
}

impl fmt::Debug for Pty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pty")
            .field("program", &self.program)
            .field("pid", &self.child.process_id())
            .field("mark", &self.mark.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl Pty {
    /// Starts `program` with `args` in `cwd` on a new `rows` x `cols` terminal.
    ///
    /// The child sees only `PATH` and `HOME` from this process, `TERM=xterm-256color`, and
    /// `env`, which overrides all three.
    pub fn spawn(
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        cwd: &Path,
        rows: u16,
        cols: u16,
    ) -> anyhow::Result<Pty> {
        let name = program.display().to_string();
        let (Some(parser_rows), Some(parser_cols)) = (NonZeroU16::new(rows), NonZeroU16::new(cols))
        else {
            return Err(anyhow!(
                "a terminal needs rows and columns, got {rows}x{cols}"
            ));
        };
        let size = PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        };
        let pair = native_pty_system()
            .openpty(size)
            .context("opening a pseudo-terminal")?;
        let mut command = CommandBuilder::new(program);
        command.args(args);
        command.env_clear();
        for key in INHERITED_ENV {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command.env("TERM", DEFAULT_TERM);
        for (key, value) in env {
            command.env(key, value);
        }
        command.cwd(cwd);
        let child = pair
            .slave
            .spawn_command(command)
            .with_context(|| format!("spawning `{name}` in {} on a pty", cwd.display()))?;
        // Only the child may hold the slave side, so that the reader sees end of file once the
        // child (and whatever it started) is gone.
        drop(pair.slave);
        let reader = pair
            .master
            .try_clone_reader()
            .context("cloning the pty reader")?;
        let writer: SharedWriter = Arc::new(Mutex::new(
            pair.master.take_writer().context("taking the pty writer")?,
        ));
        let shared = Arc::new(Shared {
            transcript: Mutex::new(Transcript {
                raw: Vec::new(),
                text: Vec::new(),
                parser: vt100::Parser::new(parser_rows, parser_cols, SCROLLBACK_ROWS),
                closed: false,
            }),
            changed: Condvar::new(),
        });
        // Built before the reader starts so that the child is killed if that fails.
        let pty = Pty {
            program: name,
            shared: Arc::clone(&shared),
            writer: Arc::clone(&writer),
            _master: Mutex::new(pair.master),
            child,
            mark: AtomicUsize::new(0),
        };
        // Detached: it ends by itself at end of file, which may come after the driver is gone.
        std::thread::Builder::new()
            .name("pty-reader".to_owned())
            .spawn(move || read_loop(reader, &shared, &writer))
            .context("starting the pty reader thread")?;
        Ok(pty)
    }

    /// Types `text` as is.
    pub fn send(&self, text: &str) -> anyhow::Result<()> {
        self.send_bytes(text.as_bytes())
    }

    /// Writes `bytes` to the terminal's input in one piece.
    pub fn send_bytes(&self, bytes: &[u8]) -> anyhow::Result<()> {
        write_locked(&self.writer, bytes)
            .with_context(|| format!("writing to the terminal of `{}`", self.program))
    }

    /// Types `text` and presses Enter (a carriage return, as a real terminal sends).
    pub fn send_line(&self, text: &str) -> anyhow::Result<()> {
        self.send_bytes(format!("{text}\r").as_bytes())
    }

    /// Presses Enter.
    pub fn key_enter(&self) -> anyhow::Result<()> {
        self.send_bytes(b"\r")
    }

    /// Presses Ctrl-C.
    pub fn ctrl_c(&self) -> anyhow::Result<()> {
        self.send_bytes(&[CTRL_C])
    }

    /// Presses Ctrl-D.
    pub fn ctrl_d(&self) -> anyhow::Result<()> {
        self.send_bytes(&[CTRL_D])
    }

    /// Pastes `text` the way a terminal with bracketed paste does.
    pub fn send_paste(&self, text: &str) -> anyhow::Result<()> {
        self.send_bytes(format!("{PASTE_START}{text}{PASTE_END}").as_bytes())
    }

    /// Waits until `needle` appears in the output (escape sequences and `\r` stripped) after
    /// the previous match, then moves the mark past it, so consecutive calls match in order.
    ///
    /// Fails early when the terminal closes, with the output tail and the screen either way.
    pub fn expect(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let mark = self.mark.load(Ordering::SeqCst);
        let found = self.wait_for(timeout, |transcript| {
            let start = mark.min(transcript.text.len());
            find(&transcript.text[start..], needle.as_bytes()).map(|at| start + at + needle.len())
        });
        match found {
            Ok(end) => {
                self.mark.store(end, Ordering::SeqCst);
                Ok(())
            }
            Err(stop) => Err(self.failure(&format!(
                "expected {needle:?} in the output of `{}` after the mark, {}",
                self.program,
                stop.describe(timeout)
            ))),
        }
    }

    /// Waits until `needle` is on the emulated screen or in its scrollback; the mark of
    /// [`Pty::expect`] does not move.
    pub fn expect_screen(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let found = self.wait_for(timeout, |transcript| {
            screen_with_scrollback(&mut transcript.parser)
                .contains(needle)
                .then_some(())
        });
        found.map_err(|stop| {
            self.failure(&format!(
                "expected {needle:?} on the screen of `{}`, {}",
                self.program,
                stop.describe(timeout)
            ))
        })
    }

    /// The visible screen as text.
    pub fn screen(&self) -> String {
        self.lock().parser.screen().contents()
    }

    /// The scrollback followed by the visible screen, as text.
    pub fn screen_with_scrollback(&self) -> String {
        screen_with_scrollback(&mut self.lock().parser)
    }

    /// Every byte the program wrote so far.
    pub fn raw(&self) -> Vec<u8> {
        self.lock().raw.clone()
    }

    /// Everything the program wrote so far, escape sequences and `\r` stripped.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().text).into_owned()
    }

    /// Waits for the child to exit and for its last output to be read; kills it and fails with
    /// the output tail if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            let polled = self
                .child
                .try_wait()
                .with_context(|| format!("checking whether `{}` exited", self.program))?;
            if let Some(status) = polled {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(self.failure(&format!(
                    "`{}` did not exit within {timeout:?}, so it was killed",
                    self.program
                )));
            }
            std::thread::sleep(EXIT_POLL_INTERVAL);
        };
        // Not an error if it times out: a grandchild may still hold the terminal open.
        let _ = self.wait_for(DRAIN_TIMEOUT, |transcript| transcript.closed.then_some(()));
        Ok(status)
    }

    /// Waits until `check` returns a value, the terminal closes, or `timeout` passes.
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&mut Transcript) -> Option<T>,
    ) -> Result<T, Stop> {
        let deadline = Instant::now() + timeout;
        let mut transcript = self.lock();
        loop {
            if let Some(value) = check(&mut transcript) {
                return Ok(value);
            }
            if transcript.closed {
                return Err(Stop::Closed);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Stop::TimedOut);
            }
            transcript = self
                .shared
                .changed
                .wait_timeout(transcript, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// An error saying `what`, with the output tail (showing the mark) and the screen.
    fn failure(&self, what: &str) -> anyhow::Error {
        let mark = self.mark.load(Ordering::SeqCst);
        let transcript = self.lock();
        let mark = mark.min(transcript.text.len());
        let marked = format!(
            "{}{MARK_LABEL}{}",
            String::from_utf8_lossy(&transcript.text[..mark]),
            String::from_utf8_lossy(&transcript.text[mark..])
        );
        anyhow!(
            "{what}\n--- output (last {TAIL_CHARS} chars, escapes stripped) ---\n{}\n\
             --- screen ---\n{}",
            tail_chars(&marked, TAIL_CHARS),
            transcript.parser.screen().contents()
        )
    }

    fn lock(&self) -> MutexGuard<'_, Transcript> {
        self.shared
            .transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Why a wait ended without a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Closed,
    TimedOut,
}

impl Stop {
    /// The end of a failure sentence.
    fn describe(self, timeout: Duration) -> String {
        match self {
            Stop::Closed => "but the terminal closed first".to_owned(),
            Stop::TimedOut => format!("but it did not come within {timeout:?}"),
        }
    }
}

/// State shared between the driver and its reader thread.
struct Shared {
    transcript: Mutex<Transcript>,
    /// Notified whenever output arrives or the terminal closes.
    changed: Condvar,
}

/// What the program wrote, in the three forms tests look at.
struct Transcript {
    raw: Vec<u8>,
    /// `raw` with escape sequences and most control characters removed, append-only.
    text: Vec<u8>,
    parser: vt100::Parser,
    /// Set once the reader reached end of file: nothing more will arrive.
    closed: bool,
}

/// Reads the master until end of file, recording output and answering terminal queries.
fn read_loop(mut reader: Box<dyn Read + Send>, shared: &Shared, writer: &SharedWriter) {
    let mut scanner = EscapeScanner::default();
    let mut buf = vec![0; READ_BUFFER_BYTES];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Linux reports a hung-up pty as EIO (portable-pty maps that to end of file);
            // anything else ends the transcript just the same.
            Err(_) => break,
        };
        let replies = ingest(shared, &mut scanner, &buf[..n]);
        for reply in replies {
            // The child may be gone already; its transcript tells the story.
            let _ = write_locked(writer, &reply);
        }
    }
    let mut transcript = shared
        .transcript
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    transcript.closed = true;
    shared.changed.notify_all();
}

/// Records `chunk` and returns the replies to the queries it completes, each computed from the
/// screen as it was right after its query.
fn ingest(shared: &Shared, scanner: &mut EscapeScanner, chunk: &[u8]) -> Vec<Vec<u8>> {
    let mut transcript = shared
        .transcript
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let transcript = &mut *transcript;
    transcript.raw.extend_from_slice(chunk);
    let queries = scan_chunk(scanner, chunk, &mut transcript.text);
    let mut replies = Vec::with_capacity(queries.len());
    let mut fed = 0;
    for (end, query) in queries {
        transcript.parser.process(&chunk[fed..end]);
        fed = end;
        replies.push(query.reply(transcript.parser.screen()));
    }
    transcript.parser.process(&chunk[fed..]);
    shared.changed.notify_all();
    replies
}

/// Writes all of `bytes` under the writer lock.
fn write_locked(writer: &SharedWriter, bytes: &[u8]) -> std::io::Result<()> {
    let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
    writer.write_all(bytes)?;
    writer.flush()
}

/// A query a program sends its terminal and expects an answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TerminalQuery {
    /// DSR 6, `ESC [ 6 n`: where is the cursor?
    CursorPosition,
    /// DA1, `ESC [ c` or `ESC [ 0 c`: what kind of terminal is this?
    PrimaryDeviceAttributes,
}

impl TerminalQuery {
    /// The query a complete CSI sequence is, if any. Others, such as kitty's `ESC [ ? u`, go
    /// unanswered as a plain terminal leaves them.
    fn from_csi(params: &[u8], final_byte: u8) -> Option<Self> {
        match (params, final_byte) {
            (b"6", b'n') => Some(Self::CursorPosition),
            (b"" | b"0", b'c') => Some(Self::PrimaryDeviceAttributes),
            _ => None,
        }
    }

    fn reply(self, screen: &vt100::Screen) -> Vec<u8> {
        match self {
            Self::CursorPosition => {
                let (row, col) = screen.cursor_position();
                format!("\x1b[{};{}R", u32::from(row) + 1, u32::from(col) + 1).into_bytes()
            }
            Self::PrimaryDeviceAttributes => PRIMARY_DEVICE_ATTRIBUTES_REPLY.to_vec(),
        }
    }
}

/// Scans one chunk of output, appending its text to `text`, and returns each query it
/// completes with the offset just past the query's last byte. The scanner carries its state
/// over, so a query split across chunks is found in the chunk that completes it.
fn scan_chunk(
    scanner: &mut EscapeScanner,
    chunk: &[u8],
    text: &mut Vec<u8>,
) -> Vec<(usize, TerminalQuery)> {
    let mut queries = Vec::new();
    for (at, &byte) in chunk.iter().enumerate() {
        match scanner.advance(byte) {
            Some(Token::Text(byte)) => text.push(byte),
            Some(Token::Csi { params, final_byte }) => {
                if let Some(query) = TerminalQuery::from_csi(params, final_byte) {
                    queries.push((at + 1, query));
                }
            }
            None => {}
        }
    }
    queries
}

/// `bytes` as text, without escape sequences (CSI, OSC, DCS and the other ESC forms), `\r` or
/// other control characters except `\n` and `\t`; invalid UTF-8 is replaced.
pub fn strip_escapes(bytes: &[u8]) -> String {
    let mut text = Vec::with_capacity(bytes.len());
    scan_chunk(&mut EscapeScanner::default(), bytes, &mut text);
    String::from_utf8_lossy(&text).into_owned()
}

/// Every SGR (colour and style) sequence in `bytes`, e.g. `"\x1b[1;31m"`, in order. Private
/// sequences ending in `m`, such as xterm's `ESC [ > 4 ; 1 m`, are not SGR and not listed.
pub fn sgr_sequences(bytes: &[u8]) -> Vec<String> {
    let mut scanner = EscapeScanner::default();
    let mut found = Vec::new();
    for &byte in bytes {
        if let Some(Token::Csi {
            params,
            final_byte: b'm',
        }) = scanner.advance(byte)
            && params
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b';' | b':'))
        {
            found.push(format!("\x1b[{}m", String::from_utf8_lossy(params)));
        }
    }
    found
}

/// What one byte of output completes.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    /// A byte of visible text (or `\n`, `\t`).
    Text(u8),
    /// A complete CSI sequence: its parameter and intermediate bytes, and its final byte.
    Csi { params: &'a [u8], final_byte: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ScanState {
    #[default]
    Ground,
    /// After `ESC`.
    Escape,
    /// After `ESC` and intermediate bytes, e.g. `ESC (` before a charset designation.
    EscapeIntermediate,
    /// After `ESC [`.
    Csi,
    /// Inside an OSC, DCS, SOS, PM or APC string, which ends with BEL or `ESC \`.
    ControlString,
    /// After an `ESC` inside a control string.
    ControlStringEscape,
}

/// A byte-at-a-time escape sequence recogniser after the VT500 parser model, reduced to what
/// the transcript needs. It works on bytes, which is safe for UTF-8 text because every escape
/// sequence byte is ASCII and every byte of a multi-byte character is not.
#[derive(Debug, Default)]
struct EscapeScanner {
    state: ScanState,
    params: Vec<u8>,
    params_overflowed: bool,
}

impl EscapeScanner {
    fn advance(&mut self, byte: u8) -> Option<Token<'_>> {
        if matches!(byte, CAN | SUB) {
            self.state = ScanState::Ground;
            return None;
        }
        match self.state {
            ScanState::Ground => match byte {
                ESC => self.state = ScanState::Escape,
                b'\n' | b'\t' => return Some(Token::Text(byte)),
                0x00..=0x1f | 0x7f => {}
                _ => return Some(Token::Text(byte)),
            },
            ScanState::Escape => match byte {
                b'[' => {
                    self.params.clear();
                    self.params_overflowed = false;
                    self.state = ScanState::Csi;
                }
                b']' | b'P' | b'X' | b'^' | b'_' => self.state = ScanState::ControlString,
                0x20..=0x2f => self.state = ScanState::EscapeIntermediate,
                0x30..=0x7e => self.state = ScanState::Ground,
                // ESC restarts the sequence; other controls are executed, not printed.
                _ => {}
            },
            ScanState::EscapeIntermediate => match byte {
                ESC => self.state = ScanState::Escape,
                0x30..=0x7e => self.state = ScanState::Ground,
                _ => {}
            },
            ScanState::Csi => match byte {
                ESC => self.state = ScanState::Escape,
                0x20..=0x3f => {
                    if self.params.len() < MAX_CSI_PARAM_BYTES {
                        self.params.push(byte);
                    } else {
                        self.params_overflowed = true;
                    }
                }
                0x40..=0x7e => {
                    self.state = ScanState::Ground;
                    if !self.params_overflowed {
                        return Some(Token::Csi {
                            params: &self.params,
                            final_byte: byte,
                        });
                    }
                }
                _ => {}
            },
            ScanState::ControlString => match byte {
                BEL => self.state = ScanState::Ground,
                ESC => self.state = ScanState::ControlStringEscape,
                _ => {}
            },
            ScanState::ControlStringEscape => {
                if byte == b'\\' {
                    self.state = ScanState::Ground;
                } else {
                    // Not a string terminator: the ESC began a new sequence.
                    self.state = ScanState::Escape;
                    return self.advance(byte);
                }
            }
        }
        None
    }
}

/// The scrollback rows and the visible screen as text, one line per row (wrapped rows joined).
fn screen_with_scrollback(parser: &mut vt100::Parser) -> String {
    let screen = parser.screen_mut();
    let (rows, cols) = screen.size();
    let (rows, cols) = (usize::from(rows.get()), cols.get());
    let mut lines: Vec<(String, bool)> = Vec::new();
    // Page through the history from the oldest row; at offset `o` the first `o` visible rows
    // are scrollback and the rest is the live screen.
    let mut offset = screen.scrollback_len();
    while offset > 0 {
        screen.set_scrollback(offset);
        let take = offset.min(rows);
        collect_rows(screen, cols, take, &mut lines);
        offset -= take;
    }
    screen.set_scrollback(0);
    collect_rows(screen, cols, rows, &mut lines);
    let mut out = String::new();
    for (line, wrapped) in lines {
        out.push_str(&line);
        if !wrapped {
            out.push('\n');
        }
    }
    out
}

fn collect_rows(screen: &vt100::Screen, cols: u16, take: usize, lines: &mut Vec<(String, bool)>) {
    for (index, line) in screen.rows(0, cols).take(take).enumerate() {
        let wrapped = u16::try_from(index).is_ok_and(|row| screen.row_wrapped(row));
        lines.push((line, wrapped));
    }
}

/// The first position of `needle` in `haystack`; an empty needle matches at once.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The last `max` characters of `text`.
fn tail_chars(text: &str, max: usize) -> &str {
    let skip = text.chars().count().saturating_sub(max);
    text.char_indices()
        .nth(skip)
        .map_or("", |(at, _)| &text[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn spawn_sized(program: &str, args: &[&str], env: &[(&str, &str)], rows: u16) -> Pty {
        Pty::spawn(
            Path::new(program),
            args,
            env,
            &std::env::temp_dir(),
            rows,
            80,
        )
        .unwrap()
    }

    fn sh(script: &str) -> Pty {
        spawn_sized("/bin/sh", &["-c", script], &[], 24)
    }

    #[test]
    fn strip_escapes_keeps_only_text() {
        let bytes = b"\x1b[1;31mred\x1b[0m plain\r\n\x1b]0;title\x07\x1b]8;;http://x\x1b\\link\
                      \x1b]8;;\x1b\\ \x1b(B\x1b7\x1b[?25l\x1b[2J\x1bPq#0\x1b\\done\x07\tend\xce\xbb";
        assert_eq!(strip_escapes(bytes), "red plain\nlink done\tend\u{3bb}");
        assert_eq!(strip_escapes(b"before\x1b[12"), "before", "unfinished");
        assert_eq!(
            strip_escapes(b"a\x1b[1\x18b"),
            "ab",
            "CAN aborts a sequence"
        );
        assert_eq!(tail_chars("h\u{e9}llo", 4), "\u{e9}llo");
        assert_eq!(tail_chars("hi", 10), "hi");
    }

    #[test]
    fn sgr_sequences_lists_only_sgr() {
        let bytes = b"\x1b[1;31mred\x1b[m \x1b[38:5:208mx\x1b[?25l\x1b[>4;1m\x1b[6n\x1b]0;m\x07";
        let expected = ["\x1b[1;31m", "\x1b[m", "\x1b[38:5:208m"];
        assert_eq!(sgr_sequences(bytes), expected);
        assert!(sgr_sequences(b"no colour\r\n\x1b[2K\x1b[1G").is_empty());
    }

    #[test]
    fn scanner_finds_queries_split_across_chunks() {
        use TerminalQuery::{CursorPosition as Dsr, PrimaryDeviceAttributes as Da1};
        let mut scanner = EscapeScanner::default();
        let mut text = Vec::new();
        assert!(scan_chunk(&mut scanner, b"ab\x1b[", &mut text).is_empty());
        // `ESC [ ? u` (kitty) and `ESC [ > c` (DA2) stay unanswered.
        let chunk = b"6ncd\x1b[c\x1b[?u\x1b[0c\x1b[>c\x1b";
        let found = scan_chunk(&mut scanner, chunk, &mut text);
        assert_eq!(found, [(2, Dsr), (7, Da1), (15, Da1)]);
        assert_eq!(scan_chunk(&mut scanner, b"[6n", &mut text), [(3, Dsr)]);
        // An ESC inside an OSC ends it, as in a terminal; the OSC's own text is no query.
        let found = scan_chunk(
            &mut scanner,
            b"\x1b]0;\x1b[6n\x07x\x1b]0;[6n\x07",
            &mut text,
        );
        assert_eq!(found, [(8, Dsr)]);
        assert_eq!(text, b"abcdx");
    }

    #[test]
    fn cursor_position_reply_is_one_based() {
        let size = NonZeroU16::new(24).unwrap();
        let mut parser = vt100::Parser::new(size, size, 0);
        parser.process(b"\r\n\r\nhello");
        let reply = TerminalQuery::CursorPosition.reply(parser.screen());
        assert_eq!(reply, b"\x1b[3;6R");
    }

    /// A raw-mode program asks for the cursor position and device attributes, and sends a
    /// kitty keyboard query first, which must stay unanswered.
    #[test]
    fn answers_cursor_position_and_device_attributes() {
        let script = r#"
import os, sys, termios, tty
fd = sys.stdin.fileno()
saved = termios.tcgetattr(fd)
tty.setraw(fd)
def ask(query, end):
    os.write(1, query)
    reply = b""
    while not reply.endswith(end):
        reply += os.read(fd, 1)
    return reply.decode().replace("\x1b", "^[")
try:
    os.write(1, b"\r\n\r\nhello")
    position = ask(b"\x1b[6n", b"R")
    attributes = ask(b"\x1b[?u\x1b[c", b"c")
finally:
    termios.tcsetattr(fd, termios.TCSADRAIN, saved)
print("\nposition:" + position + " attributes:" + attributes)
"#;
        let mut pty = spawn_sized("/usr/bin/env", &["python3", "-c", script], &[], 24);
        let expected = "position:^[[3;6R attributes:^[[?1;2c";
        pty.expect(expected, TIMEOUT).unwrap();
        assert!(pty.wait_exit(TIMEOUT).unwrap().success());
    }

    #[test]
    fn cat_echoes_lines_in_order() {
        let mut pty = spawn_sized("/bin/cat", &[], &[], 24);
        pty.send_line("hello pty").unwrap();
        // The terminal echoes the typed line, then cat prints it back.
        pty.expect("hello pty\n", TIMEOUT).unwrap();
        pty.expect("hello pty\n", TIMEOUT).unwrap();
        pty.send_paste("pasted").unwrap();
        pty.key_enter().unwrap();
        // Cooked mode echoes the paste frame's ESC as `^[`, and cat prints it back raw.
        pty.expect("^[[200~pasted^[[201~\n", TIMEOUT).unwrap();
        pty.expect_screen("pasted", TIMEOUT).unwrap();
        pty.ctrl_d().unwrap();
        let status = pty.wait_exit(TIMEOUT).unwrap();
        assert!(status.success(), "{status}");
        assert!(pty.text().starts_with("hello pty\nhello pty\n"));
        assert!(pty.raw().starts_with(b"hello pty\r\n"));
    }

    #[test]
    fn ctrl_c_interrupts_the_foreground_program() {
        // Wait for the ready line so the interrupt cannot race the child taking the terminal.
        let mut pty = sh("echo ready; exec sleep 30");
        pty.expect("ready", TIMEOUT).unwrap();
        pty.ctrl_c().unwrap();
        let status = pty.wait_exit(TIMEOUT).unwrap();
        assert!(!status.success(), "{status}");
    }

    #[test]
    fn the_child_gets_a_clean_environment() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"echo "term=$TERM foo=$FOO user=${USER-unset} path=${PATH:+set} $(pwd)""#;
        let env = [("FOO", "bar")];
        let pty = Pty::spawn(
            Path::new("/bin/sh"),
            &["-c", script],
            &env,
            dir.path(),
            24,
            200,
        );
        let dir = dir.path().canonicalize().unwrap();
        let expected = format!(
            "term=xterm-256color foo=bar user=unset path=set {}",
            dir.display()
        );
        pty.unwrap().expect(&expected, TIMEOUT).unwrap();

        let pty = spawn_sized(
            "/bin/sh",
            &["-c", "echo term=$TERM"],
            &[("TERM", "dumb")],
            24,
        );
        pty.expect("term=dumb", TIMEOUT).unwrap();
    }

    #[test]
    fn expect_moves_the_mark_and_reports_failures() {
        let pty = sh("printf 'one two one\\n'");
        pty.expect("one", TIMEOUT).unwrap();
        pty.expect("one", TIMEOUT).unwrap();
        let error = pty.expect("two", TIMEOUT).unwrap_err().to_string();
        assert!(error.contains("expected \"two\""), "{error}");
        assert!(error.contains("but the terminal closed first"), "{error}");
        assert!(
            error.contains(&format!("one two one{MARK_LABEL}\n")),
            "{error}"
        );
        assert!(error.ends_with("--- screen ---\none two one"), "{error}");

        let pty = sh("echo started; exec sleep 30");
        pty.expect("started", TIMEOUT).unwrap();
        let error = pty.expect("never", Duration::from_millis(50)).unwrap_err();
        assert!(
            error.to_string().contains("did not come within 50ms"),
            "{error}"
        );
    }

    #[test]
    fn screen_shows_what_a_user_sees() {
        let mut pty = sh("printf 'abc\\033[1;1HX\\033[31mred\\033[0m'");
        pty.expect_screen("Xred", TIMEOUT).unwrap();
        pty.wait_exit(TIMEOUT).unwrap();
        pty.expect_screen("abc", Duration::ZERO).unwrap_err();
        assert_eq!(pty.screen(), "Xred");
        assert_eq!(sgr_sequences(&pty.raw()), ["\x1b[31m", "\x1b[0m"]);
        assert_eq!(pty.text(), "abcXred");
    }

    #[test]
    fn expect_screen_searches_the_scrollback() {
        let script = "i=0; while [ $i -lt 30 ]; do echo line$i; i=$((i+1)); done";
        let mut pty = spawn_sized("/bin/sh", &["-c", script], &[], 5);
        pty.wait_exit(TIMEOUT).unwrap();
        pty.expect_screen("line29", Duration::ZERO).unwrap();
        assert!(!pty.screen().contains("line0\n"));
        pty.expect_screen("line0\nline1\n", Duration::ZERO).unwrap();
        let all = pty.screen_with_scrollback();
        let expected: String = (0..30).map(|i| format!("line{i}\n")).collect();
        assert!(all.starts_with(&expected), "{all}");
    }

    #[test]
    fn wait_exit_kills_a_program_that_hangs() {
        let mut pty = sh("echo hanging; exec sleep 30");
        pty.expect("hanging", TIMEOUT).unwrap();
        let error = pty.wait_exit(Duration::from_millis(50)).unwrap_err();
        let error = error.to_string();
        assert!(error.contains("did not exit within 50ms"), "{error}");
        assert!(error.contains("hanging"), "{error}");
        // The child is reaped: a second wait reports its status at once.
        assert!(!pty.wait_exit(Duration::ZERO).unwrap().success());
    }

    #[test]
    fn rejects_an_empty_terminal() {
        let tmp = std::env::temp_dir();
        let error = Pty::spawn(Path::new("/bin/true"), &[], &[], &tmp, 0, 80).unwrap_err();
        assert!(error.to_string().contains("0x80"), "{error}");
    }
}
