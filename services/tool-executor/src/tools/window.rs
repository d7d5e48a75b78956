//! A window of lines from a file within a byte budget, for `read_file`'s
//! `offset`/`limit`: lines before the window are skipped without being
//! kept, and the window ends at the line limit, the end of the file or the
//! last whole line that fits the budget.

use std::io::{self, BufRead};

/// How a window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The file ended.
    Eof,
    /// The line limit was reached and more lines follow.
    Limit,
    /// The byte budget ran out at a line boundary; more lines follow.
    Budget,
    /// The window's only line is longer than the budget and was cut.
    LineCut,
}

/// The lines read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    pub text: Vec<u8>,
    /// 1-based number of the first line of the window.
    pub first_line: u64,
    /// Lines in `text` (a cut line counts).
    pub lines: u64,
    pub end: End,
}

impl Window {
    /// The `offset` that continues after this window, unless the file ended.
    pub fn next_offset(&self) -> Option<u64> {
        match self.end {
            End::Eof => None,
            End::Limit | End::Budget | End::LineCut => Some(self.first_line + self.lines),
        }
    }
}

/// Why no window could be read: the file has fewer lines than `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PastEnd {
    pub lines_in_file: u64,
}

/// Reads from line `offset` (1-based; 0 means 1) at most `limit` lines and
/// at most `budget` bytes.
pub(crate) fn read_window(
    mut reader: impl BufRead,
    offset: u64,
    limit: Option<u64>,
    budget: usize,
) -> io::Result<Result<Window, PastEnd>> {
    let first_line = offset.max(1);
    let skipped = skip_lines(&mut reader, first_line - 1)?;
    if skipped < first_line - 1 || (first_line > 1 && reader.fill_buf()?.is_empty()) {
        return Ok(Err(PastEnd {
            lines_in_file: skipped,
        }));
    }
    let mut text = Vec::new();
    let mut lines = 0_u64;
    let mut line_start = 0_usize;
    let end = loop {
        if limit.is_some_and(|l| lines >= l) {
            break if reader.fill_buf()?.is_empty() {
                End::Eof
            } else {
                End::Limit
            };
        }
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            if text.len() > line_start {
                lines += 1;
            }
            break End::Eof;
        }
        let room = budget - text.len();
        if room == 0 {
            break end_at_budget(&mut text, line_start, &mut lines);
        }
        let take = buf.len().min(room);
        let used = match buf[..take].iter().position(|&b| b == b'\n') {
            Some(newline) => {
                lines += 1;
                newline + 1
            }
            None => take,
        };
        text.extend_from_slice(&buf[..used]);
        reader.consume(used);
        if text.last() == Some(&b'\n') {
            line_start = text.len();
        }
    };
    Ok(Ok(Window {
        text,
        first_line,
        lines,
        end,
    }))
}

/// Ends a window whose budget ran out while more bytes follow: at the last
/// whole line, or with a cut line when not even one line fits.
fn end_at_budget(text: &mut Vec<u8>, line_start: usize, lines: &mut u64) -> End {
    match (line_start == text.len(), *lines) {
        (true, _) => End::Budget,
        (false, 0) => {
            *lines = 1;
            End::LineCut
        }
        (false, _) => {
            text.truncate(line_start);
            End::Budget
        }
    }
}

/// Skips up to `count` lines; returns how many were skipped (a last line
/// without a line break counts).
fn skip_lines(reader: &mut impl BufRead, count: u64) -> io::Result<u64> {
    let mut skipped = 0;
    let mut mid_line = false;
    while skipped < count {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(skipped + u64::from(mid_line));
        }
        let used = match buf.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                skipped += 1;
                mid_line = false;
                newline + 1
            }
            None => {
                mid_line = true;
                buf.len()
            }
        };
        reader.consume(used);
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(text: &str, offset: u64, limit: Option<u64>, budget: usize) -> Window {
        // A tiny buffer makes lines span several reads.
        let reader = io::BufReader::with_capacity(3, text.as_bytes());
        read_window(reader, offset, limit, budget).unwrap().unwrap()
    }

    fn shown(w: &Window) -> &str {
        std::str::from_utf8(&w.text).unwrap()
    }

    const TEXT: &str = "one\ntwo\nthree\nfour\n";

    #[test]
    fn the_whole_file_fits() {
        let w = window(TEXT, 0, None, 100);
        assert_eq!(
            (shown(&w), w.first_line, w.lines, w.end),
            (TEXT, 1, 4, End::Eof)
        );
        assert_eq!(w.next_offset(), None);
        let unterminated = window("a\nb", 1, None, 100);
        assert_eq!((unterminated.lines, unterminated.end), (2, End::Eof));
    }

    #[test]
    fn offset_and_limit_select_lines() {
        let w = window(TEXT, 2, Some(2), 100);
        assert_eq!((shown(&w), w.end), ("two\nthree\n", End::Limit));
        assert_eq!(w.next_offset(), Some(4));
        let last = window(TEXT, 4, Some(1), 100);
        assert_eq!((shown(&last), last.end), ("four\n", End::Eof));
    }

    #[test]
    fn the_budget_ends_at_a_whole_line() {
        let w = window(TEXT, 1, None, 10);
        assert_eq!((shown(&w), w.lines, w.end), ("one\ntwo\n", 2, End::Budget));
        assert_eq!(w.next_offset(), Some(3));
        let exact = window(TEXT, 1, None, 8);
        assert_eq!((shown(&exact), exact.end), ("one\ntwo\n", End::Budget));
    }

    #[test]
    fn a_line_longer_than_the_budget_is_cut() {
        let w = window("abcdefghij\nnext\n", 1, None, 4);
        assert_eq!((shown(&w), w.lines, w.end), ("abcd", 1, End::LineCut));
        assert_eq!(w.next_offset(), Some(2));
    }

    #[test]
    fn an_offset_past_the_end_says_how_many_lines_there_are() {
        let reader = io::BufReader::new(TEXT.as_bytes());
        assert_eq!(
            read_window(reader, 9, None, 100).unwrap(),
            Err(PastEnd { lines_in_file: 4 })
        );
        let reader = io::BufReader::new(TEXT.as_bytes());
        assert_eq!(
            read_window(reader, 5, None, 100).unwrap(),
            Err(PastEnd { lines_in_file: 4 })
        );
        assert_eq!(window("", 1, None, 10).end, End::Eof);
        let reader = io::BufReader::new("a\nb".as_bytes());
        assert_eq!(
            read_window(reader, 3, None, 100).unwrap(),
            Err(PastEnd { lines_in_file: 2 })
        );
    }
}
