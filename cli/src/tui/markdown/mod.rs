//! Streaming markdown-to-terminal rendering for the model's answer.
//!
//! The answer arrives as text deltas of any size, split anywhere. Text is
//! written as soon as its formatting is known, so the user watches it
//! stream: only the start of a line is held back until its kind is known
//! (`#`, `- `, `1. `, `> `, a fence, indentation), a run of `*`, `_` or
//! `` ` `` until the next character, and a `[text](url)` until its `)`
//! (at most [`LINK_HOLD_CAP`] bytes). Every decision depends only on the
//! characters seen, never on where a delta ended, so any split of the same
//! answer renders identically.
//!
//! Emphasis is decided optimistically: an opener styles what follows and a
//! style still open at the end of the line is closed there. Code blocks are
//! shown verbatim (indented, in the code style); tables and anything not
//! listed pass through as text. Control characters in the answer are
//! replaced, so a model cannot drive the terminal.

use std::mem;
use std::ops::Range;

use super::theme::{Role, Styler};
use classify::{classify, classify_code};

mod classify;

/// Bytes of a line start held back while its kind is unknown; after that
/// the line is treated as a paragraph.
pub(super) const LINE_HOLD_CAP: usize = 256;
/// Bytes of a `[text](url)` held back; a longer one is written as typed.
pub(super) const LINK_HOLD_CAP: usize = 2048;
/// Width of a horizontal rule.
pub(super) const RULE_WIDTH: usize = 40;
/// Bytes of a code fence's info string kept for its label.
const LANG_CAP: usize = 64;
/// Longest backtick run that opens or closes inline code.
const MAX_TICKS: usize = 16;
/// Longest `*`/`_` run that is a marker (`***` is bold and italic).
const MAX_EMPHASIS: usize = 3;

// Style flags; `apply` turns them into roles.
const HEADING: u8 = 1;
const DIM: u8 = 1 << 1;
const CODE: u8 = 1 << 2;
const BOLD: u8 = 1 << 3;
const ITALIC: u8 = 1 << 4;
const LINK: u8 = 1 << 5;
const FLAG_ROLES: [(u8, Role); 6] = [
    (HEADING, Role::Heading),
    (DIM, Role::Dim),
    (CODE, Role::Code),
    (BOLD, Role::Bold),
    (ITALIC, Role::Italic),
    (LINK, Role::Link),
];

/// Where in a line the renderer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Collecting the start of a line in `hold`.
    Start,
    /// Inside a line with inline markdown.
    Text,
    /// Inside a line of a code block.
    Code,
    /// After an opening fence, reading its info string.
    FenceInfo,
}

/// An open fenced code block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fence {
    marker: char,
    len: usize,
    /// Columns of indentation stripped from its lines.
    indent: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    None,
    /// After `[`.
    Text,
    /// After `[text]`, waiting for `(`.
    AfterText,
    /// After `[text](`, with the depth of nested parentheses.
    Url(usize),
}

/// What a line is, decided from its start. Offsets are bytes into the
/// held line start.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Blank,
    Paragraph,
    Heading {
        content: usize,
    },
    Bullet {
        indent: usize,
        content: usize,
    },
    Ordered {
        indent: usize,
        number: Range<usize>,
        content: usize,
    },
    Quote {
        depth: usize,
        content: usize,
    },
    Rule,
    Fence {
        fence: Fence,
        info: usize,
    },
}

/// What a line inside a code block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeLine {
    Close,
    Text,
}

/// Renders one streamed markdown message.
pub(super) struct MarkdownStream {
    styler: Styler,
    line: Line,
    fence: Option<Fence>,
    /// The start of the current line while its kind is unknown.
    hold: String,
    /// The info string of an opening fence.
    lang: String,
    /// Style of the whole line (heading, quote, code block).
    base: u8,
    /// Open emphasis and the marker character that opened it.
    bold: Option<char>,
    italic: Option<char>,
    /// Length of the backtick run that opened inline code (0: none).
    code: usize,
    /// Writing a link's text / its url.
    link: bool,
    url: bool,
    /// The previous character of the line's content.
    prev: char,
    /// A pending run of `*`, `_` or `` ` `` (`run_len` 0: none).
    run_char: char,
    run_len: usize,
    escape: bool,
    /// Drop whitespace until the content of a heading, item or quote.
    skip_ws: bool,
    link_state: LinkState,
    /// The held `text](url` of a link, without its `[`.
    link_buf: String,
    link_text_end: usize,
    /// Re-reading held text: `[` is literal.
    replaying: bool,
    code_started: bool,
    /// Style flags in effect on the terminal.
    active: u8,
    at_line_start: bool,
}

impl MarkdownStream {
    pub(super) fn new(styler: Styler) -> Self {
        Self {
            styler,
            line: Line::Start,
            fence: None,
            hold: String::new(),
            lang: String::new(),
            base: 0,
            bold: None,
            italic: None,
            code: 0,
            link: false,
            url: false,
            prev: ' ',
            run_char: ' ',
            run_len: 0,
            escape: false,
            skip_ws: false,
            link_state: LinkState::None,
            link_buf: String::new(),
            link_text_end: 0,
            replaying: false,
            code_started: false,
            active: 0,
            at_line_start: true,
        }
    }

    /// Renders what can be rendered of `delta`, appending terminal text to
    /// `out`; the rest is held until later deltas decide it.
    pub(super) fn push(&mut self, delta: &str, out: &mut String) {
        for c in delta.chars() {
            match c {
                '\r' => {}
                '\n' | '\t' => self.feed(c, out),
                c if c.is_control() => self.feed('\u{fffd}', out),
                c => self.feed(c, out),
            }
        }
    }

    /// Ends the message: writes anything held back, closes styles, and
    /// ends with a newline if text was written and did not end with one.
    /// The stream is then ready for a new message.
    pub(super) fn finish(&mut self, out: &mut String) {
        match self.line {
            Line::Start => {
                if !self.hold.trim_start_matches([' ', '\t']).is_empty() {
                    self.start_char('\n', out);
                }
            }
            Line::Text => self.flush_inline(out),
            Line::Code => {}
            Line::FenceInfo => self.fence_info_char('\n', out),
        }
        if !self.at_line_start {
            self.end_line(out);
        }
        self.reset();
    }

    /// True when the output so far ends at the start of a line.
    pub(super) fn at_line_start(&self) -> bool {
        self.at_line_start
    }

    fn reset(&mut self) {
        let mut hold = mem::take(&mut self.hold);
        let mut lang = mem::take(&mut self.lang);
        let mut link_buf = mem::take(&mut self.link_buf);
        hold.clear();
        lang.clear();
        link_buf.clear();
        *self = Self {
            hold,
            lang,
            link_buf,
            ..Self::new(self.styler)
        };
    }

    fn feed(&mut self, c: char, out: &mut String) {
        match self.line {
            Line::Start => self.start_char(c, out),
            Line::Text => self.inline(c, out),
            Line::Code => self.code_char(c, out),
            Line::FenceInfo => self.fence_info_char(c, out),
        }
    }

    // --- Output ------------------------------------------------------

    fn want(&self) -> u8 {
        if self.url {
            return DIM;
        }
        let mut flags = self.base;
        if self.bold.is_some() {
            flags |= BOLD;
        }
        if self.italic.is_some() {
            flags |= ITALIC;
        }
        if self.code > 0 {
            flags |= CODE;
        }
        if self.link {
            flags |= LINK;
        }
        flags
    }

    fn apply(&mut self, flags: u8, out: &mut String) {
        let mut roles = [Role::Dim; FLAG_ROLES.len()];
        let mut n = 0;
        for (flag, role) in FLAG_ROLES {
            if flags & flag != 0 {
                roles[n] = role;
                n += 1;
            }
        }
        self.styler.set(&roles[..n], out);
        self.active = flags;
    }

    /// Writes one character in the current style.
    fn emit(&mut self, c: char, out: &mut String) {
        let want = self.want();
        if want != self.active {
            self.apply(want, out);
        }
        out.push(c);
        self.at_line_start = false;
    }

    /// Writes a character of the line's content.
    fn content(&mut self, c: char, out: &mut String) {
        self.emit(c, out);
        self.prev = c;
    }

    /// Writes a bullet, number, gutter or label.
    fn decorate(&mut self, role: Role, text: &str, out: &mut String) {
        self.styler.paint(role, text, out);
        self.active = 0;
        self.at_line_start = false;
    }

    fn spaces(&mut self, n: usize, out: &mut String) {
        if n > 0 {
            out.extend(std::iter::repeat_n(' ', n));
            self.at_line_start = false;
        }
    }

    /// Resets the style (so nothing leaks into the next line), writes the
    /// newline and starts a new line.
    fn end_line(&mut self, out: &mut String) {
        if self.active != 0 {
            self.apply(0, out);
        }
        out.push('\n');
        self.at_line_start = true;
        self.line = Line::Start;
        self.base = 0;
        self.bold = None;
        self.italic = None;
        self.code = 0;
        self.link = false;
        self.url = false;
        self.prev = ' ';
        self.skip_ws = false;
        self.code_started = false;
    }

    // --- Line starts -------------------------------------------------

    fn start_char(&mut self, c: char, out: &mut String) {
        let eol = c == '\n';
        if !eol {
            self.hold.push(c);
        }
        let forced = self.hold.len() >= LINE_HOLD_CAP;
        if let Some(fence) = self.fence {
            let decided =
                classify_code(&self.hold, eol, fence).or_else(|| forced.then_some(CodeLine::Text));
            match decided {
                None => {}
                Some(CodeLine::Close) => {
                    self.fence = None;
                    self.hold.clear();
                }
                Some(CodeLine::Text) => self.begin_code_line(fence, eol, out),
            }
        } else {
            let decided = classify(&self.hold, eol).or_else(|| forced.then_some(Kind::Paragraph));
            if let Some(kind) = decided {
                self.begin_line(kind, eol, out);
            }
        }
    }

    fn begin_line(&mut self, kind: Kind, eol: bool, out: &mut String) {
        let hold = mem::take(&mut self.hold);
        let content = match kind {
            Kind::Blank | Kind::Rule => {
                if kind == Kind::Rule {
                    self.apply(DIM, out);
                    out.extend(std::iter::repeat_n('─', RULE_WIDTH));
                    self.at_line_start = false;
                }
                self.end_line(out);
                None
            }
            Kind::Fence { fence, info } => {
                self.open_fence(fence, &hold[info.min(hold.len())..], eol, out);
                None
            }
            Kind::Paragraph => Some(0),
            Kind::Heading { content } => {
                self.base = HEADING;
                Some(content)
            }
            Kind::Bullet { indent, content } => {
                self.spaces(indent, out);
                self.decorate(Role::Accent, "•", out);
                out.push(' ');
                Some(content)
            }
            Kind::Ordered {
                indent,
                number,
                content,
            } => {
                self.spaces(indent, out);
                self.decorate(Role::Accent, &hold[number], out);
                out.push(' ');
                Some(content)
            }
            Kind::Quote { depth, content } => {
                // The gutter and the quoted text share one dim span.
                self.apply(DIM, out);
                for _ in 0..depth {
                    out.push_str("│ ");
                }
                self.at_line_start = false;
                self.base = DIM;
                Some(content)
            }
        };
        if let Some(content) = content {
            self.skip_ws = content > 0;
            self.line = Line::Text;
            for c in hold[content.min(hold.len())..].chars() {
                self.inline(c, out);
            }
            if eol {
                self.inline('\n', out);
            }
        }
        self.hold = hold;
        self.hold.clear();
    }

    fn open_fence(&mut self, fence: Fence, info: &str, eol: bool, out: &mut String) {
        self.fence = Some(fence);
        self.lang.clear();
        self.line = Line::FenceInfo;
        for c in info.chars() {
            self.fence_info_char(c, out);
        }
        if eol {
            self.fence_info_char('\n', out);
        }
    }

    /// Collects the info string; at its end writes the language as a label.
    fn fence_info_char(&mut self, c: char, out: &mut String) {
        if c != '\n' {
            if self.lang.len() < LANG_CAP {
                self.lang.push(c);
            }
            return;
        }
        if let Some(label) = self.lang.split_whitespace().next() {
            out.push_str("  ");
            self.styler.paint(Role::Dim, label, out);
            self.active = 0;
            self.at_line_start = false;
            self.end_line(out);
        }
        self.lang.clear();
        self.line = Line::Start;
    }

    // --- Code blocks -------------------------------------------------

    fn begin_code_line(&mut self, fence: Fence, eol: bool, out: &mut String) {
        self.line = Line::Code;
        self.base = CODE;
        let hold = mem::take(&mut self.hold);
        let mut column = 0;
        let mut rest = hold.as_str();
        while column < fence.indent {
            match rest.chars().next() {
                Some(' ') => column += 1,
                Some('\t') => column += 4,
                _ => break,
            }
            rest = &rest[1..];
        }
        for c in rest.chars() {
            self.code_char(c, out);
        }
        self.hold = hold;
        self.hold.clear();
        if eol {
            self.code_char('\n', out);
        }
    }

    fn code_char(&mut self, c: char, out: &mut String) {
        if c == '\n' {
            self.end_line(out);
            return;
        }
        if !self.code_started {
            self.code_started = true;
            self.spaces(2, out);
        }
        self.emit(c, out);
    }

    // --- Inline markdown ---------------------------------------------

    fn inline(&mut self, c: char, out: &mut String) {
        if c == '\n' {
            self.flush_inline(out);
            self.end_line(out);
            return;
        }
        if self.skip_ws {
            if c == ' ' || c == '\t' {
                return;
            }
            self.skip_ws = false;
        }
        if self.link_state != LinkState::None {
            self.link_char(c, out);
            return;
        }
        if self.run_len > 0 {
            if c == self.run_char {
                self.extend_run(out);
                return;
            }
            self.resolve_run(c, out);
        }
        if self.code > 0 {
            if c == '`' {
                self.start_run(c);
            } else {
                self.content(c, out);
            }
            return;
        }
        if self.escape {
            self.escape = false;
            if c.is_ascii_punctuation() {
                self.content(c, out);
                return;
            }
            self.content('\\', out);
        }
        match c {
            '\\' => self.escape = true,
            '*' | '_' | '`' => self.start_run(c),
            '[' if !self.replaying => {
                self.link_state = LinkState::Text;
                self.link_buf.clear();
            }
            c => self.content(c, out),
        }
    }

    /// Writes whatever the end of the line decides: a pending link as
    /// typed, a pending marker run, a pending backslash.
    fn flush_inline(&mut self, out: &mut String) {
        if self.link_state != LinkState::None {
            self.give_up_link(out);
        }
        if self.run_len > 0 {
            self.resolve_run('\n', out);
        }
        if self.escape {
            self.escape = false;
            self.content('\\', out);
        }
    }

    fn start_run(&mut self, c: char) {
        self.run_char = c;
        self.run_len = 1;
    }

    /// A run too long to be a marker is written as it arrives.
    fn extend_run(&mut self, out: &mut String) {
        self.run_len += 1;
        let max = run_max(self.run_char);
        let c = self.run_char;
        if self.run_len == max + 1 {
            for _ in 0..self.run_len {
                self.content(c, out);
            }
        } else if self.run_len > max + 1 {
            self.content(c, out);
        }
    }

    /// Decides a marker run now that `next` follows it.
    fn resolve_run(&mut self, next: char, out: &mut String) {
        let (r, n) = (self.run_char, self.run_len);
        self.run_len = 0;
        if n > run_max(r) {
            return;
        }
        if r == '`' {
            if self.code == n {
                self.code = 0;
            } else if self.code == 0 && next != '\n' {
                self.code = n;
            } else {
                // Backticks inside code, or nothing left to be code.
                for _ in 0..n {
                    self.content(r, out);
                }
                return;
            }
            self.prev = r;
            return;
        }
        // `_` never opens or closes inside a word (snake_case), `*` never
        // opens after one (2*3); an opener needs a non-space after it.
        let can_open = !next.is_whitespace() && !self.prev.is_alphanumeric();
        let can_close = !self.prev.is_whitespace() && (r == '*' || !next.is_alphanumeric());
        let mut literal = 0;
        if n >= 2 {
            literal += toggle(&mut self.bold, r, can_open, can_close) * 2;
        }
        if n != 2 {
            literal += toggle(&mut self.italic, r, can_open, can_close);
        }
        for _ in 0..literal {
            self.content(r, out);
        }
        self.prev = r;
    }

    // --- Links -------------------------------------------------------

    fn link_char(&mut self, c: char, out: &mut String) {
        match self.link_state {
            LinkState::None => self.content(c, out),
            LinkState::Text => match c {
                ']' => {
                    self.link_text_end = self.link_buf.len();
                    self.link_buf.push(']');
                    self.link_state = LinkState::AfterText;
                }
                '[' => {
                    self.give_up_link(out);
                    self.link_state = LinkState::Text;
                }
                c => self.link_buf.push(c),
            },
            LinkState::AfterText => {
                if c == '(' {
                    self.link_buf.push('(');
                    self.link_state = LinkState::Url(0);
                } else {
                    self.give_up_link(out);
                    self.inline(c, out);
                }
            }
            LinkState::Url(depth) => match c {
                ')' if depth == 0 => self.finish_link(out),
                c => {
                    self.link_buf.push(c);
                    self.link_state = match c {
                        '(' => LinkState::Url(depth + 1),
                        ')' => LinkState::Url(depth - 1),
                        _ => LinkState::Url(depth),
                    };
                }
            },
        }
        if self.link_state != LinkState::None && self.link_buf.len() > LINK_HOLD_CAP {
            self.give_up_link(out);
        }
    }

    /// Not a link after all: writes the held text as typed.
    fn give_up_link(&mut self, out: &mut String) {
        self.link_state = LinkState::None;
        let buf = mem::take(&mut self.link_buf);
        self.replaying = true;
        self.inline('[', out);
        for c in buf.chars() {
            self.inline(c, out);
        }
        self.replaying = false;
        self.link_buf = buf;
        self.link_buf.clear();
    }

    /// Writes `[text](url)` as the text underlined and the url dimmed.
    fn finish_link(&mut self, out: &mut String) {
        self.link_state = LinkState::None;
        let buf = mem::take(&mut self.link_buf);
        let end = self.link_text_end.min(buf.len());
        let text = &buf[..end];
        let url = buf.get(end + 2..).unwrap_or("");
        self.replaying = true;
        self.link = true;
        for c in text.chars() {
            self.inline(c, out);
        }
        if self.run_len > 0 {
            self.resolve_run(' ', out);
        }
        if self.escape {
            self.escape = false;
            self.content('\\', out);
        }
        self.link = false;
        self.replaying = false;
        if !url.is_empty() && url != text {
            self.url = true;
            if !text.is_empty() {
                self.emit(' ', out);
            }
            self.emit('(', out);
            for c in url.chars() {
                self.emit(c, out);
            }
            self.emit(')', out);
            self.url = false;
        }
        self.prev = ')';
        self.link_buf = buf;
        self.link_buf.clear();
    }
}

fn run_max(c: char) -> usize {
    if c == '`' { MAX_TICKS } else { MAX_EMPHASIS }
}

/// Opens or closes one emphasis; 1 when the marker is literal instead.
fn toggle(slot: &mut Option<char>, marker: char, can_open: bool, can_close: bool) -> usize {
    match *slot {
        Some(open) if open == marker && can_close => {
            *slot = None;
            0
        }
        None if can_open => {
            *slot = Some(marker);
            0
        }
        _ => 1,
    }
}

/// Columns of leading whitespace (a tab counts four).
fn columns(ws: &str) -> usize {
    ws.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

#[cfg(test)]
mod tests;
