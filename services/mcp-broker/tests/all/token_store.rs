//! The OAuth token stores (files and Redis) and the refresh lock across
//! processes: several brokers sharing one rotating refresh token use it
//! once, the others take the tokens the winner stored. Each "process" here
//! is a store of its own (its own Redis connection, or its own lock file
//! handle), against a token endpoint that rotates refresh tokens and
//! counts reuse.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use openheim_mcp_broker::oauth::{StoredTokens, TokenSession, TokenStore};
use serde_json::json;

/// Refresh tokens each work once; the answer is slow, to widen the race.
#[derive(Default)]
struct Endpoint {
    valid: Mutex<HashSet<String>>,
    issued: Mutex<u32>,
    reused: Mutex<u32>,
}

async fn token(State(state): State<Arc<Endpoint>>, body: String) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let refresh = form
        .iter()
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(200)).await;
    if !state.valid.lock().unwrap().remove(&refresh) {
        *state.reused.lock().unwrap() += 1;
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant" })),
        )
            .into_response();
    }
    let n = {
        let mut issued = state.issued.lock().unwrap();
        *issued += 1;
        *issued
    };
    let next = format!("rt-{n}");
    state.valid.lock().unwrap().insert(next.clone());
    axum::Json(json!({
        "access_token": format!("at-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": next,
    }))
    .into_response()
}

async fn endpoint() -> (Arc<Endpoint>, String) {
    let state = Arc::new(Endpoint::default());
    state.valid.lock().unwrap().insert("rt-0".into());
    let app = axum::Router::new()
        .route("/token", post(token))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, format!("http://{address}/token"))
}

/// Tokens whose access token has expired, with the refresh token `rt-0`.
fn expired(token_endpoint: &str) -> StoredTokens {
    StoredTokens {
        server_url: "http://127.0.0.1:9/mcp".into(),
        resource: "http://127.0.0.1:9/mcp".into(),
        issuer: "http://127.0.0.1:9".into(),
        token_endpoint: token_endpoint.into(),
        client_id: "c1".into(),
        client_secret: None,
        access_token: "at-0".into(),
        refresh_token: Some("rt-0".into()),
        expires_at: Some(1),
        scope: None,
        wanted_scope: None,
    }
}

/// Three "processes" refresh the same expired tokens at once: one refresh
/// reaches the endpoint, every process ends with its result, and the
/// store holds the rotated refresh token.
async fn one_refresh_for_all(stores: [TokenStore; 3]) {
    let (endpoint_state, url) = endpoint().await;
    stores[0].write("tracker", &expired(&url)).await.unwrap();
    let mut sessions = Vec::new();
    for store in &stores {
        let session = TokenSession::load(store, "tracker", reqwest::Client::new())
            .await
            .unwrap()
            .expect("the tokens were stored");
        sessions.push(session);
    }
    let bearers = futures::future::join_all(sessions.iter().map(|session| session.bearer())).await;
    for bearer in bearers {
        assert_eq!(bearer.unwrap(), "at-1");
    }
    assert_eq!(*endpoint_state.issued.lock().unwrap(), 1);
    assert_eq!(*endpoint_state.reused.lock().unwrap(), 0);
    let stored = stores[2].read("tracker").await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.as_deref(), Some("rt-1"));
    assert_eq!(stored.access_token, "at-1");
    // A server refusing the new token: the next refresh uses the rotated one.
    let again = sessions[1].after_rejection("at-1").await.unwrap();
    assert_eq!(again, "at-2");
    assert_eq!(*endpoint_state.reused.lock().unwrap(), 0);
    assert_eq!(
        stores[0]
            .read("tracker")
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .as_deref(),
        Some("rt-2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_sharing_redis_refresh_once() {
    let redis = openheim_test_redis::RedisServer::start();
    let store = || TokenStore::redis(redis.url(), redis.prefix());
    one_refresh_for_all([store(), store(), store()]).await;

    // The tokens are under PREFIX:mcp-auth:NAME, as JSON; logout deletes them.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:mcp-auth:tracker", redis.prefix());
    let raw: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(value["refresh_token"], "rt-2");
    let lock: Option<String> = redis::cmd("GET")
        .arg(format!("{key}:lock"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(lock, None, "the refresh lock was not released");
    assert!(store().remove("tracker").await.unwrap());
    assert!(!store().remove("tracker").await.unwrap());
    assert!(store().read("tracker").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_data_directory_refresh_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = || TokenStore::files(dir.path().join("mcp-auth"));
    one_refresh_for_all([store(), store(), store()]).await;
}

/// A lock that expired and was taken by another process is not released
/// by its first holder (compare and delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_lock_is_released_only_by_its_holder() {
    let redis = openheim_test_redis::RedisServer::start();
    let store = TokenStore::redis(redis.url(), redis.prefix());
    let key = format!("{}:mcp-auth:tracker:lock", redis.prefix());
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();

    let first = store.lock("tracker").await.unwrap();
    // Its time ran out; another process holds the lock now.
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("someone-else")
        .query_async(&mut connection)
        .await
        .unwrap();
    first.release().await;
    let holder: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(holder.as_deref(), Some("someone-else"));

    let () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    let second = store.lock("tracker").await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(ttl > 0, "the lock must expire on its own (PTTL {ttl})");
    second.release().await;
    let holder: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(holder, None);
}
