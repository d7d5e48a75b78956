//! The cap on every tool result the model sees, whatever produced it:
//! built-in, MCP or custom tool (docs/configuration.md, "The system
//! prompt").

use std::borrow::Cow;

/// Keeps at most `max_bytes` of `text`: the head and the tail, cut on UTF-8
/// boundaries, with a note in between saying how much was left out.
pub fn cap_text(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    // Budget for the note itself; the rest is split 3:1 between head and tail
    // (the end of an output often holds the error or the summary).
    const NOTE_BUDGET: usize = 64;
    let keep = max_bytes.saturating_sub(NOTE_BUDGET);
    let head_end = floor_boundary(text, keep * 3 / 4);
    let tail_start = ceil_boundary(text, text.len() - (keep - keep * 3 / 4));
    let omitted = tail_start - head_end;
    let mut out = String::with_capacity(max_bytes);
    out.push_str(&text[..head_end]);
    out.push_str(&format!("\n[… {omitted} bytes omitted …]\n"));
    out.push_str(&text[tail_start..]);
    Cow::Owned(out)
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert!(matches!(cap_text("abc", 10), Cow::Borrowed("abc")));
    }

    #[test]
    fn long_text_keeps_head_tail_and_a_note() {
        let text = "é".repeat(10_000); // 20 000 bytes, two per char
        let capped = cap_text(&text, 1024);
        assert!(capped.len() <= 1024, "{}", capped.len());
        assert!(capped.starts_with('é') && capped.ends_with('é'));
        assert!(capped.contains("bytes omitted"));
    }
}
