//! Users of one `openheim serve`: JWTs of an OIDC issuer whose key set a
//! loopback HTTP server of the test publishes (docs/security.md, "Users").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::support::{Framing, Server, WsClient};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "openheim";

/// A signing key of the test issuer.
struct TestKey {
    kid: String,
    key: EncodingKey,
}

impl TestKey {
    fn new(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        Self {
            kid: kid.to_owned(),
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    /// A token for `claims`, with this key's `kid` unless `kid` says
    /// otherwise.
    fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.unwrap_or(&self.kid).to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now()})
}

/// The issuer's key set on loopback, replaceable, counting fetches.
struct Jwks {
    url: String,
    set: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl Jwks {
    async fn serve(keys: &[&TestKey]) -> Self {
        let set = Arc::new(Mutex::new(Value::Null));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = {
            let (set, fetches) = (Arc::clone(&set), Arc::clone(&fetches));
            axum::Router::new().route(
                "/jwks",
                axum::routing::get(move || {
                    let (set, fetches) = (Arc::clone(&set), Arc::clone(&fetches));
                    async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        axum::Json(set.lock().unwrap().clone())
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let jwks = Self { url, set, fetches };
        jwks.publish(keys);
        jwks
    }

    fn publish(&self, keys: &[&TestKey]) {
        let set = JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        };
        *self.set.lock().unwrap() = serde_json::to_value(set).unwrap();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn oidc_config(jwks: &Jwks, min_refetch_secs: u64) -> String {
    format!(
        "[server.oidc]\nissuer = \"{ISSUER}\"\naudience = [\"{AUDIENCE}\"]\njwks_url = \"{}\"\n\
         algorithms = [\"ES256\"]\nleeway_secs = 5\njwks_min_refetch_secs = {min_refetch_secs}\n",
        jwks.url
    )
}

/// `alg: none`: a header, claims and no signature.
fn unsigned(claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.",
        part(&json!({"alg": "none", "typ": "JWT"})),
        part(claims)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_valid_jwts_of_the_issuer_pass_and_a_rotated_key_is_fetched() {
    let (k1, k2) = (TestKey::new("k1"), TestKey::new("k2"));
    let jwks = Jwks::serve(&[&k1]).await;
    let server = Server::start(Vec::new(), &oidc_config(&jwks, 2)).await;
    let status = |token: String| {
        let server = &server;
        async move { server.get("/api/sessions", Some(&token)).await.0 }
    };

    assert_eq!(status(k1.sign(&claims("alice"), None)).await, 200);
    assert_eq!(jwks.fetches(), 1);
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 120);
    assert_eq!(status(k1.sign(&expired, None)).await, 401, "expired");
    let mut wrong_aud = claims("alice");
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(status(k1.sign(&wrong_aud, None)).await, 401, "audience");
    let mut wrong_iss = claims("alice");
    wrong_iss["iss"] = json!("https://evil.test");
    assert_eq!(status(k1.sign(&wrong_iss, None)).await, 401, "issuer");
    assert_eq!(status(unsigned(&claims("alice"))).await, 401, "alg none");
    // Signed by another key but claiming k1's kid.
    assert_eq!(status(k2.sign(&claims("alice"), Some("k1"))).await, 401);
    // No user id claim.
    let mut no_sub = claims("alice");
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_eq!(status(k1.sign(&no_sub, None)).await, 401, "no sub");

    // A kid the set does not hold: refused; fetched again at most once per
    // jwks_min_refetch_secs, however many such tokens arrive.
    for _ in 0..3 {
        assert_eq!(
            status(k2.sign(&claims("bob"), None)).await,
            401,
            "unknown kid"
        );
    }
    assert_eq!(jwks.fetches(), 1, "refetches are rate limited");

    // The issuer rotates to k2: once the interval has passed, the unknown
    // kid makes the gateway fetch the set again, and the token passes.
    jwks.publish(&[&k2]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(status(k2.sign(&claims("bob"), None)).await, 200, "rotated");
    assert_eq!(jwks.fetches(), 2);
    // The retired key no longer verifies.
    assert_eq!(
        status(k1.sign(&claims("alice"), None)).await,
        401,
        "retired"
    );
    // The same key set also authenticates sockets (token in the query).
    let token = k2.sign(&claims("bob"), None);
    let (code, _) = server
        .get(&format!("/api/config?token={token}"), None)
        .await;
    assert_eq!(code, 200);
}

const USERS: &str = "[server.users.alice]\ntoken_env = \"ALICE_TOKEN\"\n\
    [server.users.bob]\ntoken_env = \"BOB_TOKEN\"\n\
    [server.users.root]\ntoken_env = \"ROOT_TOKEN\"\nrole = \"admin\"\n\
    [memory]\nenabled = true\n";
use super::workspaces::{ALICE, BOB};
const ROOT: &str = "tok-root";
/// A session id no one has.
const MISSING: &str = "0f3c2a9e-8d1b-4c7a-9e55-2b6f4d1a7c30";

fn remember(id: &str, text: &str) -> openheim_e2e::Reply {
    let args = json!({"text": text, "scope": "user"});
    openheim_e2e::Reply::tool_calls(vec![
        openheim_e2e::ToolCallSpec::new("remember", args).with_id(id),
    ])
}

/// Alice's turn remembers a note, then answers; Bob's answers.
fn script() -> Vec<openheim_e2e::Reply> {
    vec![
        remember("r1", "alice's private note"),
        openheim_e2e::Reply::text("Noted, Alice."),
        openheim_e2e::Reply::text("Hello, Bob."),
    ]
}

async fn users_server() -> Server {
    let mock = openheim_e2e::MockLlm::start(script()).await;
    let install = openheim_e2e::Install::new(&mock, "");
    let env = [
        ("ALICE_TOKEN", ALICE),
        ("BOB_TOKEN", BOB),
        ("ROOT_TOKEN", ROOT),
    ];
    Server::start_with(mock, install, USERS, &env).await
}

async fn acp_as(server: &Server, token: &str) -> WsClient {
    let url = server.ws_url(&format!("/acp?token={token}"));
    WsClient::connect(&url, &[], Framing::Bare).await.unwrap()
}

fn ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions: {body}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The error code and message of a JSON-RPC answer, with `id` (a session
/// id) replaced, so another user's session and a missing one compare.
fn rpc_error(answer: &Value, id: &str) -> (Value, String) {
    let error = &answer["error"];
    assert!(!error.is_null(), "expected an error: {answer}");
    let text = error.to_string().replace(id, "ID");
    (error["code"].clone(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_and_touch_only_their_own_sessions_and_notes() {
    let server = users_server().await;
    two_users(&server).await;
}

/// The same users on the distributed deployment: a standalone gateway in
/// front of two agent-loop replicas sharing one Redis (sessions and notes
/// in Redis); the owner travels to agent-loop over gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_kept_apart_on_the_distributed_deployment_with_redis() {
    let mock = openheim_e2e::MockLlm::start(script()).await;
    let install = super::workspaces::outside_temp(&mock);
    let redis = openheim_e2e::RedisServer::start();
    let root = std::fs::canonicalize(install.workspace()).unwrap();
    for reply in super::workspaces::alices_attempts(&root) {
        mock.push_reply(reply);
    }
    // agent-loop does not know the users (the gateway does): it is told to
    // give each caller a directory of their own.
    let replicas = crate::e2e::redis_store::Replicas::start_with(
        &install,
        &mock,
        &redis,
        10,
        "[memory]\nenabled = true\n[server]\nworkspaces = \"user\"\n",
    )
    .await;
    let config = install.root.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "default_provider = \"mock\"\nwork_dir = \"{}\"\n\n[providers.mock]\nkind = \"openai_compatible\"\napi_base = \"{}\"\ndefault_model = \"mock-model\"\n\n[services]\nagent_loop = \"{}, {}\"\ntool_executor = \"{}\"\n{USERS}",
            install.workspace().display(),
            mock.base_url(),
            replicas.a.addr(),
            replicas.b.addr(),
            replicas.tool_executor().url()
        ),
    )
    .unwrap();
    let home = install.home();
    let env = [
        ("OPENHEIM_CONFIG", config.to_str().unwrap()),
        ("OPENHEIM_HOME", home.to_str().unwrap()),
        ("RUST_LOG", "warn"),
        ("ALICE_TOKEN", ALICE),
        ("BOB_TOKEN", BOB),
        ("ROOT_TOKEN", ROOT),
    ];
    let process = openheim_e2e::ServiceProcess::spawn("openheim-gateway", &[], &env).await;
    let server = Server {
        mock,
        install,
        process,
    };
    two_users(&server).await;
    // Their files too: the fs channel through the gateway's tool-executor,
    // the tools and the shell of a turn on an agent-loop replica.
    super::workspaces::files_are_kept_apart(&server, &root).await;
}

/// Alice and Bob each open a session and run a turn; then every REST route
/// and ACP method is tried across users.
async fn two_users(server: &Server) {
    let workspace = server.install.workspace();

    let mut alice = acp_as(server, ALICE).await;
    let a = alice.open_session(&workspace).await;
    let turn = alice.prompt(&a, "remember this", "allow_once").await;
    assert_eq!(turn.stop_reason, "end_turn", "{turn:?}");
    let mut bob = acp_as(server, BOB).await;
    let b = bob.open_session(&workspace).await;
    assert_eq!(
        bob.prompt(&b, "hi", "allow_once").await.stop_reason,
        "end_turn"
    );

    // REST listings: each their own; the admin all of them on request.
    let (_, listed) = server.get("/api/sessions", Some(ALICE)).await;
    assert_eq!(ids(&listed), vec![a.clone()]);
    let (_, listed) = server.get("/api/sessions", Some(BOB)).await;
    assert_eq!(ids(&listed), vec![b.clone()]);
    let (_, listed) = server.get("/api/sessions?q=remember", Some(BOB)).await;
    assert_eq!(ids(&listed), Vec::<String>::new(), "title search");
    let (_, listed) = server.get("/api/sessions?all=true", Some(ROOT)).await;
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(ids(&listed), both);
    let (_, listed) = server
        .get("/api/sessions?q=remember&all=true", Some(ROOT))
        .await;
    assert_eq!(ids(&listed), vec![a.clone()]);
    let (status, _) = server.get("/api/sessions?all=true", Some(ALICE)).await;
    assert_eq!(status, 403, "only admins list everyone's");

    // Another user's session reads exactly like a missing one.
    let (status, theirs) = server.get(&format!("/api/sessions/{a}"), Some(BOB)).await;
    let (missing_status, missing) = server
        .get(&format!("/api/sessions/{MISSING}"), Some(BOB))
        .await;
    assert_eq!((status, missing_status), (404, 404));
    assert_eq!(
        theirs.to_string().replace(&a, "ID"),
        missing.to_string().replace(MISSING, "ID")
    );
    assert_eq!(
        server
            .get(&format!("/api/sessions/{a}"), Some(ALICE))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .get(&format!("/api/sessions/{b}"), Some(ROOT))
            .await
            .0,
        200
    );

    // ACP: Bob cannot list, load (resume), prompt, or change Alice's session.
    let listed = bob.request("session/list", json!({})).await;
    let listed: Vec<&str> = listed["result"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [b.as_str()]);
    let load = |id: &str| json!({"sessionId": id, "cwd": workspace, "mcpServers": []});
    let theirs = bob.request("session/load", load(&a)).await;
    let missing = bob.request("session/load", load(MISSING)).await;
    assert_eq!(rpc_error(&theirs, &a), rpc_error(&missing, MISSING));
    let prompt = json!({"sessionId": a, "prompt": [{"type": "text", "text": "hi"}]});
    let refused = bob.request("session/prompt", prompt).await;
    assert!(!refused["error"].is_null(), "{refused}");
    let mode = json!({"sessionId": a, "modeId": "read-only"});
    assert!(!bob.request("session/set_mode", mode).await["error"].is_null());
    // Alice still loads her own.
    let own = alice.request("session/load", load(&a)).await;
    assert!(own["error"].is_null(), "{own}");

    // Memory: Alice's note is hers, also through ACP's `/memory`.
    let mine = alice.prompt(&a, "/memory private", "allow_once").await;
    assert!(mine.text().contains("alice's private note"), "{mine:?}");
    let theirs = bob.prompt(&b, "/memory private", "allow_once").await;
    assert_eq!(theirs.text(), "No memory notes.");
    let (_, notes) = server.get("/api/memory?all=true", Some(ALICE)).await;
    let notes = notes["notes"]
        .as_array()
        .unwrap_or_else(|| panic!("{notes}"))
        .clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["text"], "alice's private note");
    let note = notes[0]["id"].as_str().unwrap();
    let (_, seen) = server.get("/api/memory?all=true", Some(BOB)).await;
    assert_eq!(seen["notes"], json!([]));
    let (_, seen) = server.get("/api/memory?query=private", Some(BOB)).await;
    assert_eq!(seen["notes"], json!([]));
    assert_eq!(
        server
            .delete(&format!("/api/memory/{note}"), Some(BOB))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .delete(&format!("/api/memory/{note}"), Some(ALICE))
            .await
            .0,
        200
    );

    // Nothing reached the provider but the two turns (three LLM calls).
    assert_eq!(server.mock.requests().len(), 3);
    alice.close().await;
    bob.close().await;
}
