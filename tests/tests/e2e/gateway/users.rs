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

use super::support::Server;

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
