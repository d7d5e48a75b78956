//! Long-term memory of the agent loop: notes that outlive a session,
//! scoped to their owner (`user`) or to one project (`project`), found
//! again by full-text search (BM25) and, when an embedder is configured, by
//! a fusion of BM25 and cosine similarity.
//!
//! A library, not a service: agent-loop owns it (it answers the memory
//! tools inside turns and the memory RPCs of front ends). It never reads
//! the environment or the current directory; callers pass paths, URLs and
//! keys in. See `docs/memory.md`.
//!
//! Code map: [`Memory`] (the operations, backend-independent rules and
//! fusion), [`MemoryStore`] (the storage trait) with [`SqliteMemory`]
//! (embedded, FTS5) and [`RedisMemory`] (shared by replicas), `note` (what
//! a note is and its limits), `terms` (the one tokenizer), `rank` (BM25,
//! project preference, cosine, reciprocal rank fusion).

mod error;
mod memory;
mod note;
pub mod rank;
mod redis;
mod sqlite;
mod store;
pub mod terms;

pub use error::{EmbedError, MemoryError};
pub use memory::{Embedder, Hit, Memory, Purpose};
pub use note::{
    DEFAULT_OWNER, DEFAULT_SEARCH_LIMIT, Listing, MAX_NOTE_CHARS, MAX_SEARCH_LIMIT, MAX_TAG_CHARS,
    MAX_TAGS, NewNote, Note, Scope, ScopeKey, View, check_owner, check_project, utc_date,
};
pub use redis::{RedisMemory, RedisMemoryOptions};
pub use sqlite::{DEFAULT_BUSY_TIMEOUT, SqliteMemory};
pub use store::{MemoryStore, NotePage, StoredVector};
