//! Scripted replies of the mock LLM, independent of the wire format they are rendered in
//! (each format's module renders a [`StreamPlan`]).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// `created` stamped on every chunk. A constant keeps rendered streams byte-for-byte stable so
/// tests can compare whole SSE bodies or snapshot them.
pub const CREATED: u64 = 1_700_000_000;

/// Byte length of each `function.arguments` fragment. Small on purpose: real providers split
/// arguments mid-token, so clients must concatenate fragments before parsing.
pub(crate) const ARGUMENT_FRAGMENT_BYTES: usize = 5;

/// Byte length of each `delta.content` piece, for the same reason as the argument fragments.
pub(crate) const CONTENT_PIECE_BYTES: usize = 8;

/// Token counts reported in the usage chunk when a reply sets none.
pub(crate) const DEFAULT_USAGE: Usage = Usage {
    prompt_tokens: 10,
    completion_tokens: 5,
    cached_tokens: 0,
};

type DynamicFn = dyn Fn(&Value) -> Reply + Send + Sync;

/// One tool call the mock asks the client to make.
#[derive(Debug, Clone)]
pub struct ToolCallSpec {
    pub(crate) name: String,
    /// Already-serialised arguments, so a test can also send deliberately broken JSON.
    pub(crate) arguments: String,
    pub(crate) id: Option<String>,
}

impl ToolCallSpec {
    /// A call of `name` with `arguments` serialised as the JSON the model would produce.
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        Self {
            name: name.into(),
            arguments: arguments.to_string(),
            id: None,
        }
    }

    /// A call whose arguments string is sent verbatim, e.g. truncated JSON to test a client's
    /// handling of a model that emits garbage.
    pub fn raw(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            arguments: arguments.into(),
            id: None,
        }
    }

    /// Uses a fixed call id instead of the mock's `call_N` counter.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Token counts of the usage chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
}

/// What the mock answers to one request.
pub(crate) enum ReplyBody {
    Stream {
        text: Option<String>,
        thinking: Option<String>,
        tool_calls: Vec<ToolCallSpec>,
        finish_reason: Option<String>,
        usage: Option<Usage>,
        stream_error: Option<String>,
    },
    HttpError {
        status: u16,
        body: Value,
        retry_after: Option<String>,
    },
    Dynamic(Arc<DynamicFn>),
}

/// Timing and fault modifiers that apply to any reply kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplyOptions {
    pub(crate) delay_ms: Option<u64>,
    pub(crate) chunk_delay_ms: Option<u64>,
    pub(crate) cut_after: Option<usize>,
    pub(crate) split_thinking: Option<bool>,
}

impl ReplyOptions {
    /// Options set on the reply a dynamic closure returned win; unset ones fall back to those
    /// set on the `Reply::dynamic` wrapper, so both places can carry modifiers.
    fn or(self, outer: ReplyOptions) -> ReplyOptions {
        ReplyOptions {
            delay_ms: self.delay_ms.or(outer.delay_ms),
            chunk_delay_ms: self.chunk_delay_ms.or(outer.chunk_delay_ms),
            cut_after: self.cut_after.or(outer.cut_after),
            split_thinking: self.split_thinking.or(outer.split_thinking),
        }
    }
}

/// A scripted answer of the mock LLM; build one per expected request.
pub struct Reply {
    pub(crate) body: ReplyBody,
    pub(crate) options: ReplyOptions,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Reply");
        match &self.body {
            ReplyBody::Stream {
                text,
                thinking,
                tool_calls,
                finish_reason,
                usage,
                stream_error,
            } => s
                .field("text", text)
                .field("thinking", thinking)
                .field("tool_calls", tool_calls)
                .field("finish_reason", finish_reason)
                .field("usage", usage)
                .field("stream_error", stream_error),
            ReplyBody::HttpError {
                status,
                body,
                retry_after,
            } => s
                .field("status", status)
                .field("body", body)
                .field("retry_after", retry_after),
            ReplyBody::Dynamic(_) => s.field("dynamic", &"<closure>"),
        };
        s.field("options", &self.options).finish()
    }
}

impl Reply {
    fn new(body: ReplyBody) -> Self {
        Self {
            body,
            options: ReplyOptions::default(),
        }
    }

    /// A streamed assistant text answer finishing with `stop`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(ReplyBody::Stream {
            text: Some(text.into()),
            thinking: None,
            tool_calls: Vec::new(),
            finish_reason: None,
            usage: None,
            stream_error: None,
        })
    }

    /// A streamed answer asking for one or more tool calls, finishing with `tool_calls`.
    pub fn tool_calls(calls: Vec<ToolCallSpec>) -> Self {
        Self::new(ReplyBody::Stream {
            text: None,
            thinking: None,
            tool_calls: calls,
            finish_reason: None,
            usage: None,
            stream_error: None,
        })
    }

    /// A reply computed from the request body when it arrives, e.g. to echo a tool result.
    pub fn dynamic(f: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Self {
        Self::new(ReplyBody::Dynamic(Arc::new(f)))
    }

    /// A non-streaming HTTP error with `body` as its JSON payload. Panics if `status` is not a
    /// valid HTTP status code, since that is a mistake in the test's script.
    pub fn http_error(status: u16, body: Value) -> Self {
        assert!(
            http::StatusCode::from_u16(status).is_ok(),
            "invalid HTTP status {status} in a mock LLM reply"
        );
        Self::new(ReplyBody::HttpError {
            status,
            body,
            retry_after: None,
        })
    }

    /// Adds assistant text to a streamed reply (sent before any tool calls, as providers do).
    pub fn with_text(mut self, new_text: impl Into<String>) -> Self {
        if let ReplyBody::Stream { text, .. } = &mut self.body {
            *text = Some(new_text.into());
        }
        self
    }

    /// Adds model reasoning before the answer, in the formats that stream it: an Anthropic
    /// `thinking` block with a signature, a Gemini `thought` part (with a thought signature),
    /// a Responses reasoning summary. Chat Completions has no field for it and omits it.
    pub fn with_thinking(mut self, new_thinking: impl Into<String>) -> Self {
        if let ReplyBody::Stream { thinking, .. } = &mut self.body {
            *thinking = Some(new_thinking.into());
        }
        self
    }

    /// Anthropic: sends the thinking as two signed `thinking` blocks with a
    /// `redacted_thinking` block between them, as models do when part of the reasoning is
    /// flagged; all three must come back, in order, with the follow-up of a tool call.
    pub fn with_split_thinking(mut self) -> Self {
        self.options.split_thinking = Some(true);
        self
    }

    /// Ends the stream after its content with the format's transient error event (Chat: an
    /// `error` chunk; Anthropic: `event: error` `overloaded_error`; Gemini: an `error` chunk
    /// `UNAVAILABLE`; Responses: `response.failed`), instead of finishing.
    pub fn with_stream_error(mut self, message: impl Into<String>) -> Self {
        if let ReplyBody::Stream { stream_error, .. } = &mut self.body {
            *stream_error = Some(message.into());
        }
        self
    }

    /// Overrides the finish reason, e.g. `"length"` for a truncated answer. The Chat names
    /// `stop`, `length`, `tool_calls` and `content_filter` are translated for the other
    /// formats (`length` → Anthropic `max_tokens`, Gemini `MAX_TOKENS`, Responses
    /// `incomplete`); any other value is sent verbatim.
    pub fn with_finish_reason(mut self, reason: impl Into<String>) -> Self {
        if let ReplyBody::Stream { finish_reason, .. } = &mut self.body {
            *finish_reason = Some(reason.into());
        }
        self
    }

    /// Token counts for the usage chunk (sent only if the request asked for usage).
    pub fn with_usage(mut self, prompt: u64, completion: u64, cached: u64) -> Self {
        if let ReplyBody::Stream { usage, .. } = &mut self.body {
            *usage = Some(Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                cached_tokens: cached,
            });
        }
        self
    }

    /// Adds a `Retry-After` header to an `http_error` reply.
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        if let ReplyBody::HttpError { retry_after, .. } = &mut self.body {
            *retry_after = Some(value.into());
        }
        self
    }

    /// Waits `ms` before sending the response head, to test client timeouts and cancellation.
    pub fn with_delay_ms(mut self, ms: u64) -> Self {
        self.options.delay_ms = Some(ms);
        self
    }

    /// Waits `ms` between SSE events, to keep a stream open while a test acts on it.
    pub fn chunk_delay_ms(mut self, ms: u64) -> Self {
        self.options.chunk_delay_ms = Some(ms);
        self
    }

    /// Aborts the connection after `n_chunks` SSE events, before the finish chunk and
    /// `[DONE]`, like a provider or proxy dying mid-stream.
    pub fn cut_after(mut self, n_chunks: usize) -> Self {
        self.options.cut_after = Some(n_chunks);
        self
    }

    /// Runs a dynamic reply's closure (repeatedly, if it returns another dynamic reply) so the
    /// server only ever deals with concrete replies.
    pub(crate) fn resolve(self, request: &Value) -> Reply {
        let mut reply = self;
        while let ReplyBody::Dynamic(f) = &reply.body {
            let inner = f(request);
            reply = Reply {
                options: inner.options.or(reply.options),
                body: inner.body,
            };
        }
        reply
    }
}

/// Everything needed to render one streamed reply into SSE events.
pub(crate) struct StreamPlan<'a> {
    /// The request's number (1-based), for ids that differ per reply.
    pub(crate) n: usize,
    pub(crate) completion_id: &'a str,
    pub(crate) model: &'a str,
    pub(crate) include_usage: bool,
    pub(crate) text: Option<&'a str>,
    pub(crate) thinking: Option<&'a str>,
    /// Anthropic: the thinking as two signed blocks around a redacted one.
    pub(crate) split_thinking: bool,
    /// Tool calls with their ids already assigned.
    pub(crate) tool_calls: Vec<(String, &'a ToolCallSpec)>,
    pub(crate) finish_reason: Option<&'a str>,
    pub(crate) usage: Option<Usage>,
    /// A transient provider error sent after the content instead of the finish events.
    pub(crate) stream_error: Option<&'a str>,
}

impl StreamPlan<'_> {
    /// The usage to report: the scripted one or the default.
    pub(crate) fn usage_or_default(&self) -> Usage {
        self.usage.unwrap_or(DEFAULT_USAGE)
    }
}

/// Splits `s` into pieces of at most `max` bytes (more if one char is wider) without breaking
/// a UTF-8 character.
pub(crate) fn split_at_char_boundaries(s: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let mut end = (start + max).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&s[start..end]);
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_keeps_multibyte_chars_whole() {
        let pieces = split_at_char_boundaries("aé€😀bc", 2);
        assert_eq!(pieces.concat(), "aé€😀bc");
        assert!(pieces.len() > 3);
    }

    #[test]
    fn dynamic_reply_inherits_outer_options() {
        let reply = Reply::dynamic(|_| Reply::text("hi").chunk_delay_ms(3)).with_delay_ms(7);
        let resolved = reply.resolve(&json!({}));
        assert!(matches!(resolved.body, ReplyBody::Stream { .. }));
        assert_eq!(resolved.options.delay_ms, Some(7));
        assert_eq!(resolved.options.chunk_delay_ms, Some(3));
    }
}
