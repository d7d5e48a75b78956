//! The shared Redis fixture (`openheim-test-redis`), plus a plain connection
//! for looking at and damaging stored data.

pub use openheim_test_redis::RedisServer;

pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test Redis at {}: {e}", server.url()))
}
