//! What only the Redis store promises: several agent-loop replicas (here,
//! several `RedisStore`s over one Redis) share sessions, leases and
//! remembered approvals; a lease outlives a dead holder by at most its TTL
//! and is only ever extended or freed by its holder.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openheim_agent_loop::store::{RedisStore, RedisStoreOptions, SessionStore, StoreError};

use crate::redis_server::RedisServer;
use crate::store_contract::{meta, redis_store, user};

const LONG_TTL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn replicas_share_sessions() {
    let server = RedisServer::start();
    let (a, b) = (redis_store(&server), redis_store(&server));
    a.create(&meta("s1")).await.unwrap();
    b.append("s1", &user("from b")).await.unwrap();
    a.append("s1", &user("from a")).await.unwrap();
    let loaded = b.load("s1").await.unwrap();
    assert_eq!(loaded.messages.len(), 2);
    assert_eq!(loaded.summary.title, "from b");
    let listed = a.list(10, None).await.unwrap();
    assert_eq!(listed.sessions.len(), 1);
    assert_eq!(listed.sessions[0].message_count, 2);
    assert_eq!(
        listed.sessions[0].updated_at_ms,
        loaded.summary.updated_at_ms
    );
}

#[tokio::test]
async fn remembered_approvals_are_shared_by_replicas() {
    let server = RedisServer::start();
    let (a, b) = (redis_store(&server), redis_store(&server));
    a.remember("s1", "write_file", true).await.unwrap();
    assert_eq!(
        b.remembered("s1").await.unwrap().get("write_file"),
        Some(&true)
    );
}

#[tokio::test]
async fn a_lease_excludes_other_replicas_and_only_its_holder_frees_it() {
    let server = RedisServer::start();
    let (a, b) = (redis_store(&server), redis_store(&server));
    let ttl = Duration::from_millis(600);
    let held_by_a = a.try_lease("s1", ttl).await.unwrap().unwrap();
    assert!(b.try_lease("s1", ttl).await.unwrap().is_none());
    assert!(a.try_lease("s1", ttl).await.unwrap().is_none());

    // A's lease vanishes behind its back (as if it had expired while A was
    // cut off from Redis), and B takes the session.
    let key = format!("{}:lease:s1", server.prefix());
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut crate::redis_server::raw(&server).await)
        .await
        .unwrap();
    let held_by_b = b.try_lease("s1", ttl).await.unwrap().unwrap();
    // A learns at its next renewal that the lease is no longer its own.
    tokio::time::timeout(Duration::from_secs(5), held_by_a.lost())
        .await
        .expect("the holder never noticed it lost its lease");
    // A giving its lease back does not free B's.
    held_by_a.release().await;
    assert!(a.try_lease("s1", ttl).await.unwrap().is_none());
    assert!(!held_by_b.is_lost());
    held_by_b.release().await;
    assert!(a.try_lease("s1", ttl).await.unwrap().is_some());
}

#[tokio::test]
async fn a_live_holder_keeps_its_lease_beyond_the_ttl() {
    let server = RedisServer::start();
    let (a, b) = (redis_store(&server), redis_store(&server));
    let ttl = Duration::from_millis(600);
    let lease = a.try_lease("s1", ttl).await.unwrap().unwrap();
    // Several TTLs pass; the holder's renewals keep the session its own.
    tokio::time::sleep(ttl * 3).await;
    assert!(b.try_lease("s1", ttl).await.unwrap().is_none());
    assert!(!lease.is_lost());
    lease.release().await;
    assert!(b.try_lease("s1", ttl).await.unwrap().is_some());
}

#[tokio::test]
async fn a_dead_holders_lease_expires_after_its_ttl() {
    let server = RedisServer::start();
    let ttl = Duration::from_secs(1);
    let options = RedisStoreOptions::new(server.url(), server.prefix());
    // The holder runs on a runtime of its own that then stops, taking the
    // renewal task with it and never releasing: a replica killed mid-turn.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lease = runtime.block_on(async {
            let store = RedisStore::open(&options).unwrap();
            store.try_lease("s1", ttl).await.unwrap().unwrap()
        });
        std::mem::forget(lease);
        drop(runtime);
    })
    .join()
    .unwrap();
    let died = Instant::now();
    let survivor = redis_store(&server);
    assert!(
        survivor.try_lease("s1", ttl).await.unwrap().is_none(),
        "the session was free at once"
    );
    let lease = tokio::time::timeout(ttl + Duration::from_secs(5), async {
        loop {
            if let Some(lease) = survivor.try_lease("s1", ttl).await.unwrap() {
                return lease;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the dead holder's lease never expired");
    // It held for (most of) its TTL after the holder's last renewal.
    assert!(died.elapsed() <= ttl + Duration::from_secs(2));
    lease.release().await;
}

#[tokio::test]
async fn keys_follow_the_documented_layout() {
    let server = RedisServer::start();
    let store = redis_store(&server);
    store.create(&meta("s1")).await.unwrap();
    store.append("s1", &user("hi")).await.unwrap();
    store.remember("s1", "write_file", true).await.unwrap();
    let lease = store.try_lease("s1", LONG_TTL).await.unwrap().unwrap();
    let mut raw = crate::redis_server::raw(&server).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", server.prefix()))
        .query_async(&mut raw)
        .await
        .unwrap();
    let keys: BTreeSet<String> = keys.into_iter().collect();
    let p = server.prefix();
    let expected: BTreeSet<String> = [
        format!("{p}:session:s1"),
        format!("{p}:sessions"),
        format!("{p}:lease:s1"),
        format!("{p}:approvals:s1"),
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    // The records are the file store's lines, one list element each.
    let records: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{p}:session:s1"))
        .arg(0)
        .arg(-1)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records[0].starts_with("{\"type\":\"session\",\"id\":\"s1\""),
        "{}",
        records[0]
    );
    assert_eq!(
        records[1],
        "{\"type\":\"message\",\"at_ms\":2,\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}}"
    );
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(format!("{p}:lease:s1"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(ttl_ms > 0 && ttl_ms <= 30_000, "{ttl_ms}");
    lease.release().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{p}:lease:s1"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(exists, 0, "a released lease leaves no key");
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_as_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Retried briefly: nothing will ever answer.
    let store = RedisStore::open(&RedisStoreOptions {
        retry_window: Duration::from_millis(300),
        ..RedisStoreOptions::new(format!("redis://:hunter2@127.0.0.1:{port}/0"), "p")
    })
    .unwrap();
    let error = store.check().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(matches!(
        store.load("s1").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn foreign_data_under_the_prefix_is_a_store_error() {
    let server = RedisServer::start();
    let store = redis_store(&server);
    let _: () = redis::cmd("SET")
        .arg(format!("{}:session:s1", server.prefix()))
        .arg("not a list")
        .query_async(&mut crate::redis_server::raw(&server).await)
        .await
        .unwrap();
    let error = store.load("s1").await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("WRONGTYPE"), "{error}");
}
