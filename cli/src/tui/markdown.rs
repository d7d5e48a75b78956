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

/// Decides what the line starting with `s` is, or `None` while the next
/// characters could still change that. `eol`: the line ends after `s`.
fn classify(s: &str, eol: bool) -> Option<Kind> {
    let rest = s.trim_start_matches([' ', '\t']);
    let ws = s.len() - rest.len();
    let indent = columns(&s[..ws]);
    let Some(first) = rest.chars().next() else {
        return eol.then_some(Kind::Blank);
    };
    match first {
        '#' => classify_heading(rest, ws, eol),
        '>' => {
            let body = rest.trim_start_matches(['>', ' ', '\t']);
            if body.is_empty() && !eol {
                return None;
            }
            let depth = rest[..rest.len() - body.len()].matches('>').count();
            Some(Kind::Quote {
                depth,
                content: s.len() - body.len(),
            })
        }
        '`' | '~' => {
            let run = rest.len() - rest.trim_start_matches(first).len();
            if run == rest.len() && !eol {
                return None;
            }
            if run < 3 {
                return Some(Kind::Paragraph);
            }
            let fence = Fence {
                marker: first,
                len: run,
                indent,
            };
            Some(Kind::Fence {
                fence,
                info: ws + run,
            })
        }
        '-' | '*' | '+' | '_' => classify_marker_line(rest, ws, indent, eol, first),
        '0'..='9' => classify_ordered(rest, ws, indent, eol),
        _ => Some(Kind::Paragraph),
    }
}

fn classify_heading(rest: &str, ws: usize, eol: bool) -> Option<Kind> {
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    if hashes > 6 {
        return Some(Kind::Paragraph);
    }
    match rest[hashes..].chars().next() {
        None if eol => Some(Kind::Heading {
            content: ws + hashes,
        }),
        None => None,
        Some(' ' | '\t') => Some(Kind::Heading {
            content: ws + hashes + 1,
        }),
        Some(_) => Some(Kind::Paragraph),
    }
}

/// `- item`, `* item`, `+ item`, or a rule (`---`, `***`, `___`, `- - -`).
fn classify_marker_line(
    rest: &str,
    ws: usize,
    indent: usize,
    eol: bool,
    marker: char,
) -> Option<Kind> {
    let body = rest.trim_start_matches([marker, ' ', '\t']);
    let bullet = (marker != '_' && rest[1..].starts_with([' ', '\t'])).then_some(Kind::Bullet {
        indent,
        content: ws + 2,
    });
    if body.is_empty() {
        if !eol {
            return None;
        }
        if marker != '+' && rest.matches(marker).count() >= 3 {
            return Some(Kind::Rule);
        }
    }
    Some(bullet.unwrap_or(Kind::Paragraph))
}

/// `1. item` or `1) item`.
fn classify_ordered(rest: &str, ws: usize, indent: usize, eol: bool) -> Option<Kind> {
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 9 {
        return Some(Kind::Paragraph);
    }
    let mut after = rest[digits..].chars();
    match (after.next(), after.next()) {
        (None, _) | (Some('.' | ')'), None) if !eol => None,
        (Some('.' | ')'), Some(' ' | '\t')) => Some(Kind::Ordered {
            indent,
            number: ws..ws + digits + 1,
            content: ws + digits + 2,
        }),
        _ => Some(Kind::Paragraph),
    }
}

/// Decides whether a line inside a code block closes it, or `None` while
/// it could still be a closing fence.
fn classify_code(s: &str, eol: bool, fence: Fence) -> Option<CodeLine> {
    let rest = s.trim_start_matches([' ', '\t']);
    let run = rest.len() - rest.trim_start_matches(fence.marker).len();
    if run == 0 {
        return (eol || !rest.is_empty()).then_some(CodeLine::Text);
    }
    if !rest[run..].trim_start_matches([' ', '\t']).is_empty() {
        return Some(CodeLine::Text);
    }
    if !eol {
        return None;
    }
    Some(if run >= fence.len {
        CodeLine::Close
    } else {
        CodeLine::Text
    })
}

#[cfg(test)]
mod tests {
    use super::super::theme::Theme;
    use super::*;

    const DOC: &str = "# Title 🚀\n\
        \n\
        Some **bold**, *italic*, `code` and [a link](https://x.io/a_(b)).\n\
        \n\
        - first\n\
        \x20 - nested _item_\n\
        * star 中文\n\
        \n\
        3. third\n\
        > quoted **bit**\n\
        \n\
        ```rust\n\
        let s = \"**not bold**\";\n\
        \x20   if a_b_c { x }\n\
        ```\n\
        ---\n\
        snake_case_words and 2 * 3 = 6 | table | cell |\n";

    const DOC_PLAIN: &str = "Title 🚀\n\
        \n\
        Some bold, italic, code and a link (https://x.io/a_(b)).\n\
        \n\
        • first\n\
        \x20 • nested item\n\
        • star 中文\n\
        \n\
        3. third\n\
        │ quoted bit\n\
        \n\
        \x20 rust\n\
        \x20 let s = \"**not bold**\";\n\
        \x20     if a_b_c { x }\n\
        ────────────────────────────────────────\n\
        snake_case_words and 2 * 3 = 6 | table | cell |\n";

    fn colored() -> Styler {
        Styler::new(Theme::Green, true)
    }

    fn render_deltas<'a>(styler: Styler, deltas: impl IntoIterator<Item = &'a str>) -> String {
        let mut md = MarkdownStream::new(styler);
        let mut out = String::new();
        for delta in deltas {
            md.push(delta, &mut out);
        }
        md.finish(&mut out);
        out
    }

    fn render(styler: Styler, text: &str) -> String {
        render_deltas(styler, [text])
    }

    fn plain(text: &str) -> String {
        render(Styler::plain(), text)
    }

    /// `text` cut on char boundaries into pieces of `sizes` bytes (at
    /// least one char each), cycling through `sizes`.
    fn split<'a>(text: &'a str, sizes: &[usize]) -> Vec<&'a str> {
        let mut pieces = Vec::new();
        let mut start = 0;
        for size in sizes.iter().cycle() {
            if start >= text.len() {
                break;
            }
            let mut end = (start + size).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            pieces.push(&text[start..end]);
            start = end;
        }
        pieces
    }

    fn chars(text: &str) -> Vec<&str> {
        split(text, &[1])
    }

    /// Every line that sets a style resets it before its newline.
    fn assert_resets_before_newlines(out: &str) {
        for line in out.split('\n') {
            if let Some(last) = line.rfind("\x1b[") {
                assert!(
                    line[last..].starts_with("\x1b[0m"),
                    "style leaks past the end of {line:?} in {out:?}"
                );
            }
        }
    }

    #[test]
    fn renders_a_document_in_plain_text() {
        assert_eq!(plain(DOC), DOC_PLAIN);
    }

    #[test]
    fn any_split_renders_identically() {
        for styler in [Styler::plain(), colored()] {
            let whole = render(styler, DOC);
            assert_eq!(render_deltas(styler, chars(DOC)), whole);
            assert_eq!(render_deltas(styler, split(DOC, &[3, 7])), whole);
            assert_eq!(render_deltas(styler, split(DOC, &[2, 5, 11, 1])), whole);
            for size in 1..40 {
                assert_eq!(render_deltas(styler, split(DOC, &[size])), whole, "{size}");
            }
        }
    }

    #[test]
    fn text_appears_as_it_arrives() {
        let mut md = MarkdownStream::new(Styler::plain());
        let mut out = String::new();
        md.push("Hello wor", &mut out);
        assert_eq!(out, "Hello wor");
        assert!(!md.at_line_start());
        md.push("ld\n", &mut out);
        assert_eq!(out, "Hello world\n");
        assert!(md.at_line_start());

        // A line start is held until its kind is known...
        md.push("-", &mut out);
        assert_eq!(out, "Hello world\n");
        assert!(md.at_line_start());
        md.push(" ", &mut out);
        assert_eq!(out, "Hello world\n");
        md.push("i", &mut out);
        assert_eq!(out, "Hello world\n• i");
        md.push("tem **", &mut out);
        // ...and a marker until the next character.
        assert_eq!(out, "Hello world\n• item ");
        md.push("b", &mut out);
        assert_eq!(out, "Hello world\n• item b");
        md.push("\n1", &mut out);
        assert_eq!(out, "Hello world\n• item b\n");
        md.push("0", &mut out);
        md.push("0 apples", &mut out);
        assert_eq!(out, "Hello world\n• item b\n100 apples");
        md.finish(&mut out);
        assert_eq!(out, "Hello world\n• item b\n100 apples\n");
        assert!(md.at_line_start());
    }

    #[test]
    fn code_lines_stream_too() {
        let mut md = MarkdownStream::new(Styler::plain());
        let mut out = String::new();
        md.push("```\nfn mai", &mut out);
        assert_eq!(out, "  fn mai");
        md.push("n() {}\n``", &mut out);
        assert_eq!(out, "  fn main() {}\n");
        md.push("`\nafter\n", &mut out);
        assert_eq!(out, "  fn main() {}\nafter\n");
    }

    #[test]
    fn headings_lists_and_quotes() {
        assert_eq!(plain("## Sub *it*\n###### six\n"), "Sub it\nsix\n");
        assert_eq!(
            plain("####### seven\n#hashtag\n"),
            "####### seven\n#hashtag\n"
        );
        assert_eq!(
            plain("-  spaced\n+ plus\n-x\n--\n"),
            "• spaced\n• plus\n-x\n--\n"
        );
        assert_eq!(plain("    - deep\n\t- tab\n"), "    • deep\n    • tab\n");
        assert_eq!(
            plain("1) one\n12. twelve\n1.5 kg\n2024 was\n1.\n"),
            "1) one\n12. twelve\n1.5 kg\n2024 was\n1.\n"
        );
        assert_eq!(plain("> a\n>> b\n> > c\n>\n"), "│ a\n│ │ b\n│ │ c\n│ \n");
        assert_eq!(plain("- [ ] task\n"), "• [ ] task\n");
    }

    #[test]
    fn rules_and_emphasis_lines_are_told_apart() {
        let rule = "─".repeat(RULE_WIDTH);
        assert_eq!(
            plain("---\n***\n___\n- - -\n"),
            format!("{rule}\n{rule}\n{rule}\n{rule}\n")
        );
        assert_eq!(plain("***both***\n**b** x\n* * x\n"), "both\nb x\n• * x\n");
        assert_eq!(plain("+++\n"), "+++\n");
        assert_eq!(plain("--"), "--\n");
    }

    #[test]
    fn emphasis_needs_sensible_markers() {
        assert_eq!(
            plain("snake_case_word and __init__.py\n"),
            "snake_case_word and init.py\n"
        );
        assert_eq!(plain("2 * 3 * 4 and 2*3*4\n"), "2 * 3 * 4 and 2*3*4\n");
        assert_eq!(plain("a * b*\n"), "a * b*\n");
        assert_eq!(
            plain("**Note:** x\n_it_ and *it*.\n"),
            "Note: x\nit and it.\n"
        );
        assert_eq!(plain(r"\*not\* \_it\_ \\ \q"), "*not* _it_ \\ \\q\n");
        assert_eq!(plain("**** and *****\n"), "**** and *****\n");
        assert_eq!(plain("trailing *\n"), "trailing *\n");
        assert_eq!(plain("back\\"), "back\\\n");
    }

    #[test]
    fn inline_code_is_verbatim() {
        assert_eq!(
            plain("`a*b*_c_ [x](y)` and ``a ` b``\n"),
            "a*b*_c_ [x](y) and a ` b\n"
        );
        assert_eq!(plain("end `\n"), "end `\n");
        let out = render(colored(), "x `co*de` y\n");
        assert_eq!(out, "x \x1b[0;33mco*de\x1b[0m y\n");
    }

    #[test]
    fn code_blocks_skip_inline_markdown_and_strip_fence_indent() {
        assert_eq!(plain("~~~\n**x** `y`\n```\n~~~\n"), "  **x** `y`\n  ```\n");
        assert_eq!(
            plain("- item\n  ```sh\n  ls -l\n    cd\n  ```\ndone\n"),
            "• item\n  sh\n  ls -l\n    cd\ndone\n"
        );
        // Longer closing fences close, shorter ones and fences with text do not.
        assert_eq!(
            plain("````\n```\n``` x\n`````\nout\n"),
            "  ```\n  ``` x\nout\n"
        );
        // An unclosed block ends with the message.
        assert_eq!(plain("```python\nprint(1)"), "  python\n  print(1)\n");
        // Blank code lines carry no indentation.
        assert_eq!(plain("```\na\n\nb\n```\n"), "  a\n\n  b\n");
    }

    #[test]
    fn links_show_their_url_once_closed() {
        assert_eq!(
            plain("see [docs](https://d.rs) now\n"),
            "see docs (https://d.rs) now\n"
        );
        assert_eq!(plain("[https://a.b](https://a.b)\n"), "https://a.b\n");
        assert_eq!(plain("[**b** `c`](u)\n"), "b c (u)\n");
        assert_eq!(plain("[text]() [](u)\n"), "text (u)\n");
        // Not links: written as typed.
        assert_eq!(plain("[a] b [c]d [e [f](g)\n"), "[a] b [c]d [e f (g)\n");
        assert_eq!(plain("[a](b\nc\n"), "[a](b\nc\n");
        assert_eq!(plain("[*a*](b c"), "[a](b c\n");
        let out = render(colored(), "[t](u)\n");
        assert_eq!(out, "\x1b[0;4mt\x1b[0;2m (u)\x1b[0m\n");
    }

    #[test]
    fn link_hold_back_is_bounded() {
        let long = "x".repeat(LINK_HOLD_CAP * 2);
        let mut md = MarkdownStream::new(Styler::plain());
        let mut out = String::new();
        md.push("[", &mut out);
        md.push(&long, &mut out);
        assert!(
            out.len() >= LINK_HOLD_CAP,
            "held {} bytes",
            long.len() + 1 - out.len()
        );
        assert!(md.link_buf.len() <= LINK_HOLD_CAP);
        md.push("](u)", &mut out);
        md.finish(&mut out);
        assert_eq!(out, format!("[{long}](u)\n"));
    }

    #[test]
    fn coloured_output_styles_and_resets() {
        let out = render(colored(), DOC);
        assert_resets_before_newlines(&out);
        assert!(out.starts_with("\x1b[0;1;92mTitle 🚀\x1b[0m\n"), "{out:?}");
        assert!(out.contains("Some \x1b[0;1mbold\x1b[0m, \x1b[0;3mitalic\x1b[0m, \x1b[0;33mcode\x1b[0m and \x1b[0;4ma link\x1b[0;2m (https://x.io/a_(b))\x1b[0m.\n"), "{out:?}");
        assert!(out.contains("\x1b[0;92m•\x1b[0m first\n"), "{out:?}");
        assert!(out.contains("\x1b[0;92m3.\x1b[0m third\n"), "{out:?}");
        assert!(
            out.contains("\x1b[0;2m│ quoted \x1b[0;2;1mbit\x1b[0m\n"),
            "{out:?}"
        );
        assert!(
            out.contains("  \x1b[0;2mrust\x1b[0m\n  \x1b[0;33mlet s = \"**not bold**\";\x1b[0m\n"),
            "{out:?}"
        );
        assert!(
            out.contains(&format!("\x1b[0;2m{}\x1b[0m\n", "─".repeat(RULE_WIDTH))),
            "{out:?}"
        );
    }

    #[test]
    fn unclosed_styles_close_at_end_of_line() {
        let out = render(colored(), "**bold _both\nnext `code\n# *head\nlast **");
        assert_resets_before_newlines(&out);
        assert_eq!(
            out,
            "\x1b[0;1mbold \x1b[0;1;3mboth\x1b[0m\n\
             next \x1b[0;33mcode\x1b[0m\n\
             \x1b[0;1;92;3mhead\x1b[0m\n\
             last **\n"
        );
        assert_eq!(plain("**bold _both\nnext"), "bold both\nnext\n");
    }

    #[test]
    fn finish_writes_held_text_and_one_final_newline() {
        assert_eq!(plain(""), "");
        assert_eq!(plain("done\n"), "done\n");
        assert_eq!(plain("done"), "done\n");
        assert_eq!(plain("- "), "• \n");
        assert_eq!(plain("a\n   "), "a\n");
        assert_eq!(plain("a\n```"), "a\n");
        assert_eq!(plain("[x"), "[x\n");
        let out = render(colored(), "*it");
        assert_eq!(out, "\x1b[0;3mit\x1b[0m\n");

        // The stream is reusable after finish.
        let mut md = MarkdownStream::new(Styler::plain());
        let mut out = String::new();
        md.push("```\ncode", &mut out);
        md.finish(&mut out);
        md.push("# again", &mut out);
        md.finish(&mut out);
        assert_eq!(out, "  code\nagain\n");
    }

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(
            plain("a\x1b[2Jb\r\nc\u{9b}d\x07\n"),
            "a\u{fffd}[2Jb\nc\u{fffd}d\u{fffd}\n"
        );
        assert_eq!(
            plain("```\n\x1b]0;t\x07\n```\n"),
            "  \u{fffd}]0;t\u{fffd}\n"
        );
    }

    #[test]
    fn multibyte_text_in_every_construct() {
        let doc = "# 見出し 🎉\n**太字** _斜体_ `コード` [リンク](https://例え.jp)\n- 🍣 寿司\n> 引用 ✨\n```\n中文 😀\n```\n";
        assert_eq!(
            plain(doc),
            "見出し 🎉\n太字 斜体 コード リンク (https://例え.jp)\n• 🍣 寿司\n│ 引用 ✨\n  中文 😀\n"
        );
        for styler in [Styler::plain(), colored()] {
            let whole = render(styler, doc);
            assert_eq!(render_deltas(styler, chars(doc)), whole);
            assert_eq!(render_deltas(styler, split(doc, &[3, 7])), whole);
        }
    }

    #[test]
    fn a_megabyte_line_streams_without_holding_it() {
        let chunk = "word ".repeat(200);
        let mut md = MarkdownStream::new(Styler::plain());
        let mut out = String::new();
        for _ in 0..1000 {
            let before = out.len();
            md.push(&chunk, &mut out);
            assert!(out.len() >= before + chunk.len() - 8, "text held back");
        }
        assert!(md.hold.capacity() <= LINE_HOLD_CAP * 2);
        md.finish(&mut out);
        assert_eq!(out.len(), chunk.len() * 1000 + 1);
    }

    #[test]
    fn hostile_input_is_bounded_and_not_lost() {
        let mb = 1 << 20;
        // Runs too long to be markdown come out exactly as typed.
        for text in [
            "`".repeat(mb),
            "*".repeat(mb),
            "_".repeat(mb),
            "-".repeat(mb),
            ">".repeat(mb),
            "[".repeat(mb),
            "#".repeat(mb),
            "1".repeat(mb),
            " ".repeat(mb) + "x",
            "[a](".repeat(mb / 4),
        ] {
            let mut md = MarkdownStream::new(Styler::plain());
            let mut out = String::new();
            let mut pushed = 0;
            for piece in split(&text, &[4093]) {
                md.push(piece, &mut out);
                pushed += piece.len();
                assert!(md.hold.capacity() <= LINE_HOLD_CAP * 2);
                assert!(md.link_buf.capacity() <= LINK_HOLD_CAP * 2);
                let held = pushed.saturating_sub(out.len());
                assert!(held <= LINK_HOLD_CAP + 4, "{:?} held {held}", &text[..8]);
            }
            md.finish(&mut out);
            assert!(out == text.clone() + "\n", "{:?}", &text[..8]);
        }
        // Alternating ticks are code spans: the ticks go, the text stays.
        let out = plain(&"` ".repeat(mb / 2));
        assert_eq!(out.matches(' ').count(), mb / 2);
        let out = plain(&"x`".repeat(mb / 2));
        assert_eq!(out.matches('x').count(), mb / 2);
    }

    /// The text of coloured output without its escape sequences.
    fn strip_sgr(out: &str) -> String {
        let mut text = String::new();
        let mut rest = out;
        while let Some(start) = rest.find("\x1b[") {
            text.push_str(&rest[..start]);
            let end = rest[start..]
                .find('m')
                .map_or(rest.len(), |m| start + m + 1);
            rest = &rest[end..];
        }
        text.push_str(rest);
        text
    }

    #[test]
    fn unbalanced_markers_keep_all_words() {
        let text = "a **b _c `d [e *f ~g ``h ___i ** j* k_ l` m] n) o\n**\n__\n`\n";
        let plain_out = plain(text);
        assert_eq!(
            plain_out,
            "a b c d [e *f ~g ``h ___i ** j* k_ l m] n) o\n**\n__\n`\n"
        );
        let out = render(colored(), text);
        assert_eq!(strip_sgr(&out), plain_out);
        assert_resets_before_newlines(&out);
        for styler in [Styler::plain(), colored()] {
            let whole = render(styler, text);
            assert_eq!(render_deltas(styler, chars(text)), whole);
            assert_eq!(render_deltas(styler, split(text, &[3, 7])), whole);
        }
    }

    #[test]
    fn classify_decides_only_when_it_can() {
        assert_eq!(classify("#", false), None);
        assert_eq!(classify("##", true), Some(Kind::Heading { content: 2 }));
        assert_eq!(classify("- ", false), None);
        assert_eq!(
            classify("- x", false),
            Some(Kind::Bullet {
                indent: 0,
                content: 2
            })
        );
        assert_eq!(classify("12", false), None);
        assert_eq!(classify("12.", false), None);
        assert_eq!(
            classify("12. ", false),
            Some(Kind::Ordered {
                indent: 0,
                number: 0..3,
                content: 4
            })
        );
        assert_eq!(classify("``", false), None);
        assert_eq!(classify("``x", false), Some(Kind::Paragraph));
        assert_eq!(classify("   ", false), None);
        assert_eq!(classify("   ", true), Some(Kind::Blank));
        assert_eq!(classify("hello", false), Some(Kind::Paragraph));
        let fence = Fence {
            marker: '`',
            len: 3,
            indent: 0,
        };
        assert_eq!(classify_code("  ``", false, fence), None);
        assert_eq!(classify_code("```  ", true, fence), Some(CodeLine::Close));
        assert_eq!(classify_code("``", true, fence), Some(CodeLine::Text));
        assert_eq!(classify_code("x", false, fence), Some(CodeLine::Text));
    }
}
