//! Thinking signatures: opaque tokens a provider attaches to its reasoning
//! and wants back verbatim on the next request.
//!
//! The shared history keeps one `Thinking { text, signature }` per assistant
//! message (the agent loop concatenates the signature fragments of a reply),
//! so each format encodes what it needs into that one string:
//! - Anthropic: the block's signature itself (base64, no `:` or `;`);
//! - Gemini: a `thoughtSignature` belongs to one part of the reply, so each
//!   becomes a record `<target>:<signature>;` where the target is `r` (the
//!   thought part), `t` (the text part) or `c<k>` (the k-th function call),
//!   and is put back on that part when the history is replayed.
//!
//! - OpenAI Responses: an encrypted reasoning item is a record
//!   `o:<item id>:<encrypted content>;`, replayed as a `reasoning` input item.
//!
//! A signature of one format is never sent to the other provider: it would
//! not verify there.

/// Whether `signature` is an Anthropic one (and not a Gemini record).
pub(crate) fn is_anthropic(signature: &str) -> bool {
    !signature.is_empty() && !signature.contains([':', ';'])
}

/// The record of one encrypted OpenAI reasoning item.
pub(crate) fn openai_record(item_id: &str, encrypted: &str) -> String {
    format!("o:{item_id}:{encrypted};")
}

/// The encrypted reasoning items in `signature`, as (item id, content);
/// anything else is ignored.
pub(crate) fn openai_items(signature: &str) -> impl Iterator<Item = (&str, &str)> {
    signature.split_terminator(';').filter_map(|record| {
        let (id, encrypted) = record.strip_prefix("o:")?.split_once(':')?;
        (!id.is_empty() && !encrypted.is_empty()).then_some((id, encrypted))
    })
}

/// The part of a Gemini reply a thought signature came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeminiTarget {
    Thought,
    Text,
    Call(u32),
}

/// One signature record, as emitted in a `ThinkingDelta`.
pub(crate) fn gemini_record(target: GeminiTarget, signature: &str) -> String {
    match target {
        GeminiTarget::Thought => format!("r:{signature};"),
        GeminiTarget::Text => format!("t:{signature};"),
        GeminiTarget::Call(k) => format!("c{k}:{signature};"),
    }
}

/// The Gemini signatures of one assistant message, by target.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct GeminiSignatures<'a> {
    pub thought: Option<&'a str>,
    pub text: Option<&'a str>,
    pub calls: Vec<(u32, &'a str)>,
}

impl<'a> GeminiSignatures<'a> {
    /// Reads the records in `signature`; anything else (an Anthropic
    /// signature, garbage) is ignored.
    pub(crate) fn add(&mut self, signature: &'a str) {
        for record in signature.split_terminator(';') {
            let Some((target, value)) = record.split_once(':') else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            match target {
                "r" => self.thought = Some(value),
                "t" => self.text = Some(value),
                _ => {
                    if let Some(k) = target.strip_prefix('c').and_then(|k| k.parse().ok()) {
                        self.calls.push((k, value));
                    }
                }
            }
        }
    }

    pub(crate) fn call(&self, k: u32) -> Option<&'a str> {
        self.calls.iter().find(|(i, _)| *i == k).map(|(_, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_records_round_trip_and_are_neither_anthropic_nor_gemini() {
        let joined = openai_record("rs_1", "gAAAA+b/c=") + &openai_record("rs_2", "zz");
        let items: Vec<_> = openai_items(&joined).collect();
        assert_eq!(items, [("rs_1", "gAAAA+b/c="), ("rs_2", "zz")]);
        assert!(!is_anthropic(&joined));
        let mut gemini = GeminiSignatures::default();
        gemini.add(&joined);
        assert_eq!(gemini, GeminiSignatures::default());
        assert_eq!(openai_items("EqQBsignature").count(), 0);
    }

    #[test]
    fn gemini_records_round_trip_and_anthropic_ones_are_told_apart() {
        let joined = [
            gemini_record(GeminiTarget::Call(0), "Cs0B+/=="),
            gemini_record(GeminiTarget::Text, "AY89a18i"),
            gemini_record(GeminiTarget::Thought, "Zm9v"),
        ]
        .concat();
        let mut parsed = GeminiSignatures::default();
        parsed.add(&joined);
        parsed.add("EqQBCgIYAhIM1gbcDa9GJwZA2b3h");
        assert_eq!(
            parsed,
            GeminiSignatures {
                thought: Some("Zm9v"),
                text: Some("AY89a18i"),
                calls: vec![(0, "Cs0B+/==")],
            }
        );
        assert_eq!(parsed.call(0), Some("Cs0B+/=="));
        assert_eq!(parsed.call(1), None);
        assert!(is_anthropic("EqQBCgIYAhIM1gbcDa9GJwZA2b3h"));
        assert!(!is_anthropic(&joined));
        assert!(!is_anthropic(""));
    }
}
