//! Backends for the tests, and a deterministic embedder.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use openheim_memory::{
    DEFAULT_OWNER, Embedder, Memory, MemoryStore, NewNote, Note, Purpose, RedisMemory,
    RedisMemoryOptions, Scope, SqliteMemory, View,
};
pub use openheim_test_redis::RedisServer;

/// A store and what backs it (kept alive for the test).
pub struct Backend {
    pub store: Arc<dyn MemoryStore>,
    pub kind: Kind,
}

pub enum Kind {
    Sqlite(tempfile::TempDir),
    Redis(RedisServer),
}

impl Backend {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            store: Arc::new(SqliteMemory::new(dir.path().join("memory.db"))),
            kind: Kind::Sqlite(dir),
        }
    }

    pub fn redis() -> Self {
        let server = RedisServer::start();
        Self {
            store: Arc::new(redis_store(&server)),
            kind: Kind::Redis(server),
        }
    }

    /// A second store over the same data, as a later process (or another
    /// replica) would open it.
    pub fn reopen(&self) -> Arc<dyn MemoryStore> {
        match &self.kind {
            Kind::Sqlite(dir) => Arc::new(SqliteMemory::new(dir.path().join("memory.db"))),
            Kind::Redis(server) => Arc::new(redis_store(server)),
        }
    }

    pub fn memory(&self) -> Memory {
        Memory::new(Arc::clone(&self.store), None)
    }

    pub fn memory_with(&self, embedder: Arc<dyn Embedder>) -> Memory {
        Memory::new(Arc::clone(&self.store), Some(embedder))
    }
}

pub fn redis_store(server: &RedisServer) -> RedisMemory {
    RedisMemory::open(&RedisMemoryOptions {
        url: server.url().to_owned(),
        prefix: server.prefix().to_owned(),
    })
    .unwrap()
}

pub fn user_note(text: &str) -> NewNote {
    NewNote {
        owner: DEFAULT_OWNER.into(),
        scope: Scope::User,
        project: None,
        text: text.into(),
        tags: Vec::new(),
    }
}

pub fn project_note(project: &str, text: &str) -> NewNote {
    NewNote {
        scope: Scope::Project,
        project: Some(project.into()),
        ..user_note(text)
    }
}

pub fn view(project: &str) -> View {
    View::new(DEFAULT_OWNER, Some(project)).unwrap()
}

pub async fn remember(memory: &Memory, new: NewNote) -> Note {
    memory.remember(new).await.unwrap()
}

/// Texts of a search's hits, best first.
pub async fn found(memory: &Memory, view: &View, query: &str) -> Vec<String> {
    memory
        .search(view, query, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.note.text)
        .collect()
}

/// A stand-in for an embedding model: a bag of words over a small
/// vocabulary in which synonyms share a dimension, so "automobile" is
/// close to "car" although they share no letters. Can be made to fail.
pub struct SynonymEmbedder {
    concepts: HashMap<&'static str, usize>,
    pub failing: AtomicBool,
}

impl SynonymEmbedder {
    pub fn new() -> Arc<Self> {
        let groups: &[&[&str]] = &[
            &["car", "automobile", "vehicle"],
            &["invoice", "bill", "receipt"],
            &["fast", "quick", "speedy"],
            &["database", "postgres", "sql"],
            &["deploy", "release", "ship"],
        ];
        let mut concepts = HashMap::new();
        for (i, group) in groups.iter().enumerate() {
            for word in *group {
                concepts.insert(*word, i);
            }
        }
        Arc::new(Self {
            concepts,
            failing: AtomicBool::new(false),
        })
    }
}

#[async_trait::async_trait]
impl Embedder for SynonymEmbedder {
    fn model(&self) -> &str {
        "test/synonyms"
    }

    async fn embed(
        &self,
        texts: Vec<String>,
        _purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, openheim_memory::EmbedError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(openheim_memory::EmbedError::new(
                "the embedding service is down",
            ));
        }
        Ok(texts
            .iter()
            .map(|text| {
                let mut vector = vec![0.0_f32; 8];
                for word in text.to_lowercase().split(|c: char| !c.is_alphanumeric()) {
                    if let Some(&i) = self.concepts.get(word) {
                        vector[i] += 1.0;
                    }
                }
                vector
            })
            .collect())
    }
}
