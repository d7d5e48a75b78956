//! File backend: one JSON-lines log per session under `<data_dir>/history/`.
//!
//! Each record is written with a single `write` to a file opened in append
//! mode, so a crash leaves at most a torn last line, which loading skips.
//! Leases and remembered "always" approvals are held in this process only:
//! the file backend serves one agent-loop process (the Redis backend
//! coordinates replicas), so approvals last until that process exits.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::log_cache;
use super::record_cache::RecordCache;
use super::{
    Lease, Record, SessionMeta, SessionPage, SessionStore, StoreError, StoredSession,
    check_session_id, cursor_after, parse_cursor, replay,
};

const EXTENSION: &str = "jsonl";

pub struct FileStore {
    dir: PathBuf,
    leases: Arc<Mutex<HashSet<String>>>,
    /// Remembered "always" answers: session id → approval key → allow.
    approvals: Mutex<HashMap<String, HashMap<String, bool>>>,
    /// Logs parsed by earlier loads (`record_cache.rs`).
    logs: Mutex<RecordCache>,
}

impl FileStore {
    /// Uses (and creates) `dir` for session logs.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        // Conversations are private: the directories created for them are
        // the user's alone (0700), as is the history directory itself, and
        // each log is created 0600.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Self {
            dir,
            leases: Arc::default(),
            approvals: Mutex::default(),
            logs: Mutex::default(),
        })
    }

    fn path(&self, id: &str) -> Result<PathBuf, StoreError> {
        check_session_id(id)?;
        Ok(self.dir.join(format!("{id}.{EXTENSION}")))
    }

    async fn write_line(path: &Path, record: &Record, create: bool) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut options = tokio::fs::OpenOptions::new();
        options.append(true);
        if create {
            options.create_new(true).mode(0o600);
        }
        let mut file = options.open(path).await?;
        file.write_all(&line).await?;
        file.flush().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl SessionStore for FileStore {
    async fn create(&self, meta: &SessionMeta) -> Result<(), StoreError> {
        let path = self.path(&meta.id)?;
        match Self::write_line(&path, &Record::Session(meta.clone()), true).await {
            Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StoreError::AlreadyExists(meta.id.clone()))
            }
            other => other,
        }
    }

    async fn append(&self, session_id: &str, record: &Record) -> Result<(), StoreError> {
        let path = self.path(session_id)?;
        if !tokio::fs::try_exists(&path).await? {
            return Err(StoreError::NotFound(session_id.to_owned()));
        }
        Self::write_line(&path, record, false).await
    }

    async fn load(&self, session_id: &str) -> Result<StoredSession, StoreError> {
        let path = self.path(session_id)?;
        let log = log_cache::read(&self.logs, session_id, &path).await?;
        Ok(replay(log.meta, log.records, log.mtime_ms))
    }

    async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<SessionPage, StoreError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let mut entries = Vec::new();
        let mut dir = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = dir.next_entry().await? {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if check_session_id(id).is_err() {
                continue;
            }
            let updated = log_cache::mtime_ms(&entry.metadata().await?);
            entries.push((updated, id.to_owned()));
        }
        // Newest first; ties broken by id so pages are stable.
        entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        if let Some((ms, id)) = &after {
            entries.retain(|(m, i)| (m, i) < (ms, id));
        }
        let limit = limit.max(1);
        let more = entries.len() > limit;
        entries.truncate(limit);
        let mut sessions = Vec::with_capacity(entries.len());
        for (_, id) in &entries {
            match self.load(id).await {
                Ok(s) => sessions.push(s.summary),
                Err(e) => tracing::warn!(session = %id, error = %e, "skipping unreadable session"),
            }
        }
        let next_cursor = match (more, entries.last()) {
            (true, Some((ms, id))) => Some(cursor_after(*ms, id)),
            _ => None,
        };
        Ok(SessionPage {
            sessions,
            next_cursor,
        })
    }

    async fn delete(&self, session_id: &str) -> Result<(), StoreError> {
        let path = self.path(session_id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(session_id.to_owned()));
            }
            Err(e) => return Err(e.into()),
        }
        if let Ok(mut approvals) = self.approvals.lock() {
            approvals.remove(session_id);
        }
        Ok(())
    }

    async fn try_lease(
        &self,
        session_id: &str,
        _ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        check_session_id(session_id)?;
        let mut held = self
            .leases
            .lock()
            .map_err(|_| std::io::Error::other("lease table poisoned"))?;
        if !held.insert(session_id.to_owned()) {
            return Ok(None);
        }
        let leases = Arc::clone(&self.leases);
        let id = session_id.to_owned();
        Ok(Some(Lease::new(move || {
            if let Ok(mut held) = leases.lock() {
                held.remove(&id);
            }
        })))
    }

    async fn remember(&self, session_id: &str, key: &str, allow: bool) -> Result<(), StoreError> {
        check_session_id(session_id)?;
        let mut approvals = self
            .approvals
            .lock()
            .map_err(|_| std::io::Error::other("approval table poisoned"))?;
        approvals
            .entry(session_id.to_owned())
            .or_default()
            .insert(key.to_owned(), allow);
        Ok(())
    }

    async fn remembered(&self, session_id: &str) -> Result<HashMap<String, bool>, StoreError> {
        check_session_id(session_id)?;
        let approvals = self
            .approvals
            .lock()
            .map_err(|_| std::io::Error::other("approval table poisoned"))?;
        Ok(approvals.get(session_id).cloned().unwrap_or_default())
    }

    async fn check(&self) -> Result<(), StoreError> {
        let _listing = tokio::fs::read_dir(&self.dir).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Approval, StoredBlock, StoredMessage};

    fn meta(id: &str) -> SessionMeta {
        SessionMeta {
            id: id.into(),
            created_at_ms: 1,
            work_dir: "/w".into(),
            model: String::new(),
            skills: vec![],
            approval: Approval::Ask,
            read_only: false,
            parent: None,
            agent: None,
            depth: 0,
            owner: String::new(),
        }
    }

    fn user(text: &str) -> Record {
        Record::Message {
            at_ms: 2,
            message: StoredMessage::User {
                content: vec![StoredBlock::Text { text: text.into() }],
            },
        }
    }

    #[tokio::test]
    async fn append_load_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        store.create(&meta("s1")).await.unwrap();
        store.append("s1", &user("hello there")).await.unwrap();
        store
            .append(
                "s1",
                &Record::Model {
                    at_ms: 3,
                    model: "m2".into(),
                },
            )
            .await
            .unwrap();
        let mode = Record::Mode {
            at_ms: 3,
            approval: Approval::Auto,
            read_only: true,
        };
        store.append("s1", &mode).await.unwrap();
        let skills = Record::Skills {
            at_ms: 3,
            skills: vec!["tests".into(), "rust".into()],
        };
        store.append("s1", &skills).await.unwrap();
        // Simulate a crash in the middle of writing a record.
        let path = dir.path().join("s1.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"type\":\"message\",\"at_ms\":4,\"mess");
        std::fs::write(&path, text).unwrap();
        let loaded = store.load("s1").await.unwrap();
        assert_eq!(loaded.messages.len(), 1);
        assert_eq!(loaded.summary.title, "hello there");
        assert_eq!(loaded.summary.meta.model, "m2");
        assert_eq!(loaded.summary.meta.approval, Approval::Auto);
        assert!(loaded.summary.meta.read_only);
        assert_eq!(loaded.summary.meta.skills, ["tests", "rust"]);
    }

    #[tokio::test]
    async fn corruption_in_the_middle_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        store.create(&meta("s1")).await.unwrap();
        let path = dir.path().join("s1.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("garbage\n");
        std::fs::write(&path, text).unwrap();
        store.append("s1", &user("x")).await.unwrap();
        assert!(matches!(
            store.load("s1").await,
            Err(StoreError::Corrupt { .. })
        ));
    }

    fn texts(session: &StoredSession) -> Vec<String> {
        session
            .messages
            .iter()
            .map(|m| match m {
                StoredMessage::User { content } => match &content[..] {
                    [StoredBlock::Text { text }] => text.clone(),
                    other => panic!("unexpected content {other:?}"),
                },
                other => panic!("unexpected message {other:?}"),
            })
            .collect()
    }

    /// Later loads read only what was appended, and see exactly what a
    /// fresh parse of the file sees: appends of this store, of another
    /// process (another store on the same directory), a torn line later
    /// completed, and a log replaced by another file.
    #[tokio::test]
    async fn loads_follow_the_file_as_it_grows_or_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        let other = FileStore::new(dir.path()).unwrap();
        store.create(&meta("s1")).await.unwrap();
        assert!(store.load("s1").await.unwrap().messages.is_empty());
        store.append("s1", &user("one")).await.unwrap();
        assert_eq!(texts(&store.load("s1").await.unwrap()), ["one"]);
        other.append("s1", &user("two")).await.unwrap();
        assert_eq!(texts(&store.load("s1").await.unwrap()), ["one", "two"]);

        let path = dir.path().join("s1.jsonl");
        let line = serde_json::to_string(&user("three")).unwrap();
        let (head, rest) = line.split_at(10);
        let mut file = std::fs::File::options().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, head.as_bytes()).unwrap();
        assert_eq!(texts(&store.load("s1").await.unwrap()), ["one", "two"]);
        std::io::Write::write_all(&mut file, format!("{rest}\n").as_bytes()).unwrap();
        let grown = store.load("s1").await.unwrap();
        assert_eq!(texts(&grown), ["one", "two", "three"]);
        assert_eq!(
            texts(&grown),
            texts(
                &FileStore::new(dir.path())
                    .unwrap()
                    .load("s1")
                    .await
                    .unwrap()
            )
        );

        // Replaced (a restore from a backup): parsed again, not appended to.
        let fresh = tempfile::tempdir().unwrap();
        let writer = FileStore::new(fresh.path()).unwrap();
        writer.create(&meta("s1")).await.unwrap();
        writer.append("s1", &user("restored")).await.unwrap();
        std::fs::rename(fresh.path().join("s1.jsonl"), &path).unwrap();
        assert_eq!(texts(&store.load("s1").await.unwrap()), ["restored"]);

        std::fs::write(&path, "").unwrap();
        assert!(matches!(
            store.load("s1").await,
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn damage_appended_after_a_load_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        store.create(&meta("s1")).await.unwrap();
        store.append("s1", &user("one")).await.unwrap();
        store.load("s1").await.unwrap();
        let path = dir.path().join("s1.jsonl");
        let mut file = std::fs::File::options().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, b"garbage\n").unwrap();
        store.append("s1", &user("two")).await.unwrap();
        match store.load("s1").await {
            Err(StoreError::Corrupt { reason, .. }) => {
                assert!(reason.starts_with("line 3:"), "{reason}")
            }
            other => panic!("expected a corrupt log, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_deleted_session_is_gone_and_cannot_be_deleted_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        store.create(&meta("s1")).await.unwrap();
        store.remember("s1", "k", true).await.unwrap();
        store.delete("s1").await.unwrap();
        assert!(!dir.path().join("s1.jsonl").exists());
        assert!(store.remembered("s1").await.unwrap().is_empty());
        assert!(matches!(
            store.delete("s1").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.load("s1").await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn ids_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        for bad in ["../x", "a/b", "", ".."] {
            assert!(matches!(
                store.load(bad).await,
                Err(StoreError::InvalidId(_))
            ));
        }
        assert!(matches!(
            store.load("missing").await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn list_pages_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            store.create(&meta(id)).await.unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + i as u64);
            let f = std::fs::File::options()
                .append(true)
                .open(dir.path().join(format!("{id}.jsonl")))
                .unwrap();
            f.set_modified(t).unwrap();
        }
        let page = store.list(2, None).await.unwrap();
        let ids: Vec<_> = page.sessions.iter().map(|s| s.meta.id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        let next = store.list(2, page.next_cursor.as_deref()).await.unwrap();
        let ids: Vec<_> = next.sessions.iter().map(|s| s.meta.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        assert!(next.next_cursor.is_none());
        assert!(store.list(2, Some("garbage")).await.is_err());
    }
}
