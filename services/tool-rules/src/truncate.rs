//! Output caps: every tool result is cut to a byte budget before the model
//! sees it, keeping its head and its tail (where errors and summaries tend to
//! be) and saying how much was left out. Cuts fall on UTF-8 character
//! boundaries.

use std::borrow::Cow;
use std::collections::VecDeque;

/// The note that replaces the omitted middle.
fn omission_note(omitted: usize) -> String {
    format!("\n[… {omitted} bytes omitted …]\n")
}

/// `text` if it fits in `max_bytes`, else its head and tail around a note
/// saying how many bytes were cut. The result fits in `max_bytes` unless
/// the budget is smaller than the note itself.
pub fn cap_output(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    // The note for the whole length is at least as long as the real one.
    let budget = max_bytes.saturating_sub(omission_note(text.len()).len());
    let head_end = text.floor_char_boundary(budget / 2);
    let tail_start = text.ceil_char_boundary(text.len() - (budget - budget / 2));
    let mut out = String::with_capacity(max_bytes);
    out.push_str(&text[..head_end]);
    out.push_str(&omission_note(tail_start - head_end));
    out.push_str(&text[tail_start..]);
    Cow::Owned(out)
}

/// Collects a byte stream of unknown length in bounded memory: the first
/// and the last `max_bytes / 2` bytes are kept, the middle is counted and
/// dropped. Used for command output, which must be read to the end so the
/// process does not block on a full pipe.
#[derive(Debug)]
pub struct CappedBuffer {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: usize,
}

impl CappedBuffer {
    pub fn new(max_bytes: usize) -> Self {
        let head_cap = max_bytes / 2;
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap: max_bytes - head_cap,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len());
        let to_head = bytes.len().min(self.head_cap - self.head.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// Whether bytes were dropped.
    pub fn truncated(&self) -> bool {
        self.total > self.head.len() + self.tail.len()
    }

    /// The kept bytes as text (invalid UTF-8 replaced), with a note where
    /// the middle was dropped.
    pub fn into_text(self) -> String {
        if !self.truncated() {
            let mut all = self.head;
            all.extend(self.tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        let omitted = self.total - self.head.len() - self.tail.len();
        let tail: Vec<u8> = self.tail.into_iter().collect();
        let head = without_partial_char_at_end(&self.head);
        let tail_skip = tail
            .iter()
            .take(3)
            .take_while(|b| is_continuation(**b))
            .count();
        let cut = omitted + (self.head.len() - head.len()) + tail_skip;
        let mut out = String::from_utf8_lossy(head).into_owned();
        out.push_str(&omission_note(cut));
        out.push_str(&String::from_utf8_lossy(&tail[tail_skip..]));
        out
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// `bytes` without a trailing character whose encoding was cut off.
pub fn without_partial_char_at_end(bytes: &[u8]) -> &[u8] {
    let start = bytes.len().saturating_sub(4);
    let Some(lead) = (start..bytes.len())
        .rev()
        .find(|&i| !is_continuation(bytes[i]))
    else {
        return bytes;
    };
    let width = match bytes[lead] {
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        b if b >= 0xC0 => 2,
        _ => 1,
    };
    if lead + width > bytes.len() {
        &bytes[..lead]
    } else {
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_borrowed_unchanged() {
        assert!(matches!(cap_output("héllo", 6), Cow::Borrowed("héllo")));
    }

    #[test]
    fn long_text_keeps_head_and_tail_with_a_note() {
        let text = format!(
            "{}{}{}",
            "a".repeat(100),
            "m".repeat(10_000),
            "z".repeat(100)
        );
        let capped = cap_output(&text, 200);
        assert!(capped.len() <= 200, "{}", capped.len());
        assert!(capped.starts_with("aaa") && capped.ends_with("zzz"));
        let kept = capped.chars().filter(|c| "az".contains(*c)).count();
        let note = format!("[… {} bytes omitted …]", text.len() - kept);
        assert!(capped.contains(&note), "{capped}");
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        // 3-byte and 4-byte characters, so every budget lands mid-character.
        let text = "€😀".repeat(500);
        for max in 40..120 {
            let capped = cap_output(&text, max);
            assert!(capped.len() <= max);
            let kept: String = capped.chars().filter(|c| *c == '€' || *c == '😀').collect();
            let omitted = text.len() - kept.len();
            assert!(
                capped.contains(&format!("[… {omitted} bytes omitted …]")),
                "{capped}"
            );
        }
    }

    #[test]
    fn a_budget_smaller_than_the_note_leaves_only_the_note() {
        assert_eq!(cap_output("0123456789", 3), "\n[… 10 bytes omitted …]\n");
    }

    #[test]
    fn capped_buffer_keeps_everything_that_fits() {
        let mut buf = CappedBuffer::new(10);
        buf.push(b"hello");
        buf.push(b" you");
        assert!(!buf.truncated());
        assert_eq!(buf.into_text(), "hello you");
    }

    #[test]
    fn capped_buffer_keeps_head_and_tail_of_a_long_stream() {
        let mut buf = CappedBuffer::new(10);
        for chunk in [&b"abc"[..], b"defgh", b"0123456789", b"xyz", b"VWXYZ"] {
            buf.push(chunk);
        }
        assert!(buf.truncated());
        assert_eq!(buf.into_text(), "abcde\n[… 16 bytes omitted …]\nVWXYZ");
    }

    #[test]
    fn capped_buffer_does_not_split_multibyte_characters() {
        let text = "é€😀".repeat(50);
        for max in 4..40 {
            let mut buf = CappedBuffer::new(max);
            for chunk in text.as_bytes().chunks(7) {
                buf.push(chunk);
            }
            let out = buf.into_text();
            assert!(!out.contains('\u{FFFD}'), "{max}: {out}");
            let kept: usize = out
                .chars()
                .filter(|c| "é€😀".contains(*c))
                .map(char::len_utf8)
                .sum();
            assert!(
                out.contains(&format!("[… {} bytes omitted …]", text.len() - kept)),
                "{out}"
            );
        }
    }
}
