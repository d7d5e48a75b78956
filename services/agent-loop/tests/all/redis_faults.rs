//! The Redis store across Redis faults, with a real `redis-server` that is
//! killed and started again: no request fails because Redis restarted, a
//! write made while it is away lands (once) when it is back, and a lease
//! given back or held across an outage behaves as if there had been none,
//! and a turn whose lease lapsed cannot write into the session any more.

use std::time::{Duration, Instant};

use openheim_agent_loop::store::{RedisStore, RedisStoreOptions, SessionStore, StoreError};

use crate::redis_server::RedisServer;
use crate::store_contract::{meta, user};

const LONG_TTL: Duration = Duration::from_secs(30);

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::open(&RedisStoreOptions::new(server.url(), server.prefix())).unwrap()
}

/// Starts the stopped server again off the runtime's threads (it waits for
/// the server to be ready), so the test's tasks go on meanwhile.
async fn restart(mut server: RedisServer) -> RedisServer {
    tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_requests_after_a_redis_restart_succeed() {
    let server = RedisServer::start_durable();
    let (a, b) = (store(&server), store(&server));
    a.create(&meta("s1")).await.unwrap();
    b.append("s1", &user("before")).await.unwrap();
    let server = restart(server).await;
    // Each replica's connection broke with the restart; the first command
    // of each still succeeds.
    a.append("s1", &user("after")).await.unwrap();
    let loaded = b.load("s1").await.unwrap();
    assert_eq!(loaded.messages.len(), 2, "{:?}", loaded.messages);
    let _server = restart(server).await;
    assert_eq!(a.list(10, None).await.unwrap().sessions.len(), 1);
    let lease = b.try_lease("s1", LONG_TTL).await.unwrap();
    lease.expect("the session is free").release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_written_while_redis_is_down_is_stored_once_when_it_is_back() {
    let mut server = RedisServer::start_durable();
    let writer = store(&server);
    writer.create(&meta("s1")).await.unwrap();
    server.stop();
    let writing = tokio::spawn(async move { writer.append("s1", &user("the reply")).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !writing.is_finished(),
        "the write gave up while Redis was down"
    );
    let server = restart(server).await;
    writing.await.unwrap().expect("the write failed");
    let loaded = store(&server).load("s1").await.unwrap();
    assert_eq!(loaded.messages.len(), 1, "{:?}", loaded.messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_given_back_while_redis_is_down_is_free_as_soon_as_it_is_back() {
    let mut server = RedisServer::start_durable();
    let (a, b) = (store(&server), store(&server));
    let lease = a.try_lease("s1", LONG_TTL).await.unwrap().unwrap();
    server.stop();
    let releasing = tokio::spawn(lease.release());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _server = restart(server).await;
    releasing.await.unwrap();
    // Free now, not when the lease's 30 s TTL runs out.
    let taken = b.try_lease("s1", LONG_TTL).await.unwrap();
    assert!(
        taken.is_some(),
        "the released lease still blocks the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_outlives_an_outage_shorter_than_its_ttl() {
    let ttl = Duration::from_secs(5);
    let mut server = RedisServer::start_durable();
    let (a, b) = (store(&server), store(&server));
    let lease = a.try_lease("s1", ttl).await.unwrap().unwrap();
    server.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _server = restart(server).await;
    // Renewed again once Redis is back, and held beyond the TTL.
    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    assert!(!lease.is_lost());
    assert!(b.try_lease("s1", ttl).await.unwrap().is_none());
    let busy_for = b.busy_for("s1").await.unwrap().expect("a lease TTL");
    assert!(busy_for <= ttl, "{busy_for:?}");
    lease.release().await;
    assert!(b.try_lease("s1", ttl).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_takes_its_lease_again_when_a_restart_lost_it() {
    let ttl = Duration::from_secs(2);
    // No persistence: the restart forgets every key.
    let mut server = RedisServer::start();
    if server.url().ends_with(":6379") {
        return; // the shared Redis cannot be restarted
    }
    let (a, b) = (store(&server), store(&server));
    let lease = a.try_lease("s1", ttl).await.unwrap().unwrap();
    server = restart(server).await;
    // Within one renewal period the holder has put its lease back.
    let deadline = Instant::now() + ttl;
    loop {
        let mut raw = crate::redis_server::raw(&server).await;
        let holder: Option<String> = redis::cmd("GET")
            .arg(format!("{}:lease:s1", server.prefix()))
            .query_async(&mut raw)
            .await
            .unwrap();
        if holder.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the lease was not taken again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.try_lease("s1", ttl).await.unwrap().is_none());
    assert!(!lease.is_lost());
    lease.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_whose_lease_was_taken_over_cannot_write_into_the_session() {
    let server = RedisServer::start();
    let (a, b) = (store(&server), store(&server));
    a.create(&meta("s1")).await.unwrap();
    let lapsed = a.try_lease("s1", LONG_TTL).await.unwrap().unwrap();
    a.append("s1", &user("a's turn")).await.unwrap();
    // A's lease lapses behind its back (as after a long outage) and B's turn
    // takes the session.
    let mut raw = crate::redis_server::raw(&server).await;
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}:lease:s1", server.prefix()))
        .query_async(&mut raw)
        .await
        .unwrap();
    let taken = b.try_lease("s1", LONG_TTL).await.unwrap().unwrap();
    b.append("s1", &user("b's turn")).await.unwrap();
    let refused = a.append("s1", &user("a again")).await.unwrap_err();
    assert!(matches!(refused, StoreError::Fenced(_)), "{refused:?}");
    assert!(!refused.is_retryable());
    assert_eq!(b.load("s1").await.unwrap().messages.len(), 2);
    // Writes to sessions A holds no lease of are not fenced; once B is done
    // and A's lease is given back, A writes again.
    taken.release().await;
    lapsed.release().await;
    a.append("s1", &user("a later")).await.unwrap();
    assert_eq!(b.load("s1").await.unwrap().messages.len(), 3);
}
