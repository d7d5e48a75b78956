//! Renders a file edit for the terminal: a header with the path and how
//! many lines were added and removed, then unified hunks with three lines
//! of context, a dim new-file line-number gutter, and a cap on the number
//! of lines so one large edit cannot flood the scrollback.
//!
//! The output is appended to a `String` and every styled span is reset
//! before its newline, so a colour never leaks into the next line.

use std::fmt::Write as _;
use std::time::Duration;

use similar::{Algorithm, ChangeTag, DiffTag, TextDiff};

use super::theme::{Role, Styler};

/// Unchanged lines shown around each change.
pub(super) const CONTEXT_LINES: usize = 3;
/// Characters of one line shown before it is cut with `…`.
pub(super) const MAX_LINE_CHARS: usize = 400;
/// A diff of two huge, very different files can take long; after this the
/// differ settles for a correct but less minimal answer, so the UI never
/// stalls on a diff.
const DIFF_TIMEOUT: Duration = Duration::from_millis(250);

/// One line under the header.
enum Row<'a> {
    /// The gap between two hunks.
    Gap,
    Line {
        tag: ChangeTag,
        /// 1-based line number in the new file (none for removed lines).
        number: Option<usize>,
        /// The raw line, newline included.
        text: &'a str,
    },
}

/// Appends the rendering of an edit of `path` from `old` (`None`: the file
/// is new) to `new`: a header line, then at most `max_lines` lines of diff,
/// the last of which says how many lines were left out when there are more.
pub(super) fn render(
    path: &str,
    old: Option<&str>,
    new: &str,
    max_lines: usize,
    styler: Styler,
    out: &mut String,
) {
    out.push_str("  ");
    styler.set(&[Role::Bold], out);
    push_sanitized(path, usize::MAX, out);
    styler.set(&[], out);
    out.push(' ');

    if is_binary(new) || old.is_some_and(is_binary) {
        styler.paint(Role::Dim, "(binary file, not shown)", out);
        out.push('\n');
        return;
    }
    match old {
        None => render_new_file(new, max_lines, styler, out),
        Some(old) if old == new => {
            styler.paint(Role::Dim, "(no changes)", out);
            out.push('\n');
        }
        Some(old) => render_edit(old, new, max_lines, styler, out),
    }
}

fn render_new_file(new: &str, max_lines: usize, styler: Styler, out: &mut String) {
    let count = new.split_inclusive('\n').count();
    let summary = match count {
        0 => "(new file, empty)".to_owned(),
        1 => "(new file, 1 line)".to_owned(),
        n => format!("(new file, {n} lines)"),
    };
    styler.paint(Role::Dim, &summary, out);
    out.push('\n');
    let rows = new
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, text)| Row::Line {
            tag: ChangeTag::Insert,
            number: Some(i + 1),
            text,
        });
    let mut body = Body::new(styler, digits(count), false);
    body.render(rows, count, max_lines, out);
}

fn render_edit(old: &str, new: &str, max_lines: usize, styler: Styler, out: &mut String) {
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Patience)
        .timeout(DIFF_TIMEOUT)
        .diff_lines(old, new);

    let (mut added, mut removed) = (0, 0);
    for op in diff.ops() {
        if op.tag() != DiffTag::Equal {
            removed += op.old_range().len();
            added += op.new_range().len();
        }
    }
    out.push('(');
    if added > 0 || removed == 0 {
        styler.paint(Role::Added, &format!("+{added}"), out);
    }
    if added > 0 && removed > 0 {
        out.push(' ');
    }
    if removed > 0 {
        styler.paint(Role::Removed, &format!("−{removed}"), out);
    }
    out.push_str(")\n");

    let groups = diff.grouped_ops(CONTEXT_LINES);
    let total = groups.len().saturating_sub(1)
        + groups
            .iter()
            .flatten()
            .map(|op| match op.tag() {
                DiffTag::Equal => op.new_range().len(),
                DiffTag::Delete | DiffTag::Insert | DiffTag::Replace => {
                    op.old_range().len() + op.new_range().len()
                }
            })
            .sum::<usize>();
    let widest = groups
        .last()
        .and_then(|group| group.last())
        .map_or(1, |op| op.new_range().end);
    // When only the final newline changed, "- x" / "+ x" look identical;
    // a note on the lines without one says what differs.
    let eof_changed = old.ends_with('\n') != new.ends_with('\n');

    let rows = groups.iter().enumerate().flat_map(|(i, group)| {
        let gap = (i > 0).then_some(Row::Gap);
        gap.into_iter().chain(
            group
                .iter()
                .flat_map(|op| diff.iter_changes(op))
                .map(|change| Row::Line {
                    tag: change.tag(),
                    number: change.new_index().map(|n| n + 1),
                    text: change.value(),
                }),
        )
    });
    let mut body = Body::new(styler, digits(widest), eof_changed);
    body.render(rows, total, max_lines, out);
}

/// Writes the rows under the header.
struct Body {
    styler: Styler,
    gutter: usize,
    note_missing_newline: bool,
}

impl Body {
    fn new(styler: Styler, gutter: usize, note_missing_newline: bool) -> Self {
        Self {
            styler,
            gutter,
            note_missing_newline,
        }
    }

    /// Writes `rows` (`total` of them) within `max_lines` lines.
    fn render<'a>(
        &mut self,
        rows: impl Iterator<Item = Row<'a>>,
        total: usize,
        max_lines: usize,
        out: &mut String,
    ) {
        if max_lines == 0 {
            return;
        }
        let shown = if total <= max_lines {
            total
        } else {
            max_lines - 1
        };
        let mut hidden = 0;
        for (i, row) in rows.enumerate() {
            if i >= shown {
                hidden += usize::from(matches!(row, Row::Line { .. }));
                continue;
            }
            match row {
                // A gap right before the cut would separate nothing.
                Row::Gap if i + 1 == shown && shown < total => {}
                Row::Gap => self.gap(out),
                Row::Line { tag, number, text } => self.line(tag, number, text, out),
            }
        }
        if hidden > 0 {
            let noun = if hidden == 1 { "line" } else { "lines" };
            out.push_str("  ");
            self.styler
                .paint(Role::Dim, &format!("… {hidden} more {noun}"), out);
            out.push('\n');
        }
    }

    fn gap(&self, out: &mut String) {
        out.push_str("  ");
        push_spaces(self.gutter.saturating_sub(1), out);
        self.styler.paint(Role::Dim, "⋮", out);
        out.push('\n');
    }

    fn line(&self, tag: ChangeTag, number: Option<usize>, text: &str, out: &mut String) {
        out.push_str("  ");
        match number {
            Some(n) => {
                self.styler.set(&[Role::Dim], out);
                let _ = write!(out, "{n:>width$}", width = self.gutter);
                self.styler.set(&[], out);
            }
            None => push_spaces(self.gutter, out),
        }
        out.push(' ');
        let (role, marker) = match tag {
            ChangeTag::Equal => (Role::Dim, "  "),
            ChangeTag::Delete => (Role::Removed, "- "),
            ChangeTag::Insert => (Role::Added, "+ "),
        };
        self.styler.set(&[role], out);
        out.push_str(marker);
        push_sanitized(text, MAX_LINE_CHARS, out);
        self.styler.set(&[], out);
        if self.note_missing_newline && tag != ChangeTag::Equal && !text.ends_with('\n') {
            self.styler
                .paint(Role::Dim, " (no newline at end of file)", out);
        }
        out.push('\n');
    }
}

/// Appends one line for display: without its line ending, tabs as four
/// spaces, control characters (which could drive the terminal) as `�`, and
/// cut after `max` characters with `…`.
fn push_sanitized(text: &str, max: usize, out: &mut String) {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            return;
        }
        match c {
            '\t' => out.push_str("    "),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

fn push_spaces(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Text with NUL bytes is not worth showing line by line.
fn is_binary(text: &str) -> bool {
    text.contains('\0')
}

fn digits(n: usize) -> usize {
    n.max(1).ilog10() as usize + 1
}

#[cfg(test)]
mod tests {
    use super::super::theme::Theme;
    use super::*;

    fn plain(path: &str, old: Option<&str>, new: &str, max: usize) -> String {
        let mut out = String::new();
        render(path, old, new, max, Styler::plain(), &mut out);
        out
    }

    fn colored(path: &str, old: Option<&str>, new: &str, max: usize) -> String {
        let mut out = String::new();
        render(
            path,
            old,
            new,
            max,
            Styler::new(Theme::Green, true),
            &mut out,
        );
        out
    }

    /// Every line that sets a style resets it before its newline.
    fn assert_resets_before_newlines(out: &str) {
        for line in out.lines() {
            if let Some(last_sgr) = line.rfind("\x1b[") {
                assert!(
                    line[last_sgr..].starts_with("\x1b[0m"),
                    "style leaks past the end of {line:?}"
                );
            }
        }
    }

    fn numbered(range: std::ops::RangeInclusive<usize>) -> String {
        range.map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn modification_shows_context_and_changes() {
        let old = "a\nb\nc\nd\ne\n";
        let new = "a\nb\nC\nd\ne\nf\n";
        assert_eq!(
            plain("src/x.rs", Some(old), new, 40),
            "  src/x.rs (+2 −1)\n\
             \x20 1   a\n\
             \x20 2   b\n\
             \x20   - c\n\
             \x20 3 + C\n\
             \x20 4   d\n\
             \x20 5   e\n\
             \x20 6 + f\n"
        );
    }

    #[test]
    fn new_file_is_all_additions() {
        assert_eq!(
            plain("notes.md", None, "# Notes\n\nhello\n", 40),
            "  notes.md (new file, 3 lines)\n\
             \x20 1 + # Notes\n\
             \x20 2 + \n\
             \x20 3 + hello\n"
        );
        assert_eq!(plain("e", None, "", 40), "  e (new file, empty)\n");
        assert_eq!(
            plain("one", None, "x", 40),
            "  one (new file, 1 line)\n  1 + x\n"
        );
    }

    #[test]
    fn deleted_lines_have_no_new_line_number() {
        let old = "keep\ndrop 1\ndrop 2\nkeep too\n";
        assert_eq!(
            plain("f", Some(old), "keep\nkeep too\n", 40),
            "  f (−2)\n\
             \x20 1   keep\n\
             \x20   - drop 1\n\
             \x20   - drop 2\n\
             \x20 2   keep too\n"
        );
    }

    #[test]
    fn distant_changes_make_separate_hunks() {
        let old = numbered(1..=30);
        let new = old
            .replace("line 2\n", "line two\n")
            .replace("line 28\n", "line twenty-eight\n");
        let out = plain("big.txt", Some(&old), &new, 40);
        assert_eq!(
            out,
            "  big.txt (+2 −2)\n\
             \x20  1   line 1\n\
             \x20    - line 2\n\
             \x20  2 + line two\n\
             \x20  3   line 3\n\
             \x20  4   line 4\n\
             \x20  5   line 5\n\
             \x20  ⋮\n\
             \x20 25   line 25\n\
             \x20 26   line 26\n\
             \x20 27   line 27\n\
             \x20    - line 28\n\
             \x20 28 + line twenty-eight\n\
             \x20 29   line 29\n\
             \x20 30   line 30\n"
        );
    }

    #[test]
    fn long_diffs_are_cut_with_a_count() {
        let new = numbered(1..=100);
        let out = plain("gen.txt", None, &new, 10);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 11, "{out}");
        assert_eq!(lines[0], "  gen.txt (new file, 100 lines)");
        assert_eq!(lines[9], "    9 + line 9");
        assert_eq!(lines[10], "  … 91 more lines");

        // Exactly at the cap: nothing is cut.
        let out = plain("gen.txt", None, &numbered(1..=10), 10);
        assert_eq!(out.lines().count(), 11);
        assert!(!out.contains('…'));

        // A cap of zero leaves the header alone.
        assert_eq!(plain("g", None, "a\n", 0), "  g (new file, 1 line)\n");
    }

    #[test]
    fn cut_hides_a_trailing_gap_and_counts_only_lines() {
        let old = numbered(1..=30);
        let new = old.replace("line 2\n", "x\n").replace("line 28\n", "y\n");
        // Hunk one is 6 rows; the 7th row is the gap.
        let out = plain("f", Some(&old), &new, 8);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 8, "{out}");
        assert_eq!(lines[6], "   5   line 5");
        assert_eq!(lines[7], "  … 7 more lines");
    }

    #[test]
    fn missing_final_newline_is_noted_when_it_changed() {
        let out = plain("f", Some("a\nb\n"), "a\nb", 40);
        assert_eq!(
            out,
            "  f (+1 −1)\n\
             \x20 1   a\n\
             \x20   - b\n\
             \x20 2 + b (no newline at end of file)\n"
        );
        // Both without a final newline: nothing to note.
        let out = plain("f", Some("a\nb"), "a\nc", 40);
        assert_eq!(out, "  f (+1 −1)\n  1   a\n    - b\n  2 + c\n");
    }

    #[test]
    fn identical_text_has_no_changes() {
        assert_eq!(
            plain("same.rs", Some("x\n"), "x\n", 40),
            "  same.rs (no changes)\n"
        );
        assert_eq!(plain("empty", Some(""), "", 40), "  empty (no changes)\n");
    }

    #[test]
    fn crlf_control_characters_and_long_lines_are_made_displayable() {
        let long = "é".repeat(1000);
        let new = format!("a\r\nb\x1b[31m\tc\r\n{long}\r\n");
        let out = plain("w.txt", Some("a\r\n"), &new, 40);
        let expected_long = format!("{}…", "é".repeat(MAX_LINE_CHARS));
        assert_eq!(
            out,
            format!("  w.txt (+2)\n  1   a\n  2 + b\u{fffd}[31m    c\n  3 + {expected_long}\n")
        );
        assert!(!out.contains('\r') && !out.contains('\x1b'));
    }

    #[test]
    fn binary_text_is_not_shown() {
        assert_eq!(
            plain("img.png", Some("\u{0}PNG"), "\u{0}PNG2", 40),
            "  img.png (binary file, not shown)\n"
        );
        assert_eq!(
            plain("a.bin", None, "x\0y", 40),
            "  a.bin (binary file, not shown)\n"
        );
    }

    #[test]
    fn colored_output_styles_each_part_and_resets_every_line() {
        let old = numbered(1..=30);
        let new = old.replace("line 2\n", "x\n").replace("line 28\n", "y\n");
        let out = colored("src/lib.rs", Some(&old), &new, 40);
        assert!(out.starts_with("  \x1b[0;1msrc/lib.rs\x1b[0m ("), "{out:?}");
        assert!(
            out.contains("\x1b[0;32m+2\x1b[0m \x1b[0;31m−2\x1b[0m)"),
            "{out:?}"
        );
        assert!(out.contains("\x1b[0;31m- line 2\x1b[0m\n"), "{out:?}");
        assert!(
            out.contains("\x1b[0;2m 2\x1b[0m \x1b[0;32m+ x\x1b[0m\n"),
            "{out:?}"
        );
        assert!(out.contains("\x1b[0;2m  line 3\x1b[0m\n"), "{out:?}");
        assert!(out.contains("\x1b[0;2m⋮\x1b[0m\n"), "{out:?}");
        assert_resets_before_newlines(&out);

        let capped = colored("f", None, &numbered(1..=50), 5);
        assert!(
            capped.ends_with("  \x1b[0;2m… 46 more lines\x1b[0m\n"),
            "{capped:?}"
        );
        assert_resets_before_newlines(&capped);
        assert_resets_before_newlines(&colored("f", Some("a"), "a", 5));
        assert_resets_before_newlines(&colored("f", Some("a\n"), "a", 5));
    }

    #[test]
    fn plain_output_has_no_escape_codes() {
        let old = numbered(1..=30);
        let new = old.replace("line 9\n", "nine\n");
        let out = plain("f", Some(&old), &new, 40);
        assert!(!out.contains('\x1b'));
    }
}
