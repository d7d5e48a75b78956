//! The assistant's reply to one LLM call, assembled from llm-proxy's
//! stream: text, thinking blocks (each with its own signature, in order,
//! redacted ones included), tool calls reassembled from their fragments.

use openheim_proto::common::v1::{StopReason, ToolCall, Usage};
use openheim_proto::llm_proxy::v1::{ThinkingDelta, ToolCallDelta};

use crate::store::{StoredBlock, StoredMessage};

/// The assistant's reply to one LLM call, as assembled from the stream.
#[derive(Default)]
pub(crate) struct Reply {
    pub(crate) text: String,
    /// Thinking blocks in the order they came, each with its own signature
    /// (a provider may send several, and redacted ones).
    pub(crate) thinking: Vec<ThinkingBlock>,
    pub(crate) calls: Vec<ToolCall>,
    pub(crate) stop: StopReason,
    pub(crate) usage: Usage,
    /// Provider and model that served the call, as llm-proxy announced.
    pub(crate) served: (String, String),
    pub(crate) cancelled: bool,
}

/// One thinking block of a reply.
#[derive(Default)]
pub(crate) struct ThinkingBlock {
    pub(crate) text: String,
    pub(crate) signature: String,
    pub(crate) redacted: bool,
}

impl Reply {
    /// Adds a thinking fragment: to the current block, or as the start of
    /// a new one when the provider says so.
    pub(crate) fn add_thinking(&mut self, delta: ThinkingDelta) {
        let reuse = self
            .thinking
            .last()
            .is_some_and(|b| !b.redacted && b.text.is_empty() && b.signature.is_empty());
        if self.thinking.is_empty() || (delta.new_block && !reuse) {
            self.thinking.push(ThinkingBlock::default());
        }
        if let Some(block) = self.thinking.last_mut() {
            block.text.push_str(&delta.text);
            block.signature.push_str(&delta.signature);
            block.redacted |= delta.redacted;
        }
        // A redacted block is whole in its one fragment.
        if delta.redacted {
            self.thinking.push(ThinkingBlock::default());
        }
    }

    pub(crate) fn into_message(self) -> Option<StoredMessage> {
        let mut content = Vec::new();
        for block in self.thinking {
            if !block.text.is_empty() || !block.signature.is_empty() {
                content.push(StoredBlock::Thinking {
                    text: block.text,
                    signature: block.signature,
                    redacted: block.redacted,
                });
            }
        }
        if !self.text.is_empty() {
            content.push(StoredBlock::Text { text: self.text });
        }
        for call in self.calls {
            content.push(StoredBlock::ToolCall {
                id: call.id,
                name: call.name,
                arguments: call.arguments_json,
            });
        }
        (!content.is_empty()).then_some(StoredMessage::Assistant { content })
    }
}

/// Reassembles streamed tool calls: `index` picks the call, the first
/// fragment of an index carries its id and name.
pub(crate) fn apply_tool_delta(calls: &mut Vec<ToolCall>, delta: ToolCallDelta) {
    let index = delta.index as usize;
    // Indexes come from the provider; never let one allocate unbounded memory.
    const MAX_CALLS_PER_REPLY: usize = 128;
    if index >= MAX_CALLS_PER_REPLY {
        tracing::warn!(index, "ignoring tool call with an absurd index");
        return;
    }
    if calls.len() <= index {
        calls.resize_with(index + 1, ToolCall::default);
    }
    let call = &mut calls[index];
    if !delta.id.is_empty() {
        call.id = delta.id;
    }
    if !delta.name.is_empty() {
        call.name = delta.name;
    }
    call.arguments_json.push_str(&delta.arguments_fragment);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_fragments_reassemble_by_index() {
        let mut calls = Vec::new();
        let delta = |index, id: &str, name: &str, args: &str| ToolCallDelta {
            index,
            id: id.into(),
            name: name.into(),
            arguments_fragment: args.into(),
        };
        apply_tool_delta(&mut calls, delta(0, "a", "read_file", "{\"pa"));
        apply_tool_delta(&mut calls, delta(1, "b", "write_file", "{}"));
        apply_tool_delta(&mut calls, delta(0, "", "", "th\":1}"));
        apply_tool_delta(&mut calls, delta(100_000, "x", "y", "{}"));
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments_json, "{\"path\":1}");
        assert_eq!(calls[1].name, "write_file");
    }

    #[test]
    fn thinking_blocks_are_kept_apart_in_order_with_redacted_ones() {
        let delta = |text: &str, signature: &str, new_block, redacted| ThinkingDelta {
            text: text.into(),
            signature: signature.into(),
            new_block,
            redacted,
        };
        let mut reply = Reply::default();
        reply.add_thinking(delta("", "", true, false));
        reply.add_thinking(delta("first", "", false, false));
        reply.add_thinking(delta("", "SIG1", false, false));
        reply.add_thinking(delta("", "DATA", true, true));
        reply.add_thinking(delta("", "", true, false));
        reply.add_thinking(delta("second", "SIG2", false, false));
        // A provider that never says where blocks start: one block.
        let mut single = Reply::default();
        single.add_thinking(delta("a", "", false, false));
        single.add_thinking(delta("b", "r:x;", false, false));
        let blocks = |reply: Reply| match reply.into_message() {
            Some(StoredMessage::Assistant { content }) => content,
            other => panic!("{other:?}"),
        };
        let thinking = |text: &str, signature: &str, redacted| StoredBlock::Thinking {
            text: text.into(),
            signature: signature.into(),
            redacted,
        };
        assert_eq!(
            blocks(reply),
            [
                thinking("first", "SIG1", false),
                thinking("", "DATA", true),
                thinking("second", "SIG2", false),
            ]
        );
        assert_eq!(blocks(single), [thinking("ab", "r:x;", false)]);
    }
}
