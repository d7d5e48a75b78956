//! How each backend fails: a locked or unreadable database, an unusable
//! path, Redis down. Every failure is a typed error with a sentence a
//! model can act on; nothing stored before is lost; nothing panics.

use std::time::{Duration, Instant};

use openheim_memory::{
    Listing, Memory, MemoryError, RedisMemory, RedisMemoryOptions, SqliteMemory,
};

use crate::support::{RedisServer, found, project_note, redis_store, user_note, view};

fn sqlite_memory(path: &std::path::Path, busy: Duration) -> Memory {
    Memory::new(
        std::sync::Arc::new(SqliteMemory::with_busy_timeout(path, busy)),
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_a_retryable_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let memory = sqlite_memory(&path, Duration::from_millis(200));
    memory
        .remember(user_note("Written before the lock."))
        .await
        .unwrap();
    // Another process takes the write lock and keeps it.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let error = memory
        .remember(user_note("Written during the lock."))
        .await
        .unwrap_err();
    assert!(matches!(error, MemoryError::Locked(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("memory.db"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    // The same call succeeds once the lock is gone; the earlier note is there.
    memory
        .remember(user_note("Written during the lock."))
        .await
        .unwrap();
    let v = view("/w");
    assert_eq!(found(&memory, &v, "written lock").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_database_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let garbage = b"this is not a database, but somebody's file".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let memory = sqlite_memory(&path, Duration::from_millis(200));
    let error = memory.remember(user_note("A note.")).await.unwrap_err();
    assert!(matches!(error, MemoryError::Corrupt(_)), "{error:?}");
    assert!(!error.is_retryable());
    let error = memory.search(&view("/w"), "note", 5).await.unwrap_err();
    assert!(error.to_string().contains("memory.db"), "{error}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file was changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_cannot_hold_a_database_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("memory.db");
    std::fs::create_dir(&path).unwrap();
    let memory = sqlite_memory(&path, Duration::from_millis(200));
    let error = memory.remember(user_note("A note.")).await.unwrap_err();
    assert!(
        matches!(error, MemoryError::Unavailable(_) | MemoryError::Corrupt(_)),
        "{error:?}"
    );
    // A file where its directory should be.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let memory = sqlite_memory(&blocker.join("memory.db"), Duration::from_millis(200));
    let error = memory.check().await.unwrap_err();
    assert!(matches!(error, MemoryError::Unavailable(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_and_the_notes_are_there_when_it_is_back() {
    let server = RedisServer::start();
    let memory = Memory::new(std::sync::Arc::new(redis_store(&server)), None);
    memory
        .remember(project_note("/w", "Stored while Redis was up."))
        .await
        .unwrap();
    // Nothing listens on a port that was just freed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down = RedisMemory::open(&RedisMemoryOptions {
        url: format!("redis://127.0.0.1:{port}"),
        prefix: server.prefix().to_owned(),
    })
    .unwrap();
    let down = Memory::new(std::sync::Arc::new(down), None);
    let started = Instant::now();
    let error = down.remember(user_note("Lost?")).await.unwrap_err();
    assert!(matches!(error, MemoryError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(error.to_string().contains(&port.to_string()), "{error}");
    for result in [
        down.search(&view("/w"), "stored", 5).await.map(|_| ()),
        down.list(&Listing::View(view("/w")), 5, None)
            .await
            .map(|_| ()),
        down.forget("default", "0123456789ab", None)
            .await
            .map(|_| ()),
    ] {
        let error = result.unwrap_err();
        assert!(matches!(error, MemoryError::Unavailable(_)), "{error:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // The server that was up still has its note.
    assert_eq!(
        found(&memory, &view("/w"), "stored").await,
        ["Stored while Redis was up."]
    );
}
