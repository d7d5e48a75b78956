//! Compaction: the older part of a conversation replaced by a summary the
//! model writes (docs/context.md). Pure functions; the turn (`turn.rs`)
//! decides when, asks llm-proxy for the summary and stores the
//! [`Compaction`] record.
//!
//! Rules kept here:
//! - what the model is sent is a function of the stored history and the
//!   latest compaction only ([`view`]), so a resumed session sends exactly
//!   what it sent before;
//! - a summary ends before an assistant or user message, never between a
//!   tool call and its result ([`cut`]);
//! - the summariser sees the previous summary and the messages after it as
//!   one plain-text transcript, so no provider's pairing rules (tool calls
//!   and results, signed thinking) apply to that request.

use crate::context::{message_tokens, text_tokens};
use crate::store::{Compaction, StoredBlock, StoredMessage};

/// The system prompt of a summary request. Tests recognise summary
/// requests by its first words.
pub const SUMMARY_SYSTEM_PROMPT: &str = "You write the summary that replaces the earlier part of \
a coding agent's conversation with a user. The agent continues the work from your summary and the \
latest messages alone, so keep everything it needs and nothing else.";

/// What the summary must keep; the model is told to use these headings.
const SUMMARY_INSTRUCTIONS: &str =
    "Summarise the conversation above for the agent that continues it. \
Use these headings:
## Goal: what the user asked for, every request still open, in their words where it matters.
## Decisions: choices made and why; constraints and preferences the user gave.
## Files: every file read, created or changed, and what changed.
## Facts: names, values, numbers, commands, errors and results the work depends on, verbatim.
## Done: what is finished (say so plainly, so it is not redone).
## Left: what remains, the next step first.
Write only the summary.";

/// Heading of the summary where the model reads it.
pub const SUMMARY_HEADING: &str = "[Summary of the earlier conversation, written when it was \
compacted; the messages it replaces are no longer shown]";

/// Bytes of one tool result kept in a transcript (head and tail).
pub const TRANSCRIPT_RESULT_BYTES: usize = 4_000;
/// Tokens the summary may take at most.
pub const SUMMARY_MAX_TOKENS: u64 = 4_096;
/// The kept recent part of an automatic compaction: at most this fraction
/// (1/n) of the compaction threshold.
pub const KEEP_DIVISOR: u64 = 4;

/// The history as the model is sent it: the summary in place of the
/// messages it covers, then the rest. The summary joins the first kept
/// message when that is a user message (so roles still alternate), and is
/// a user message of its own otherwise.
pub fn view(history: &[StoredMessage], compaction: Option<&Compaction>) -> Vec<StoredMessage> {
    let Some(compaction) = compaction else {
        return history.to_vec();
    };
    let covers = usize::try_from(compaction.covers)
        .unwrap_or(usize::MAX)
        .min(history.len());
    let summary = StoredBlock::Text {
        text: format!("{SUMMARY_HEADING}\n\n{}", compaction.text),
    };
    let mut out = Vec::with_capacity(history.len() - covers + 1);
    match history.get(covers) {
        Some(StoredMessage::User { content }) => {
            let mut joined = vec![summary];
            joined.extend(content.iter().cloned());
            out.push(StoredMessage::User { content: joined });
            out.extend(history[covers + 1..].iter().cloned());
        }
        _ => {
            out.push(StoredMessage::User {
                content: vec![summary],
            });
            out.extend(history[covers..].iter().cloned());
        }
    }
    out
}

/// Estimated tokens of a list of messages.
pub fn tokens(messages: &[StoredMessage]) -> u64 {
    messages.iter().map(message_tokens).sum()
}

/// Where an automatic compaction ends: `history[from..cut]` is summarised
/// (with the previous summary), `history[cut..]` is kept. The kept part is
/// the longest that fits `keep_tokens`, but always at least the last
/// message, and starts at a user or assistant message, so every tool call
/// keeps its result. `None` when no such point lies after `from`.
pub fn cut(history: &[StoredMessage], from: usize, keep_tokens: u64) -> Option<usize> {
    let mut kept = 0;
    let mut best = None;
    for c in (from + 1..history.len()).rev() {
        kept += message_tokens(&history[c]);
        if matches!(history[c], StoredMessage::Tool { .. }) {
            continue;
        }
        if best.is_some() && kept > keep_tokens {
            break;
        }
        best = Some(c);
    }
    best
}

/// The summary request's single user message: the previous summary and
/// `messages` as a plain-text transcript, then the instructions. When the
/// transcript is over `max_tokens`, its oldest messages are left out with
/// a marker (the previous summary always stays).
pub fn request_text(
    previous: Option<&str>,
    messages: &[StoredMessage],
    focus: &str,
    max_tokens: u64,
) -> String {
    let mut parts: Vec<String> = messages.iter().map(transcript_entry).collect();
    let head = previous
        .map(|p| format!("[Earlier summary]\n{p}\n\n"))
        .unwrap_or_default();
    let fixed = text_tokens(&head) + text_tokens(SUMMARY_INSTRUCTIONS) + text_tokens(focus) + 64;
    let mut total: u64 = parts.iter().map(|p| text_tokens(p)).sum::<u64>() + fixed;
    let mut omitted = 0;
    while total > max_tokens && omitted < parts.len() {
        total -= text_tokens(&parts[omitted]);
        omitted += 1;
    }
    let mut text = String::from("<transcript>\n");
    text.push_str(&head);
    if omitted > 0 {
        text.push_str(&format!(
            "[… {omitted} earlier messages left out to fit …]\n\n"
        ));
    }
    for part in parts.drain(omitted..) {
        text.push_str(&part);
        text.push('\n');
    }
    text.push_str("</transcript>\n\n");
    text.push_str(SUMMARY_INSTRUCTIONS);
    if !focus.trim().is_empty() {
        text.push_str("\nPay most attention to: ");
        text.push_str(focus.trim());
    }
    text
}

fn transcript_entry(message: &StoredMessage) -> String {
    match message {
        StoredMessage::User { content } => format!("[User]\n{}", blocks_text(content)),
        StoredMessage::Assistant { content } => {
            format!("[Assistant]\n{}", blocks_text(content))
        }
        StoredMessage::Tool {
            tool_call_id,
            content,
            is_error,
            images,
        } => {
            let label = if *is_error {
                "Tool error"
            } else {
                "Tool result"
            };
            let mut entry = format!(
                "[{label} {tool_call_id}]\n{}",
                head_and_tail(content, TRANSCRIPT_RESULT_BYTES)
            );
            for image in images {
                entry.push_str(&format!("\n(an image, {})", image.mime_type));
            }
            entry
        }
    }
}

/// Text, tool calls and image markers of a message; thinking is left out
/// (it is the model's scratch work, often signed and never summarised).
fn blocks_text(content: &[StoredBlock]) -> String {
    let parts: Vec<String> = content
        .iter()
        .filter_map(|b| match b {
            StoredBlock::Text { text } => Some(text.clone()),
            StoredBlock::ToolCall {
                id,
                name,
                arguments,
            } => Some(format!("(calls {name} {id}: {arguments})")),
            StoredBlock::Image { mime_type, .. } => Some(format!("(an image, {mime_type})")),
            StoredBlock::Thinking { .. } => None,
        })
        .collect();
    parts.join("\n")
}

/// `text` cut to about `max` bytes: its start and its end, at character
/// boundaries, with a marker between.
fn head_and_tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let half = max / 2;
    let mut start = half;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = text.len() - half;
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let left = text.len() - start - (text.len() - end);
    format!(
        "{}\n[… {left} bytes left out …]\n{}",
        &text[..start],
        &text[end..]
    )
}

/// The notice of a compaction.
pub fn notice(summarised: usize, model: &str, before: u64, after: u64) -> String {
    let messages = match summarised {
        1 => "1 message".to_owned(),
        n => format!("{n} messages"),
    };
    format!(
        "context: summarised {messages} with {model} (≈{} → ≈{} tokens)",
        crate::context::approx_tokens(before),
        crate::context::approx_tokens(after)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> StoredMessage {
        StoredMessage::User {
            content: vec![StoredBlock::Text { text: text.into() }],
        }
    }

    fn call(id: &str) -> StoredMessage {
        StoredMessage::Assistant {
            content: vec![StoredBlock::ToolCall {
                id: id.into(),
                name: "read_file".into(),
                arguments: "{}".into(),
            }],
        }
    }

    fn result(id: &str, n: usize) -> StoredMessage {
        StoredMessage::Tool {
            tool_call_id: id.into(),
            content: "x".repeat(n * 4),
            is_error: false,
            images: Vec::new(),
        }
    }

    fn compaction(covers: u64) -> Compaction {
        Compaction {
            covers,
            text: "GOAL kept".into(),
            model: "m".into(),
            tokens_before: 0,
            tokens_after: 0,
        }
    }

    fn text_of(message: &StoredMessage) -> String {
        match message {
            StoredMessage::User { content } | StoredMessage::Assistant { content } => {
                blocks_text(content)
            }
            StoredMessage::Tool { content, .. } => content.clone(),
        }
    }

    #[test]
    fn the_view_puts_the_summary_in_place_of_what_it_covers() {
        let history = vec![user("one"), call("c1"), result("c1", 1), user("two")];
        assert_eq!(view(&history, None), history);
        // Before a user message: joined to it.
        let v = view(&history, Some(&compaction(3)));
        assert_eq!(v.len(), 1);
        let text = text_of(&v[0]);
        assert!(text.starts_with(SUMMARY_HEADING) && text.contains("GOAL kept"));
        assert!(text.ends_with("two"), "{text}");
        // Before an assistant message: a user message of its own.
        let v = view(&history, Some(&compaction(1)));
        assert_eq!(v.len(), 4);
        assert!(text_of(&v[0]).contains("GOAL kept"));
        assert_eq!(v[1], history[1]);
        // Everything covered: the summary alone; a covers past the end is
        // clamped.
        let v = view(&history, Some(&compaction(99)));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_cut_never_separates_a_call_from_its_result() {
        // user, (call, result) × 4, each pair 4+12 + 4+1+100 tokens.
        let mut history = vec![user("go")];
        for i in 0..4 {
            let id = format!("c{i}");
            history.extend([call(&id), result(&id, 100)]);
        }
        for keep in [0, 50, 130, 260, 10_000] {
            let Some(c) = cut(&history, 0, keep) else {
                assert!(keep >= 10_000, "keep {keep}");
                continue;
            };
            assert!(
                matches!(history[c], StoredMessage::Assistant { .. }),
                "keep {keep}: cut at {c}"
            );
        }
        // Room for two pairs: the last two are kept.
        let pair = message_tokens(&history[1]) + message_tokens(&history[2]);
        assert_eq!(cut(&history, 0, 2 * pair), Some(5));
        // Nothing fits: still the last pair is kept, the rest summarised.
        assert_eq!(cut(&history, 0, 0), Some(7));
        // Everything fits: the earliest possible cut after `from`.
        assert_eq!(cut(&history, 0, 10_000), Some(1));
        // Nothing after `from` to summarise.
        assert_eq!(cut(&history, 7, 0), None);
        assert_eq!(cut(&[user("only")], 0, 0), None);
    }

    #[test]
    fn the_request_keeps_the_previous_summary_and_caps_the_transcript() {
        let history = vec![
            user("FACT-1 is 42"),
            call("c1"),
            result("c1", 10_000),
            user("latest"),
        ];
        let text = request_text(Some("EARLIER"), &history, "tests", 100_000);
        assert!(text.contains("[Earlier summary]\nEARLIER"));
        assert!(text.contains("FACT-1 is 42") && text.contains("(calls read_file c1: {})"));
        // The long result is cut in the middle.
        assert!(text.contains("bytes left out"), "{}", text.len());
        assert!(text.len() < 8_000);
        assert!(text.contains("## Done") && text.ends_with("Pay most attention to: tests"));
        // Too small: the oldest messages go first, the summary stays.
        let text = request_text(Some("EARLIER"), &history, "", 600);
        assert!(text.contains("EARLIER") && text.contains("latest"));
        assert!(!text.contains("FACT-1"), "{text}");
        assert!(text.contains("earlier messages left out"));
    }

    #[test]
    fn head_and_tail_respects_char_boundaries() {
        let text = "é".repeat(100);
        let cut = head_and_tail(&text, 51);
        assert!(cut.starts_with('é') && cut.ends_with('é'));
        assert_eq!(head_and_tail("short", 10), "short");
    }

    #[test]
    fn the_notice_says_what_and_how_much() {
        assert_eq!(
            notice(40, "mock/m", 9_200, 1_300),
            "context: summarised 40 messages with mock/m (≈9k → ≈1k tokens)"
        );
    }
}
