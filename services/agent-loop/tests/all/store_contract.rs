//! The `SessionStore` contract, one test function per promise, each run
//! against both backends (`files::*` and `redis::*`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openheim_agent_loop::store::{
    AgentRun, Approval, ChildRef, Compaction, FileStore, ParentRef, Record, RedisStore,
    RedisStoreOptions, SessionMeta, SessionStore, StoreError, StoredBlock, StoredMessage,
};

use crate::redis_server::RedisServer;

const TTL: Duration = Duration::from_secs(30);

/// A store and what backs it (kept alive for the test).
pub struct Backend {
    pub store: Arc<dyn SessionStore>,
    kind: Kind,
}

enum Kind {
    Files(tempfile::TempDir),
    Redis(RedisServer),
}

impl Backend {
    pub fn files() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            store: Arc::new(FileStore::new(dir.path()).unwrap()),
            kind: Kind::Files(dir),
        }
    }

    pub fn redis() -> Self {
        let server = RedisServer::start();
        Self {
            store: Arc::new(redis_store(&server)),
            kind: Kind::Redis(server),
        }
    }

    /// Another store over the same storage: another process on the same
    /// data directory, another replica on the same Redis.
    fn another(&self) -> Arc<dyn SessionStore> {
        match &self.kind {
            Kind::Files(dir) => Arc::new(FileStore::new(dir.path()).unwrap()),
            Kind::Redis(server) => Arc::new(redis_store(server)),
        }
    }

    /// Writes a record that is not JSON into the session's log, followed by
    /// a valid one (so it is not a torn tail the file store forgives).
    async fn damage(&self, id: &str) {
        match &self.kind {
            Kind::Files(dir) => {
                let path = dir.path().join(format!("{id}.jsonl"));
                let mut text = std::fs::read_to_string(&path).unwrap();
                text.push_str("garbage\n");
                std::fs::write(&path, text).unwrap();
            }
            Kind::Redis(server) => {
                let key = format!("{}:session:{id}", server.prefix());
                let _: i64 = ::redis::cmd("RPUSH")
                    .arg(key)
                    .arg("garbage")
                    .query_async(&mut crate::redis_server::raw(server).await)
                    .await
                    .unwrap();
            }
        }
        self.store
            .append(id, &user("after the damage"))
            .await
            .unwrap();
    }
}

/// A second, independent store over the same Redis and prefix: another
/// agent-loop replica.
pub fn redis_store(server: &RedisServer) -> RedisStore {
    RedisStore::open(&RedisStoreOptions::new(server.url(), server.prefix())).unwrap()
}

pub fn meta(id: &str) -> SessionMeta {
    SessionMeta {
        id: id.into(),
        created_at_ms: 1,
        work_dir: "/w".into(),
        model: String::new(),
        skills: vec!["rust".into()],
        approval: Approval::Ask,
        read_only: false,
        parent: None,
        agent: None,
        depth: 0,
        // Both stores keep the owner (a user's sessions are theirs alone).
        owner: "alice".into(),
    }
}

pub fn user(text: &str) -> Record {
    Record::Message {
        at_ms: 2,
        message: StoredMessage::User {
            content: vec![StoredBlock::Text { text: text.into() }],
        },
    }
}

fn ids(page: &openheim_agent_loop::store::SessionPage) -> Vec<&str> {
    page.sessions.iter().map(|s| s.meta.id.as_str()).collect()
}

async fn records_round_trip(backend: Backend) {
    let store = backend.store;
    store.check().await.unwrap();
    store.create(&meta("s1")).await.unwrap();
    store
        .append("s1", &user("hello there\nsecond line"))
        .await
        .unwrap();
    let reply = Record::Message {
        at_ms: 3,
        message: StoredMessage::Assistant {
            content: vec![
                StoredBlock::Text { text: "ok".into() },
                StoredBlock::ToolCall {
                    id: "c1".into(),
                    name: "read_file".into(),
                    arguments: "{\"path\":\"a\"}".into(),
                },
            ],
        },
    };
    store.append("s1", &reply).await.unwrap();
    let result = Record::Message {
        at_ms: 4,
        message: StoredMessage::Tool {
            tool_call_id: "c1".into(),
            content: "contents".into(),
            is_error: false,
            images: Vec::new(),
        },
    };
    store.append("s1", &result).await.unwrap();
    let model = Record::Model {
        at_ms: 5,
        model: "m2".into(),
    };
    store.append("s1", &model).await.unwrap();
    let mode = Record::Mode {
        at_ms: 6,
        approval: Approval::Auto,
        read_only: true,
    };
    store.append("s1", &mode).await.unwrap();
    let skills = Record::Skills {
        at_ms: 7,
        skills: vec!["tests".into()],
    };
    store.append("s1", &skills).await.unwrap();
    // Compactions: the latest counts, and covers no more than was stored
    // before it.
    let compaction = |covers: u64, text: &str| Record::Compaction {
        at_ms: 8,
        compaction: Compaction {
            covers,
            text: text.into(),
            model: "mock/m".into(),
            tokens_before: 900,
            tokens_after: 100,
        },
    };
    store.append("s1", &compaction(1, "first")).await.unwrap();
    store.append("s1", &compaction(7, "second")).await.unwrap();

    let loaded = store.load("s1").await.unwrap();
    let latest = loaded.compaction.clone().unwrap();
    assert_eq!((latest.covers, latest.text.as_str()), (3, "second"));
    assert_eq!((latest.tokens_before, latest.tokens_after), (900, 100));
    // A sub-agent's session, linked both ways.
    let child_meta = SessionMeta {
        parent: Some(ParentRef {
            session_id: "s1".into(),
            tool_call_id: "d1".into(),
        }),
        agent: Some(AgentRun {
            name: "scout".into(),
            identity: "You look around.".into(),
            tools: Some(vec!["list_dir".into()]),
            max_iterations: Some(3),
        }),
        depth: 1,
        ..meta("s1-child")
    };
    store.create(&child_meta).await.unwrap();
    let child = ChildRef {
        session_id: "s1-child".into(),
        tool_call_id: "d1".into(),
        agent: "scout".into(),
        created_at_ms: 8,
    };
    store
        .append("s1", &Record::Child(child.clone()))
        .await
        .unwrap();
    let loaded_child = store.load("s1-child").await.unwrap();
    assert_eq!(loaded_child.summary.meta, child_meta);

    let loaded = store.load("s1").await.unwrap();
    assert_eq!(loaded.children, [child]);
    assert_eq!(loaded.messages.len(), 3);
    assert!(
        matches!(&loaded.messages[2], StoredMessage::Tool { content, .. } if content == "contents")
    );
    let summary = loaded.summary;
    assert_eq!(summary.title, "hello there");
    assert_eq!(summary.message_count, 3);
    assert_eq!(summary.meta.model, "m2");
    assert_eq!(summary.meta.approval, Approval::Auto);
    assert!(summary.meta.read_only);
    assert_eq!(summary.meta.skills, ["tests"]);
    assert!(summary.updated_at_ms > 0);
}

async fn unknown_and_invalid_sessions_are_refused(backend: Backend) {
    let store = backend.store;
    assert!(matches!(
        store.load("missing").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.append("missing", &user("x")).await,
        Err(StoreError::NotFound(_))
    ));
    for bad in ["../x", "a/b", "", "..", "a:b", "a*"] {
        assert!(
            matches!(store.load(bad).await, Err(StoreError::InvalidId(_))),
            "{bad:?}"
        );
        assert!(matches!(
            store.try_lease(bad, TTL).await,
            Err(StoreError::InvalidId(_))
        ));
    }
    store.create(&meta("s1")).await.unwrap();
    let again = store.create(&meta("s1")).await;
    assert!(
        matches!(&again, Err(StoreError::AlreadyExists(id)) if id == "s1"),
        "{again:?}"
    );
    // The failed create changed nothing.
    assert_eq!(store.load("s1").await.unwrap().summary.meta, meta("s1"));
}

async fn lists_newest_first_in_stable_pages(backend: Backend) {
    let store = backend.store;
    assert!(store.list(10, None).await.unwrap().sessions.is_empty());
    // Updated in this order, so c is the newest; within one millisecond
    // the greater id comes first, which is the same order.
    for id in ["a", "b", "c"] {
        store.create(&meta(id)).await.unwrap();
    }
    store.append("c", &user("about c")).await.unwrap();
    let page = store.list(2, None).await.unwrap();
    assert_eq!(ids(&page), ["c", "b"]);
    assert_eq!(page.sessions[0].title, "about c");
    assert_eq!(page.sessions[0].message_count, 1);
    assert_eq!(page.sessions[1].message_count, 0);
    let cursor = page.next_cursor.clone().unwrap();
    // A session already listed is updated between the pages: the next page
    // neither repeats it nor loses the others.
    store.append("c", &user("more about c")).await.unwrap();
    let next = store.list(2, Some(&cursor)).await.unwrap();
    assert_eq!(ids(&next), ["a"]);
    assert!(next.next_cursor.is_none());
    // A fresh listing shows the update.
    let fresh = store.list(10, None).await.unwrap();
    assert_eq!(ids(&fresh), ["c", "b", "a"]);
    assert!(fresh.next_cursor.is_none());
    // Page size 1 walks every session exactly once.
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(1, cursor.as_deref()).await.unwrap();
        walked.extend(ids(&page).iter().map(|s| s.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, ["c", "b", "a"]);
    for bad in ["garbage", "12:../x", "x:a"] {
        assert!(
            matches!(
                store.list(2, Some(bad)).await,
                Err(StoreError::InvalidCursor(_))
            ),
            "{bad:?}"
        );
    }
}

async fn many_sessions_page_exactly_once(backend: Backend) {
    let store = backend.store;
    // More than one index batch of the Redis store, many within one
    // millisecond (ties broken by id).
    let created: Vec<String> = (0..130).map(|i| format!("s{i:03}")).collect();
    for id in &created {
        store.create(&meta(id)).await.unwrap();
    }
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(120, cursor.as_deref()).await.unwrap();
        assert!(page.sessions.len() <= 120);
        walked.extend(page.sessions);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut ids: Vec<String> = walked.iter().map(|s| s.meta.id.clone()).collect();
    let order: Vec<(i64, String)> = walked
        .iter()
        .map(|s| (s.updated_at_ms, s.meta.id.clone()))
        .collect();
    assert!(order.windows(2).all(|w| w[0] > w[1]), "not newest first");
    ids.sort();
    assert_eq!(ids, created);
}

async fn one_lease_per_session(backend: Backend) {
    let store = backend.store;
    let lease = store.try_lease("s1", TTL).await.unwrap().unwrap();
    assert!(!lease.is_lost());
    assert!(store.try_lease("s1", TTL).await.unwrap().is_none());
    let other = store.try_lease("s2", TTL).await.unwrap();
    assert!(other.is_some());
    lease.release().await;
    let again = store.try_lease("s1", TTL).await.unwrap().unwrap();
    assert!(store.try_lease("s1", TTL).await.unwrap().is_none());
    // A lease that is only dropped is given back too (a remote store does
    // it in the background).
    drop(again);
    let retaken = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(lease) = store.try_lease("s1", TTL).await.unwrap() {
                return lease;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(retaken.is_ok(), "a dropped lease was never released");
}

async fn remembers_approvals_per_session(backend: Backend) {
    let store = backend.store;
    assert!(store.remembered("s1").await.unwrap().is_empty());
    store.remember("s1", "write_file", true).await.unwrap();
    store
        .remember("s1", "execute_command\0rm -rf /", false)
        .await
        .unwrap();
    store.remember("s2", "write_file", false).await.unwrap();
    let expected = HashMap::from([
        ("write_file".to_owned(), true),
        ("execute_command\0rm -rf /".to_owned(), false),
    ]);
    assert_eq!(store.remembered("s1").await.unwrap(), expected);
    // A later answer replaces an earlier one.
    store.remember("s1", "write_file", false).await.unwrap();
    assert_eq!(
        store.remembered("s1").await.unwrap().get("write_file"),
        Some(&false)
    );
    assert_eq!(store.remembered("s2").await.unwrap().len(), 1);
    assert!(matches!(
        store.remember("../x", "k", true).await,
        Err(StoreError::InvalidId(_))
    ));
}

async fn damage_is_reported_not_skipped(backend: Backend) {
    backend.store.create(&meta("good")).await.unwrap();
    backend.store.create(&meta("bad")).await.unwrap();
    backend
        .store
        .append("bad", &user("before the damage"))
        .await
        .unwrap();
    // Loaded once before the damage: the next load reads only what follows.
    backend.store.load("bad").await.unwrap();
    backend.damage("bad").await;
    let error = backend.store.load("bad").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { id, .. } if id == "bad"),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("\"bad\" is corrupt"), "{text}");
    // Listing skips what it cannot read and shows the rest.
    let page = backend.store.list(10, None).await.unwrap();
    assert_eq!(ids(&page), ["good"]);
}

fn texts(session: &openheim_agent_loop::store::StoredSession) -> Vec<String> {
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

/// A store reads only what was appended since its last load, and still
/// sees every record, whoever appended it, in order.
async fn loads_see_what_others_appended(backend: Backend) {
    let other = backend.another();
    backend.store.create(&meta("s")).await.unwrap();
    backend.store.append("s", &user("one")).await.unwrap();
    assert_eq!(texts(&backend.store.load("s").await.unwrap()), ["one"]);
    other.append("s", &user("two")).await.unwrap();
    assert_eq!(
        texts(&backend.store.load("s").await.unwrap()),
        ["one", "two"]
    );
    backend.store.append("s", &user("three")).await.unwrap();
    for store in [&backend.store, &other] {
        let session = store.load("s").await.unwrap();
        assert_eq!(texts(&session), ["one", "two", "three"]);
        assert_eq!(session.summary.title, "one");
    }
}

/// Runs each contract function against both backends.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod files {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend::files()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend::redis()).await;
                }
            )*
        }
    };
}

contract!(
    records_round_trip,
    unknown_and_invalid_sessions_are_refused,
    lists_newest_first_in_stable_pages,
    many_sessions_page_exactly_once,
    one_lease_per_session,
    remembers_approvals_per_session,
    damage_is_reported_not_skipped,
    loads_see_what_others_appended,
);
