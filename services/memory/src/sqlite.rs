//! The embedded backend: one SQLite file (`<data_dir>/memory.db`) with an
//! FTS5 index, for a single process (or a few on one machine: WAL mode lets
//! readers and one writer share it).
//!
//! The database is opened on first use, never at construction, so a run
//! that does not touch memory does not pay for it. Each call runs on the
//! blocking pool over one connection; a failed open is not remembered, so a
//! database that was locked or unreadable is tried again on the next call.
//!
//! Schema (version 1): `notes` (the notes), `notes_fts` (FTS5 over each
//! note's terms as [`crate::terms`] makes them, so both backends search the
//! same words, and a token naming its scope, so the index itself keeps a
//! search to the visible scopes), `vectors` (embeddings per note and model)
//! and `generations` (a counter per scope, bumped by every insert and
//! delete). FTS5's `bm25()` uses the same k1 and b as [`crate::rank`]; the
//! scope column weighs nothing.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use crate::error::MemoryError;
use crate::note::{Listing, Note, Scope, ScopeKey, View, check_id};
use crate::rank::{self, PROJECT_BOOST, Scored};
use crate::store::{
    MemoryStore, NotePage, StoredVector, cursor_after, parse_cursor, tags_from_json, tags_json,
    vector_bytes, vector_from_bytes,
};
use crate::terms;

/// How long a call waits for another process's write lock.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
const SCHEMA_VERSION: i64 = 1;
/// SQLite's page cache per connection, in KiB.
const CACHE_KIB: i64 = 16 * 1024;
/// How much of the file is memory-mapped for reads.
const MMAP_BYTES: i64 = 256 * 1024 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notes (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL,
  scope TEXT NOT NULL CHECK (scope IN ('user', 'project')),
  project TEXT NOT NULL,
  scope_key TEXT NOT NULL,
  text TEXT NOT NULL,
  tags TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_by_scope ON notes (scope_key, updated_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS notes_by_owner ON notes (owner, updated_at_ms DESC, id DESC);
CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5 (scope, terms, tokenize = 'unicode61 remove_diacritics 0');
CREATE TABLE IF NOT EXISTS vectors (
  note INTEGER NOT NULL,
  model TEXT NOT NULL,
  scope_key TEXT NOT NULL,
  vector BLOB NOT NULL,
  PRIMARY KEY (note, model)
);
CREATE INDEX IF NOT EXISTS vectors_by_scope ON vectors (scope_key, model);
CREATE TABLE IF NOT EXISTS generations (
  scope_key TEXT PRIMARY KEY,
  generation INTEGER NOT NULL
);
";

const NOTE_COLUMNS: &str = "id, owner, scope, project, text, tags, created_at_ms, updated_at_ms";

/// Notes in a SQLite file.
#[derive(Clone)]
pub struct SqliteMemory {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    busy_timeout: Duration,
    /// `None` until the first call opens it (and after a failed open).
    connection: Mutex<Option<Connection>>,
}

impl SqliteMemory {
    /// A store over the file at `path`; nothing is opened or created yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_busy_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// Like [`SqliteMemory::new`], waiting at most `busy_timeout` for
    /// another process's lock.
    pub fn with_busy_timeout(path: impl Into<PathBuf>, busy_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.into(),
                busy_timeout,
                connection: Mutex::new(None),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` on the blocking pool with the open connection.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, MemoryError> + Send + 'static,
    ) -> Result<T, MemoryError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut slot = inner
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(open(&inner.path, inner.busy_timeout)?);
            }
            match slot.as_mut() {
                Some(connection) => work(connection),
                None => Err(MemoryError::Backend(
                    "the memory database is not open".into(),
                )),
            }
        })
        .await
        .map_err(|e| MemoryError::Backend(format!("memory task failed: {e}")))?
    }
}

/// Opens (creating if needed) the database and brings its schema up.
fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, MemoryError> {
    let at = |e: rusqlite::Error| sql_error(path, &e);
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                MemoryError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
    }
    let connection = Connection::open(path).map_err(at)?;
    // The notes are the user's alone; SQLite gives its -wal and -shm files
    // the database file's permissions.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        MemoryError::Unavailable(format!("cannot restrict {}: {e}", path.display()))
    })?;
    connection.busy_timeout(busy_timeout).map_err(at)?;
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(at)?;
    if version > SCHEMA_VERSION {
        return Err(MemoryError::Corrupt(format!(
            "{} has schema version {version}, newer than this openheim understands ({SCHEMA_VERSION})",
            path.display()
        )));
    }
    // WAL lets another process read while one writes; NORMAL sync is
    // durable across a process crash (a power loss may lose the last
    // commits, never corrupt the file).
    let _: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(at)?;
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(at)?;
    // A search touches index pages all over the file: keep them in memory
    // (a 10 000-note database is about 10 MiB).
    connection
        .pragma_update(None, "cache_size", -CACHE_KIB)
        .map_err(at)?;
    connection
        .pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(at)?;
    if version < SCHEMA_VERSION {
        connection.execute_batch(SCHEMA).map_err(at)?;
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(at)?;
    }
    Ok(connection)
}

/// SQLite's answer, as the memory's error (naming the file).
fn sql_error(path: &Path, error: &rusqlite::Error) -> MemoryError {
    let message = format!("{}: {error}", path.display());
    let rusqlite::Error::SqliteFailure(failure, _) = error else {
        return MemoryError::Backend(message);
    };
    match failure.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => MemoryError::Locked(message),
        ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => MemoryError::Corrupt(message),
        ErrorCode::CannotOpen
        | ErrorCode::PermissionDenied
        | ErrorCode::ReadOnly
        | ErrorCode::SystemIoFailure
        | ErrorCode::DiskFull
        | ErrorCode::FileLockingProtocolFailed => MemoryError::Unavailable(message),
        _ => MemoryError::Backend(message),
    }
}

fn read_note(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawNote> {
    Ok(RawNote {
        id: row.get(0)?,
        owner: row.get(1)?,
        scope: row.get(2)?,
        project: row.get(3)?,
        text: row.get(4)?,
        tags: row.get(5)?,
        created_at_ms: row.get(6)?,
        updated_at_ms: row.get(7)?,
    })
}

/// A row before its scope and tags are parsed.
struct RawNote {
    id: String,
    owner: String,
    scope: String,
    project: String,
    text: String,
    tags: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl RawNote {
    fn parse(self) -> Result<Note, MemoryError> {
        let scope = Scope::parse(&self.scope).ok_or_else(|| {
            MemoryError::Corrupt(format!("note {} has scope {:?}", self.id, self.scope))
        })?;
        Ok(Note {
            tags: tags_from_json(&self.tags)?,
            id: self.id,
            owner: self.owner,
            scope,
            project: self.project,
            text: self.text,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// The `fetch` best matches of an FTS5 query by BM25 (the scope column
/// weighs nothing): note id, scope key, score (higher is better).
fn best_rows(
    connection: &Connection,
    query: &str,
    fetch: usize,
) -> rusqlite::Result<Vec<(String, String, f64)>> {
    // bm25() is lower for better matches; negated, higher is better.
    // Cached: parsed once per connection, not on every search.
    let mut statement = connection.prepare_cached(
        "SELECT n.id, n.scope_key, best.score FROM (
             SELECT rowid, -bm25(notes_fts, 0.0, 1.0) AS score
             FROM notes_fts WHERE notes_fts MATCH ?1
             ORDER BY score DESC LIMIT ?2
         ) best JOIN notes n ON n.seq = best.rowid",
    )?;
    let rows = statement.query_map(params![query, fetch as i64], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })?;
    rows.collect()
}

/// The FTS5 query: a note of one of the `scopes` (their tokens) holding
/// any of `terms`, each quoted (they are letters and digits only, see
/// `terms.rs`).
fn match_query(scopes: &[String], terms: &[String]) -> String {
    let any = |words: &[String]| {
        words
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    format!("scope : ({}) AND terms : ({})", any(scopes), any(terms))
}

/// The token that stands for a scope in the index: `s` and 16 hex digits of
/// the scope key's FNV-1a hash. A collision could only let a row through the
/// index, which the search then drops by its scope key.
fn scope_token(scope: &ScopeKey) -> String {
    let hash = scope
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("s{hash:016x}")
}

fn bump_generation(tx: &rusqlite::Transaction<'_>, scope: &ScopeKey) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO generations (scope_key, generation) VALUES (?1, 1)
         ON CONFLICT (scope_key) DO UPDATE SET generation = generation + 1",
        params![scope.as_str()],
    )?;
    Ok(())
}

#[async_trait::async_trait]
impl MemoryStore for SqliteMemory {
    async fn insert(&self, note: &Note, vector: Option<&StoredVector>) -> Result<(), MemoryError> {
        let note = note.clone();
        let vector = vector.cloned();
        let path = self.inner.path.clone();
        self.run(move |connection| {
            let at = |e: rusqlite::Error| sql_error(&path, &e);
            let scope = note.scope_key();
            let indexed = terms::terms(&terms::indexed_text(&note.text, &note.tags)).join(" ");
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(at)?;
            tx.execute(
                "INSERT INTO notes (id, owner, scope, project, scope_key, text, tags, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    note.id,
                    note.owner,
                    note.scope.as_str(),
                    note.project,
                    scope.as_str(),
                    note.text,
                    tags_json(&note.tags),
                    note.created_at_ms,
                    note.updated_at_ms
                ],
            )
            .map_err(at)?;
            let seq = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO notes_fts (rowid, scope, terms) VALUES (?1, ?2, ?3)",
                params![seq, scope_token(&scope), indexed],
            )
            .map_err(at)?;
            if let Some(vector) = &vector {
                tx.execute(
                    "INSERT INTO vectors (note, model, scope_key, vector) VALUES (?1, ?2, ?3, ?4)",
                    params![seq, vector.model, scope.as_str(), vector_bytes(&vector.values)],
                )
                .map_err(at)?;
            }
            bump_generation(&tx, &scope).map_err(at)?;
            tx.commit().map_err(at)
        })
        .await
    }

    async fn search(
        &self,
        view: &View,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<Scored>, MemoryError> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let scopes = view.scope_keys();
        let tokens: Vec<String> = scopes.iter().map(scope_token).collect();
        let query = match_query(&tokens, terms);
        let visible: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
        let path = self.inner.path.clone();
        self.run(move |connection| {
            let at = |e: rusqlite::Error| sql_error(&path, &e);
            // The index filters by scope and ranks; reading a row's own
            // columns while ranking would double the cost, so the project
            // preference is applied to the best rows afterwards. Exact: a row
            // past the `fetch` best can gain at most PROJECT_BOOST, so once
            // the `limit`-th boosted score beats that bound, nothing below
            // can overtake it; otherwise fetch more.
            let mut fetch = (limit * 4).max(20);
            loop {
                let rows = best_rows(connection, &query, fetch).map_err(at)?;
                let exhausted = rows.len() < fetch;
                let bound = rows
                    .last()
                    .map_or(0.0, |(_, _, score)| score * PROJECT_BOOST);
                let candidates: Vec<Scored> = rows
                    .into_iter()
                    .filter(|(_, scope_key, _)| visible.contains(scope_key))
                    .map(|(id, scope_key, score)| Scored {
                        id,
                        score,
                        project: scope_key.starts_with("p:"),
                    })
                    .collect();
                let mut ranked = rank::rank(candidates);
                ranked.truncate(limit);
                let settled =
                    ranked.len() == limit && ranked.last().is_some_and(|s| s.score >= bound);
                if exhausted || settled {
                    return Ok(ranked);
                }
                fetch *= 4;
            }
        })
        .await
    }

    async fn get(&self, ids: &[String]) -> Result<Vec<Note>, MemoryError> {
        let ids = ids.to_vec();
        let path = self.inner.path.clone();
        self.run(move |connection| {
            let at = |e: rusqlite::Error| sql_error(&path, &e);
            let mut statement = connection
                .prepare_cached(&format!("SELECT {NOTE_COLUMNS} FROM notes WHERE id = ?1"))
                .map_err(at)?;
            let mut notes = Vec::with_capacity(ids.len());
            for id in &ids {
                let raw = statement
                    .query_row(params![id], read_note)
                    .optional()
                    .map_err(at)?;
                if let Some(raw) = raw {
                    notes.push(raw.parse()?);
                }
            }
            Ok(notes)
        })
        .await
    }

    async fn list(
        &self,
        listing: &Listing,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<NotePage, MemoryError> {
        let after = cursor.map(parse_cursor).transpose()?;
        // The first page: everything sorts before (MAX, "").
        let (ms, after_id) = after.unwrap_or((i64::MAX, String::new()));
        let (filter, first, second) = match listing {
            Listing::View(view) => {
                let scopes = view.scope_keys();
                let first = scopes
                    .first()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                let second = scopes
                    .last()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                ("scope_key IN (?1, ?2)", first, second)
            }
            // `?2 = ?2` keeps the parameters the same for both filters.
            Listing::Owner(owner) => ("owner = ?1 AND ?2 = ?2", owner.clone(), String::new()),
        };
        let sql = format!(
            "SELECT {NOTE_COLUMNS} FROM notes WHERE {filter} AND (updated_at_ms, id) < (?3, ?4)
             ORDER BY updated_at_ms DESC, id DESC LIMIT ?5"
        );
        let path = self.inner.path.clone();
        self.run(move |connection| {
            let at = |e: rusqlite::Error| sql_error(&path, &e);
            let mut statement = connection.prepare(&sql).map_err(at)?;
            let rows = statement
                .query_map(
                    params![first, second, ms, after_id, limit as i64 + 1],
                    read_note,
                )
                .map_err(at)?;
            let mut notes = Vec::new();
            for row in rows {
                notes.push(row.map_err(at)?.parse()?);
            }
            let more = notes.len() > limit;
            notes.truncate(limit);
            let next_cursor = match (more, notes.last()) {
                (true, Some(last)) => Some(cursor_after(last)),
                _ => None,
            };
            Ok(NotePage { notes, next_cursor })
        })
        .await
    }

    async fn delete(
        &self,
        owner: &str,
        id: &str,
        view: Option<&View>,
    ) -> Result<Note, MemoryError> {
        check_id(id)?;
        let (owner, id, view) = (owner.to_owned(), id.to_owned(), view.cloned());
        let path = self.inner.path.clone();
        self.run(move |connection| {
            let at = |e: rusqlite::Error| sql_error(&path, &e);
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(at)?;
            let found = tx
                .query_row(
                    &format!("SELECT seq, {NOTE_COLUMNS} FROM notes WHERE id = ?1"),
                    params![id],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            RawNote {
                                id: row.get(1)?,
                                owner: row.get(2)?,
                                scope: row.get(3)?,
                                project: row.get(4)?,
                                text: row.get(5)?,
                                tags: row.get(6)?,
                                created_at_ms: row.get(7)?,
                                updated_at_ms: row.get(8)?,
                            },
                        ))
                    },
                )
                .optional()
                .map_err(at)?;
            let Some((seq, raw)) = found else {
                return Err(MemoryError::NotFound(id));
            };
            let note = raw.parse()?;
            let visible = note.owner == owner && view.as_ref().is_none_or(|v| v.sees(&note));
            if !visible {
                return Err(MemoryError::NotFound(id));
            }
            tx.execute("DELETE FROM notes_fts WHERE rowid = ?1", params![seq])
                .map_err(at)?;
            tx.execute("DELETE FROM vectors WHERE note = ?1", params![seq])
                .map_err(at)?;
            tx.execute("DELETE FROM notes WHERE seq = ?1", params![seq])
                .map_err(at)?;
            bump_generation(&tx, &note.scope_key()).map_err(at)?;
            tx.commit().map_err(at)?;
            Ok(note)
        })
        .await
    }

    async fn generation(&self, scope: &ScopeKey) -> Result<u64, MemoryError> {
        let scope = scope.clone();
        let path = self.inner.path.clone();
        self.run(move |connection| {
            let generation: Option<i64> = connection
                .query_row(
                    "SELECT generation FROM generations WHERE scope_key = ?1",
                    params![scope.as_str()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| sql_error(&path, &e))?;
            Ok(u64::try_from(generation.unwrap_or(0)).unwrap_or(0))
        })
        .await
    }

    async fn vectors(
        &self,
        scope: &ScopeKey,
        model: &str,
    ) -> Result<Vec<(String, Vec<f32>)>, MemoryError> {
        let (scope, model) = (scope.clone(), model.to_owned());
        let path = self.inner.path.clone();
        self.run(move |connection| {
            let at = |e: rusqlite::Error| sql_error(&path, &e);
            let mut statement = connection
                .prepare(
                    "SELECT n.id, v.vector FROM vectors v JOIN notes n ON n.seq = v.note
                     WHERE v.scope_key = ?1 AND v.model = ?2",
                )
                .map_err(at)?;
            let rows = statement
                .query_map(params![scope.as_str(), model], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
                })
                .map_err(at)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, bytes) = row.map_err(at)?;
                match vector_from_bytes(&bytes) {
                    Some(vector) => out.push((id, vector)),
                    None => tracing::warn!(note = %id, "skipping an unreadable vector"),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn check(&self) -> Result<(), MemoryError> {
        self.run(|_| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_queries_quote_every_term_and_name_the_scopes() {
        let terms = vec!["redis".to_owned(), "port".to_owned()];
        let scopes = vec!["sa".to_owned(), "sb".to_owned()];
        assert_eq!(
            match_query(&scopes, &terms),
            "scope : (\"sa\" OR \"sb\") AND terms : (\"redis\" OR \"port\")"
        );
        let token = scope_token(&ScopeKey::user("default"));
        assert!(token.len() == 17 && token.starts_with('s'), "{token}");
        assert_ne!(token, scope_token(&ScopeKey::project("default", "/w")));
    }

    #[tokio::test]
    async fn nothing_is_created_until_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/memory.db");
        let store = SqliteMemory::new(&path);
        assert!(!path.exists());
        store.check().await.unwrap();
        assert!(path.exists());
    }
}
