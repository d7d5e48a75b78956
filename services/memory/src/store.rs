//! The [`MemoryStore`] trait every backend implements, and what it shares:
//! pages of notes and their cursors.

use crate::error::MemoryError;
use crate::note::{Listing, Note, ScopeKey, View, check_id};
use crate::rank::Scored;

/// A note's embedding, as stored: the model that made it and the vector,
/// scaled to unit length.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    pub model: String,
    pub values: Vec<f32>,
}

/// A page of notes, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct NotePage {
    pub notes: Vec<Note>,
    /// Opaque cursor of the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// Where notes live. Implementations: [`crate::SqliteMemory`] (one
/// process, the default) and [`crate::RedisMemory`] (shared by replicas).
/// Both rank full-text matches by the same BM25 over the same terms
/// ([`crate::terms`]).
#[async_trait::async_trait]
pub trait MemoryStore: Send + Sync {
    /// Stores a new, checked note (its id is fresh) and its vector, if any,
    /// durably before returning.
    async fn insert(&self, note: &Note, vector: Option<&StoredVector>) -> Result<(), MemoryError>;
    /// The notes visible in `view` holding any of `terms`, best first by
    /// BM25 with project notes preferred ([`crate::rank::rank`]), at most
    /// `limit`.
    async fn search(
        &self,
        view: &View,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<Scored>, MemoryError>;
    /// Notes by id, in the order asked; ids that no longer exist are left
    /// out.
    async fn get(&self, ids: &[String]) -> Result<Vec<Note>, MemoryError>;
    /// Notes by last update, newest first (ties: greater id first).
    async fn list(
        &self,
        listing: &Listing,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<NotePage, MemoryError>;
    /// Removes note `id` if `owner` owns it and `view` (when given) sees
    /// it, and returns it; otherwise [`MemoryError::NotFound`].
    async fn delete(&self, owner: &str, id: &str, view: Option<&View>)
    -> Result<Note, MemoryError>;
    /// A number that changes whenever a note of `scope` is added or
    /// removed (vector caches compare it).
    async fn generation(&self, scope: &ScopeKey) -> Result<u64, MemoryError>;
    /// Every stored vector of `model` in `scope`: (note id, unit vector).
    async fn vectors(
        &self,
        scope: &ScopeKey,
        model: &str,
    ) -> Result<Vec<(String, Vec<f32>)>, MemoryError>;
    /// Proves the storage can be used (opens it, reaches it).
    async fn check(&self) -> Result<(), MemoryError>;
}

/// `<updated_at_ms>:<id>` of the last note of a page: the next page holds
/// what sorts after it.
pub(crate) fn cursor_after(note: &Note) -> String {
    format!("{}:{}", note.updated_at_ms, note.id)
}

pub(crate) fn parse_cursor(cursor: &str) -> Result<(i64, String), MemoryError> {
    let invalid = || {
        MemoryError::Invalid(format!(
            "invalid cursor {:?}",
            cursor.chars().take(80).collect::<String>()
        ))
    };
    let (ms, id) = cursor.split_once(':').ok_or_else(invalid)?;
    let ms = ms.parse().map_err(|_| invalid())?;
    check_id(id).map_err(|_| invalid())?;
    Ok((ms, id.to_owned()))
}

/// Vector bytes as stored: f32 little-endian.
pub(crate) fn vector_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn vector_from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Tags as stored: a JSON array.
pub(crate) fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn tags_from_json(json: &str) -> Result<Vec<String>, MemoryError> {
    serde_json::from_str(json).map_err(|e| MemoryError::Corrupt(format!("tags {json:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_bad_lengths_are_refused() {
        let v = vec![0.5_f32, -1.25, 3.0];
        assert_eq!(vector_from_bytes(&vector_bytes(&v)), Some(v));
        assert_eq!(vector_from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn cursors_parse() {
        assert_eq!(parse_cursor("12:abc").unwrap(), (12, "abc".to_owned()));
        assert!(parse_cursor("x:abc").is_err());
        assert!(parse_cursor("12").is_err());
        assert!(parse_cursor("12:../x").is_err());
    }
}
