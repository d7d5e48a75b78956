//! Fitting a session's history into the model's context window: a token
//! estimate and the choice of which oldest whole turns one LLM call leaves
//! out. Pure functions; the stored history is never changed, only the slice
//! of it that a call sends.
//!
//! The estimate is provider independent and deliberately simple (see
//! `docs/decisions.md`): every text (message text, thinking, tool call name
//! and arguments, tool results, the system prompt, tool schemas) counts
//! `ceil(bytes / 4)` tokens, each message adds [`MESSAGE_OVERHEAD_TOKENS`],
//! each tool call and tool definition [`STRUCTURE_OVERHEAD_TOKENS`], each
//! image a fixed [`IMAGE_TOKENS`]. It errs on the high side for English
//! prose and on the low side for dense code or non-Latin scripts, which the
//! safety margin of the budget absorbs; a provider that still refuses gets a
//! shrunk history ([`shrink`]).
//!
//! A *turn* is a user message and everything after it up to the next user
//! message. Only whole turns are dropped, oldest first, so a tool call never
//! loses its result and the history sent always starts with a user message;
//! the current (last) turn is always sent, even when it alone is over the
//! budget: then the provider decides.

use openheim_proto::common::v1::ToolDefinition;

use crate::store::{StoredBlock, StoredMessage};

/// Bytes of text per estimated token.
pub const BYTES_PER_TOKEN: u64 = 4;
/// Role marker and separators of one message.
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 4;
/// Ids, names and wrapping of one tool call or one tool definition.
pub const STRUCTURE_OVERHEAD_TOKENS: u64 = 8;
/// One image, whatever its size: about what a ~1 megapixel image costs at
/// Anthropic and OpenAI (high detail).
pub const IMAGE_TOKENS: u64 = 1_600;
/// Output reserved when the provider's output cap is unknown, at most a
/// quarter of the window.
pub const DEFAULT_OUTPUT_RESERVE: u64 = 4_096;
/// A tenth of the window is kept free for the estimate's error.
pub const SAFETY_MARGIN_DIVISOR: u64 = 10;

/// Estimated tokens of a text.
pub fn text_tokens(text: &str) -> u64 {
    bytes_tokens(text.len())
}

fn bytes_tokens(bytes: usize) -> u64 {
    u64::try_from(bytes)
        .unwrap_or(u64::MAX)
        .div_ceil(BYTES_PER_TOKEN)
}

/// Estimated tokens of one stored message, as sent to a provider.
pub fn message_tokens(message: &StoredMessage) -> u64 {
    let content = match message {
        StoredMessage::User { content } | StoredMessage::Assistant { content } => {
            content.iter().map(block_tokens).sum()
        }
        StoredMessage::Tool {
            tool_call_id,
            content,
            images,
            ..
        } => text_tokens(tool_call_id) + text_tokens(content) + IMAGE_TOKENS * images.len() as u64,
    };
    MESSAGE_OVERHEAD_TOKENS + content
}

fn block_tokens(block: &StoredBlock) -> u64 {
    match block {
        StoredBlock::Text { text } => text_tokens(text),
        // Signatures are opaque and not counted by providers as tokens.
        StoredBlock::Thinking { text, .. } => text_tokens(text),
        StoredBlock::ToolCall {
            id,
            name,
            arguments,
        } => STRUCTURE_OVERHEAD_TOKENS + bytes_tokens(id.len() + name.len() + arguments.len()),
        StoredBlock::Image { .. } => IMAGE_TOKENS,
    }
}

/// Estimated tokens of the tool schemas offered to the model.
pub fn tools_tokens(tools: &[ToolDefinition]) -> u64 {
    tools
        .iter()
        .map(|t| {
            let bytes = t.name.len() + t.description.len() + t.input_schema_json.len();
            STRUCTURE_OVERHEAD_TOKENS + bytes_tokens(bytes)
        })
        .sum()
}

/// What a model accepts, as llm-proxy knows it; 0 means unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelLimits {
    pub context_window: u64,
    pub max_output_tokens: u64,
}

impl ModelLimits {
    /// Tokens the history may take in one call: the window minus the
    /// reserved output, the system prompt, the tool schemas and the safety
    /// margin. `None` when the window is unknown (nothing is dropped).
    pub fn history_budget(&self, system_prompt: &str, tools: &[ToolDefinition]) -> Option<u64> {
        let window = self.context_window;
        if window == 0 {
            return None;
        }
        let output = match self.max_output_tokens {
            0 => DEFAULT_OUTPUT_RESERVE.min(window / 4),
            known => known,
        };
        let fixed = output
            .saturating_add(text_tokens(system_prompt))
            .saturating_add(tools_tokens(tools))
            .saturating_add(window / SAFETY_MARGIN_DIVISOR);
        Some(window.saturating_sub(fixed))
    }
}

/// The part of the history one LLM call sends: `history[start..]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// Index of the first message sent (= messages left out).
    pub start: usize,
    /// Whole turns left out, oldest first.
    pub dropped_turns: usize,
    /// Estimated tokens left out.
    pub dropped_tokens: u64,
    /// Estimated tokens sent, the current turn included.
    pub kept_tokens: u64,
    /// Estimated tokens of the current turn, which is always sent.
    pub current_tokens: u64,
}

impl Selection {
    /// Whether what is sent is still over `budget` (the current turn alone
    /// does not fit).
    pub fn over(&self, budget: Option<u64>) -> bool {
        budget.is_some_and(|b| self.kept_tokens > b)
    }
}

/// Chooses the longest suffix of whole turns that fits in `budget`, always
/// including the current turn. `None` = unknown window: everything.
pub fn select(history: &[StoredMessage], budget: Option<u64>) -> Selection {
    let tokens: Vec<u64> = history.iter().map(message_tokens).collect();
    let starts = turn_starts(history);
    let total: u64 = tokens.iter().sum();
    // The current turn: from the last turn start (or everything when there
    // is no user message at all, which a turn never produces).
    let current = starts.last().copied().unwrap_or(0);
    let current_tokens: u64 = tokens.get(current..).map_or(0, |t| t.iter().sum());
    let mut selection = Selection {
        start: current,
        dropped_turns: starts.len().saturating_sub(1),
        dropped_tokens: total - current_tokens,
        kept_tokens: current_tokens,
        current_tokens,
    };
    // Older turns, newest first, as long as they fit; stop at the first that
    // does not, so what is sent stays one contiguous suffix.
    for pair in starts.windows(2).rev() {
        let (begin, end) = (pair[0], pair[1]);
        let size: u64 = tokens[begin..end].iter().sum();
        let kept = selection.kept_tokens + size;
        if budget.is_some_and(|b| kept > b) {
            break;
        }
        selection.start = begin;
        selection.dropped_turns -= 1;
        selection.dropped_tokens -= size;
        selection.kept_tokens = kept;
    }
    selection
}

/// A smaller budget after the provider refused `previous` as too long: the
/// current turn plus at most half of the older tokens `previous` sent, and
/// at least one turn fewer. `None` when `previous` sent only the current
/// turn: nothing is left to drop.
pub fn shrink(history: &[StoredMessage], previous: &Selection) -> Option<u64> {
    let starts = turn_starts(history);
    let current = starts.last().copied().unwrap_or(0);
    if previous.start >= current {
        return None;
    }
    let older = previous.kept_tokens - previous.current_tokens;
    let halved = previous.current_tokens + older / 2;
    // The oldest turn `previous` sent ends at the next turn start.
    let end = starts
        .iter()
        .copied()
        .find(|&s| s > previous.start)
        .unwrap_or(current);
    let oldest: u64 = history[previous.start..end]
        .iter()
        .map(message_tokens)
        .sum();
    Some(halved.min(previous.kept_tokens - oldest))
}

/// Where each turn begins: every user message, plus index 0 when the
/// history does not start with one (such leading messages are dropped as a
/// turn of their own).
fn turn_starts(history: &[StoredMessage]) -> Vec<usize> {
    let mut starts: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, StoredMessage::User { .. }))
        .map(|(i, _)| i)
        .collect();
    if !history.is_empty() && starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    starts
}

/// The note shown when a call leaves turns out. `window` is 0 when the
/// budget comes from a provider's refusal rather than a known window.
pub fn dropped_note(selection: &Selection, window: u64, model: &str) -> String {
    let turns = oldest_turns(selection.dropped_turns);
    let tokens = approx_tokens(selection.dropped_tokens);
    match window {
        0 => format!("context: left out {turns} (≈{tokens} tokens) to fit what {model} accepts"),
        window => format!(
            "context: dropped {turns} (≈{tokens} tokens) to fit the {} window of {model}",
            approx_tokens(window)
        ),
    }
}

/// The note shown when the provider refused the conversation as too long
/// and the call is retried with `next`.
pub fn retry_note(next: &Selection, model: &str) -> String {
    format!(
        "context: {model} says the conversation is too long; retrying without {} (≈{} tokens)",
        oldest_turns(next.dropped_turns),
        approx_tokens(next.dropped_tokens)
    )
}

fn oldest_turns(n: usize) -> String {
    match n {
        1 => "the oldest turn".to_owned(),
        n => format!("the {n} oldest turns"),
    }
}

/// `950`, `41k`, `1.2M`: what a person reads at a glance.
fn approx_tokens(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{}k", (n + 500) / 1_000),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> StoredMessage {
        StoredMessage::User {
            content: vec![StoredBlock::Text { text: text.into() }],
        }
    }

    fn assistant(text: &str) -> StoredMessage {
        StoredMessage::Assistant {
            content: vec![StoredBlock::Text { text: text.into() }],
        }
    }

    fn call(id: &str, arguments: &str) -> StoredMessage {
        StoredMessage::Assistant {
            content: vec![StoredBlock::ToolCall {
                id: id.into(),
                name: "read_file".into(),
                arguments: arguments.into(),
            }],
        }
    }

    fn result(id: &str, content: &str) -> StoredMessage {
        StoredMessage::Tool {
            tool_call_id: id.into(),
            content: content.into(),
            is_error: false,
            images: Vec::new(),
        }
    }

    /// Text of `n` estimated tokens.
    fn text(n: usize) -> String {
        "x".repeat(n * 4)
    }

    /// Three turns of 4 + 100 + 4 + 100 = 208 tokens each.
    fn three_turns() -> Vec<StoredMessage> {
        (0..3)
            .flat_map(|_| [user(&text(100)), assistant(&text(100))])
            .collect()
    }

    #[test]
    fn estimate_counts_bytes_blocks_and_overheads() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abc"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        // Multi-byte text counts its bytes: 3 × 2 bytes.
        assert_eq!(text_tokens("ééé"), 2);
        assert_eq!(message_tokens(&user("abcd")), 4 + 1);
        // id "c1" + name "read_file" + arguments "{}": 13 bytes.
        assert_eq!(message_tokens(&call("c1", "{}")), 4 + 8 + 4);
        assert_eq!(message_tokens(&result("c1", &text(10))), 4 + 1 + 10);
        let image = StoredMessage::User {
            content: vec![
                StoredBlock::Image {
                    mime_type: "image/png".into(),
                    data: "A".repeat(1_000_000),
                },
                StoredBlock::Thinking {
                    text: "abcd".into(),
                    signature: "s".repeat(400),
                },
            ],
        };
        assert_eq!(message_tokens(&image), 4 + IMAGE_TOKENS + 1);
        let tool = ToolDefinition {
            name: "ab".into(),
            description: "cd".into(),
            input_schema_json: "{}".into(),
            ..ToolDefinition::default()
        };
        assert_eq!(tools_tokens(&[tool.clone(), tool]), 2 * (8 + 2));
    }

    #[test]
    fn budget_is_the_window_minus_output_prompt_tools_and_margin() {
        let limits = ModelLimits {
            context_window: 100_000,
            max_output_tokens: 8_000,
        };
        // 100k − 8k output − 10 prompt − 0 tools − 10k margin.
        assert_eq!(limits.history_budget(&text(10), &[]), Some(81_990));
        // Unknown output cap: 4,096 reserved, or a quarter of a small window.
        let unknown_cap = ModelLimits {
            context_window: 100_000,
            max_output_tokens: 0,
        };
        assert_eq!(unknown_cap.history_budget("", &[]), Some(85_904));
        let small = ModelLimits {
            context_window: 2_000,
            max_output_tokens: 0,
        };
        assert_eq!(small.history_budget("", &[]), Some(1_300));
        // Fixed parts larger than the window leave nothing, not an underflow.
        let tiny = ModelLimits {
            context_window: 1_000,
            max_output_tokens: 4_000,
        };
        assert_eq!(tiny.history_budget("", &[]), Some(0));
        assert_eq!(ModelLimits::default().history_budget("x", &[]), None);
    }

    #[test]
    fn unknown_window_sends_everything() {
        let history = three_turns();
        let s = select(&history, None);
        assert_eq!((s.start, s.dropped_turns, s.dropped_tokens), (0, 0, 0));
        assert_eq!(s.kept_tokens, 3 * 208);
        assert_eq!(s.current_tokens, 208);
        assert!(!s.over(None));
    }

    #[test]
    fn oldest_whole_turns_are_dropped_to_fit() {
        let history = three_turns();
        // Exactly everything fits.
        assert_eq!(select(&history, Some(624)).start, 0);
        // One token less: the oldest turn goes, as a whole.
        let s = select(&history, Some(623));
        assert_eq!((s.start, s.dropped_turns, s.dropped_tokens), (2, 1, 208));
        assert_eq!(s.kept_tokens, 416);
        // Room for a turn and a half: still whole turns only.
        let s = select(&history, Some(208 + 104));
        assert_eq!((s.start, s.dropped_turns), (4, 2));
        assert!(matches!(history[s.start], StoredMessage::User { .. }));
    }

    #[test]
    fn the_current_turn_is_always_sent() {
        let history = three_turns();
        let s = select(&history, Some(10));
        assert_eq!((s.start, s.dropped_turns, s.kept_tokens), (4, 2, 208));
        assert!(s.over(Some(10)));
        let s = select(&history, Some(0));
        assert_eq!(s.start, 4);
        // A single turn is never dropped.
        let s = select(&[user(&text(1_000))], Some(1));
        assert_eq!((s.start, s.dropped_turns), (0, 0));
        assert_eq!(select(&[], Some(1)), Selection::default());
    }

    #[test]
    fn tool_calls_stay_with_their_results() {
        // Turn 1: a call and its (large) result; turn 2: the current prompt.
        let history = vec![
            user("read it"),
            call("c1", "{}"),
            result("c1", &text(500)),
            assistant("done"),
            user("and now?"),
        ];
        // Too small for turn 1: all of it goes, never the call alone.
        let s = select(&history, Some(100));
        assert_eq!((s.start, s.dropped_turns), (4, 1));
        // The current turn keeps its own calls and results, whatever the budget.
        let mut current = history.clone();
        current.extend([call("c2", "{}"), result("c2", &text(500))]);
        let s = select(&current, Some(1));
        assert_eq!(s.start, 4);
        assert_eq!(current.len() - s.start, 3);
    }

    #[test]
    fn a_history_without_a_leading_user_message_drops_that_part_first() {
        let history = vec![assistant(&text(100)), user("hi"), assistant("hello")];
        let s = select(&history, Some(50));
        assert_eq!((s.start, s.dropped_turns), (1, 1));
        assert_eq!(select(&history, None).start, 0);
    }

    #[test]
    fn shrinking_halves_the_older_part_and_drops_at_least_one_turn() {
        // Ten turns of 208 tokens; all sent.
        let history: Vec<_> = (0..10)
            .flat_map(|_| [user(&text(100)), assistant(&text(100))])
            .collect();
        let first = select(&history, None);
        let budget = shrink(&history, &first).unwrap();
        // Current 208 + half of 9 × 208.
        assert_eq!(budget, 208 + 9 * 208 / 2);
        let second = select(&history, Some(budget));
        assert_eq!(second.dropped_turns, 5);
        // Two older turns: halving keeps one, "one fewer" agrees.
        let two = select(&history, Some(3 * 208));
        assert_eq!(two.dropped_turns, 7);
        let next = select(&history, shrink(&history, &two));
        assert_eq!(next.dropped_turns, 8);
        // One older turn, smaller than the halved part would allow: it
        // still goes.
        let one = select(&history, Some(2 * 208));
        let next = select(&history, shrink(&history, &one));
        assert_eq!((next.dropped_turns, next.start), (9, 18));
        // Only the current turn left: nothing more to drop.
        assert_eq!(shrink(&history, &next), None);
    }

    #[test]
    fn notes_say_what_was_dropped_and_why() {
        let s = Selection {
            start: 6,
            dropped_turns: 3,
            dropped_tokens: 41_234,
            kept_tokens: 80_000,
            current_tokens: 1_000,
        };
        assert_eq!(
            dropped_note(&s, 128_000, "openai/gpt-4.1"),
            "context: dropped the 3 oldest turns (≈41k tokens) to fit the 128k window of openai/gpt-4.1"
        );
        let one = Selection {
            dropped_turns: 1,
            dropped_tokens: 950,
            ..s
        };
        assert_eq!(
            dropped_note(&one, 0, "mock/m"),
            "context: left out the oldest turn (≈950 tokens) to fit what mock/m accepts"
        );
        assert_eq!(
            retry_note(&one, "mock/m"),
            "context: mock/m says the conversation is too long; retrying without the oldest turn (≈950 tokens)"
        );
        assert_eq!(approx_tokens(1_048_576), "1.0M");
    }
}
