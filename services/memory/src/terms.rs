//! The one tokenizer of the memory, used for notes and queries by both
//! backends, so a query means the same everywhere: words are split on
//! anything that is not a letter or a digit (and at camelCase humps, keeping
//! the whole word too), lower-cased, stripped of common English stopwords
//! and stemmed (Snowball English: "tests", "testing" → "test").

use std::collections::HashMap;
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

/// Longer tokens (hashes, base64) are not indexed.
const MAX_TERM_CHARS: usize = 48;
/// A query uses at most this many distinct terms.
pub const MAX_QUERY_TERMS: usize = 32;

/// Words too common to tell notes apart.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for",
    "from", "had", "has", "have", "having", "he", "her", "here", "him", "his", "how", "i", "if",
    "in", "into", "is", "it", "its", "just", "me", "more", "most", "my", "no", "nor", "of", "on",
    "once", "only", "or", "other", "our", "out", "over", "own", "she", "should", "so", "some",
    "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what",
    "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
    "your",
];

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// The terms of `text`, in order, repeats kept (term frequencies count).
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let parts = humps(word);
        if parts.len() > 1 {
            for part in &parts {
                push_term(&mut out, part);
            }
        }
        push_term(&mut out, word);
    }
    out
}

/// The distinct terms of a query, at most [`MAX_QUERY_TERMS`], in order.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for term in terms(query) {
        if !out.contains(&term) {
            out.push(term);
            if out.len() == MAX_QUERY_TERMS {
                break;
            }
        }
    }
    out
}

/// Term → frequency, and the number of terms (the document length BM25
/// normalises by).
pub fn frequencies(text: &str) -> (HashMap<String, u32>, u32) {
    let all = terms(text);
    let length = u32::try_from(all.len()).unwrap_or(u32::MAX);
    let mut counts: HashMap<String, u32> = HashMap::new();
    for term in all {
        *counts.entry(term).or_default() += 1;
    }
    (counts, length)
}

/// What is indexed of a note: its text and its tags.
pub fn indexed_text(text: &str, tags: &[String]) -> String {
    let mut all = String::with_capacity(text.len() + 16 * tags.len());
    all.push_str(text);
    for tag in tags {
        all.push('\n');
        all.push_str(tag);
    }
    all
}

fn push_term(out: &mut Vec<String>, word: &str) {
    if word.chars().count() > MAX_TERM_CHARS {
        return;
    }
    let lower = word.to_lowercase();
    if STOPWORDS.binary_search(&lower.as_str()).is_ok() {
        return;
    }
    let term = if lower.len() > 3 && lower.bytes().all(|b| b.is_ascii_lowercase()) {
        stemmer().stem(&lower).into_owned()
    } else {
        lower
    };
    out.push(term);
}

/// `connectionManager` → `connection`, `Manager`; `HTTPServer` → `HTTP`,
/// `Server`; a word without humps → itself.
fn humps(word: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..chars.len() {
        let (at, c) = chars[i];
        let prev = chars[i - 1].1;
        let next_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase());
        let hump = (prev.is_lowercase() && c.is_uppercase())
            || (prev.is_uppercase() && c.is_uppercase() && next_lower);
        if hump {
            parts.push(&word[start..at]);
            start = at;
        }
    }
    parts.push(&word[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn words_are_split_lowered_stemmed_and_stopwords_dropped() {
        assert_eq!(
            terms("The tests are failing in CI_pipeline.yml"),
            ["test", "fail", "ci", "pipelin", "yml"]
        );
        assert_eq!(terms("Running runs"), ["run", "run"]);
        assert_eq!(terms("port 6379, v1.2"), ["port", "6379", "v1", "2"]);
    }

    #[test]
    fn camel_case_is_split_and_kept_whole() {
        assert_eq!(
            terms("ConnectionManager"),
            ["connect", "manag", "connectionmanag"]
        );
        assert_eq!(terms("HTTPServer"), ["http", "server", "httpserver"]);
        assert_eq!(terms("utf8 sha256"), ["utf8", "sha256"]);
    }

    #[test]
    fn unicode_text_and_long_tokens() {
        assert_eq!(terms("Café naïve 東京"), ["café", "naïve", "東京"]);
        assert!(terms(&"a".repeat(100)).is_empty());
    }

    #[test]
    fn queries_are_deduplicated_and_capped() {
        assert_eq!(query_terms("test tests testing"), ["test"]);
        let long: String = (0..100).map(|i| format!("w{i}x ")).collect();
        assert_eq!(query_terms(&long).len(), MAX_QUERY_TERMS);
        assert!(
            query_terms("\"*) OR NEAR(")
                .iter()
                .all(|t| t.chars().all(char::is_alphanumeric))
        );
    }
}
