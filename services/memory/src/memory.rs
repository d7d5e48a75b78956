//! [`Memory`]: the operations callers use (remember, search, list,
//! forget) over any [`MemoryStore`], with the rules that hold for every
//! backend: checking notes, embedding them when an [`Embedder`] is set, and
//! fusing the full-text and semantic rankings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::MemoryError;
use crate::note::{
    Listing, MAX_SEARCH_LIMIT, NewNote, Note, Scope, ScopeKey, View, check_new, new_id, now_ms,
};
use crate::rank::{self, Scored};
use crate::store::{MemoryStore, NotePage, StoredVector};
use crate::terms;

/// What a text is embedded for: some providers embed documents and queries
/// differently (Gemini's task types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Document,
    Query,
}

/// Turns texts into vectors (llm-proxy's `Embed`, in the agent loop).
#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    /// `provider/model`, stored with every vector it makes: vectors of
    /// another model are never compared with its own.
    fn model(&self) -> &str;
    /// One vector per text, in order.
    async fn embed(
        &self,
        texts: Vec<String>,
        purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, crate::EmbedError>;
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub note: Note,
    /// Relevance, higher is better; comparable only within one search.
    pub score: f64,
}

/// Candidates fetched per ranking before fusion, per result asked for.
const CANDIDATES_PER_RESULT: usize = 4;
/// At least this many candidates per ranking before fusion.
const MIN_CANDIDATES: usize = 40;

/// The vectors of one scope as last read, and the generation they belong to.
struct CachedVectors {
    generation: u64,
    model: String,
    vectors: Arc<Vec<(String, Vec<f32>)>>,
}

/// The long-term memory over one store.
pub struct Memory {
    store: Arc<dyn MemoryStore>,
    embedder: Option<Arc<dyn Embedder>>,
    /// Vectors per scope, reloaded when the scope's generation changes.
    vectors: Mutex<HashMap<ScopeKey, CachedVectors>>,
}

impl Memory {
    pub fn new(store: Arc<dyn MemoryStore>, embedder: Option<Arc<dyn Embedder>>) -> Self {
        Self {
            store,
            embedder,
            vectors: Mutex::new(HashMap::new()),
        }
    }

    /// Checks and stores a note. With an embedder, the note's vector is
    /// stored too; when embedding fails the note is stored without one
    /// (full-text search still finds it) and the failure is logged.
    pub async fn remember(&self, new: NewNote) -> Result<Note, MemoryError> {
        let (text, tags) = check_new(&new)?;
        let at = now_ms();
        let note = Note {
            id: new_id(),
            text,
            tags,
            project: match new.scope {
                Scope::Project => new.project.unwrap_or_default(),
                Scope::User => String::new(),
            },
            owner: new.owner,
            scope: new.scope,
            created_at_ms: at,
            updated_at_ms: at,
        };
        let vector = self.embed_note(&note).await;
        self.store.insert(&note, vector.as_ref()).await?;
        Ok(note)
    }

    /// The notes of `view` most relevant to `query`, best first, at most
    /// `limit` (clamped to 1..=[`MAX_SEARCH_LIMIT`]).
    pub async fn search(
        &self,
        view: &View,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Hit>, MemoryError> {
        let limit = limit.clamp(1, MAX_SEARCH_LIMIT);
        let terms = terms::query_terms(query);
        let query_vector = self.embed_query(query).await;
        if terms.is_empty() && query_vector.is_none() {
            return Err(MemoryError::Invalid(
                "the query has no words to search for".into(),
            ));
        }
        let ranked = match query_vector {
            None => self.store.search(view, &terms, limit).await?,
            Some(vector) => {
                let candidates = (limit * CANDIDATES_PER_RESULT).max(MIN_CANDIDATES);
                let full_text = match terms.is_empty() {
                    true => Vec::new(),
                    false => self.store.search(view, &terms, candidates).await?,
                };
                let semantic = self.semantic(view, &vector, candidates).await?;
                rank::fuse(&[full_text, semantic])
            }
        };
        let ranked: Vec<Scored> = ranked.into_iter().take(limit).collect();
        let ids: Vec<String> = ranked.iter().map(|s| s.id.clone()).collect();
        let mut notes: HashMap<String, Note> = self
            .store
            .get(&ids)
            .await?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        Ok(ranked
            .into_iter()
            .filter_map(|s| {
                notes.remove(&s.id).map(|note| Hit {
                    note,
                    score: s.score,
                })
            })
            .collect())
    }

    /// A page of notes, newest first.
    pub async fn list(
        &self,
        listing: &Listing,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<NotePage, MemoryError> {
        self.store.list(listing, limit.max(1), cursor).await
    }

    /// Removes a note of `owner`; with `view`, only one that view sees.
    pub async fn forget(
        &self,
        owner: &str,
        id: &str,
        view: Option<&View>,
    ) -> Result<Note, MemoryError> {
        self.store.delete(owner, id, view).await
    }

    /// Proves the storage can be used.
    pub async fn check(&self) -> Result<(), MemoryError> {
        self.store.check().await
    }

    async fn embed_note(&self, note: &Note) -> Option<StoredVector> {
        let embedder = self.embedder.as_ref()?;
        let text = terms::indexed_text(&note.text, &note.tags);
        match embedder.embed(vec![text], Purpose::Document).await {
            Ok(mut vectors) if vectors.len() == 1 => {
                let mut values = vectors.pop().unwrap_or_default();
                rank::normalise(&mut values);
                Some(StoredVector {
                    model: embedder.model().to_owned(),
                    values,
                })
            }
            Ok(vectors) => {
                tracing::warn!(
                    got = vectors.len(),
                    "the embedder answered one text with several vectors; the note is stored without one"
                );
                None
            }
            Err(error) => {
                tracing::warn!(%error, "cannot embed the note; it is stored without a vector and found by full-text search only");
                None
            }
        }
    }

    async fn embed_query(&self, query: &str) -> Option<Vec<f32>> {
        let embedder = self.embedder.as_ref()?;
        if query.trim().is_empty() {
            return None;
        }
        match embedder.embed(vec![query.to_owned()], Purpose::Query).await {
            Ok(mut vectors) if vectors.len() == 1 => {
                let mut values = vectors.pop().unwrap_or_default();
                rank::normalise(&mut values);
                Some(values)
            }
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "cannot embed the query; searching by full text only");
                None
            }
        }
    }

    /// The visible notes closest to `query` by cosine similarity (above
    /// zero), best first, at most `limit`.
    async fn semantic(
        &self,
        view: &View,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<Scored>, MemoryError> {
        let mut scored = Vec::new();
        for scope in view.scope_keys() {
            let vectors = self.scope_vectors(&scope).await?;
            scored.extend(vectors.iter().filter_map(|(id, vector)| {
                let similarity = rank::cosine(query, vector);
                (similarity > 0.0).then(|| Scored {
                    id: id.clone(),
                    score: f64::from(similarity),
                    project: scope.is_project(),
                })
            }));
        }
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.id.cmp(&a.id)));
        scored.truncate(limit);
        Ok(scored)
    }

    async fn scope_vectors(
        &self,
        scope: &ScopeKey,
    ) -> Result<Arc<Vec<(String, Vec<f32>)>>, MemoryError> {
        let Some(embedder) = &self.embedder else {
            return Ok(Arc::default());
        };
        let model = embedder.model();
        let generation = self.store.generation(scope).await?;
        {
            let cache = self.vectors.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cached) = cache.get(scope)
                && cached.generation == generation
                && cached.model == model
            {
                return Ok(Arc::clone(&cached.vectors));
            }
        }
        let vectors = Arc::new(self.store.vectors(scope, model).await?);
        let mut cache = self.vectors.lock().unwrap_or_else(PoisonError::into_inner);
        cache.insert(
            scope.clone(),
            CachedVectors {
                generation,
                model: model.to_owned(),
                vectors: Arc::clone(&vectors),
            },
        );
        Ok(vectors)
    }
}
