//! OIDC bearer tokens: JWTs verified against the issuer's published keys
//! (`[server.oidc]`, docs/security.md "Users"). The key set is fetched on
//! first use, kept for `jwks_cache_secs`, and fetched again early when a
//! token names a key (`kid`) it does not hold — at most once per
//! `jwks_min_refetch_secs`, so forged `kid`s cannot make the gateway hammer
//! the issuer. `none` and HMAC algorithms are never accepted: the key set is
//! public.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use openheim_access::{Principal, Role, check_user_id};
use openheim_config::{OidcConfig, redact_url};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

/// Largest key set accepted, in bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long one fetch of the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a JWT is refused (the client only ever sees "unauthorized").
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("not a valid JWT: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("no key {0:?} in the issuer's key set")]
    UnknownKey(String),
    #[error("cannot fetch the issuer's key set: {0}")]
    Fetch(String),
    #[error("claim {claim:?}: {why}")]
    Claim { claim: String, why: String },
}

/// The keys of the issuer, by `kid`, and when they were fetched.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, (DecodingKey, AlgorithmFamily)>,
    fetched: Option<Instant>,
}

/// Verifies JWTs of one issuer.
pub struct JwtVerifier {
    config: OidcConfig,
    validation: Validation,
    http: reqwest::Client,
    cache: Mutex<KeyCache>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("jwks_url", &redact_url(&self.config.jwks_url))
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `config` (validated: known algorithms, an issuer,
    /// an audience).
    pub fn new(config: &OidcConfig) -> Result<Self, JwtError> {
        let algorithms: Vec<Algorithm> = config
            .algorithms
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .filter(|a| !matches!(a.family(), AlgorithmFamily::Hmac))
            .collect();
        let Some(first) = algorithms.first() else {
            return Err(JwtError::Fetch("no usable algorithm configured".into()));
        };
        let mut validation = Validation::new(*first);
        validation.algorithms = algorithms;
        validation.leeway = config.leeway_secs;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&config.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| JwtError::Fetch(e.to_string()))?;
        Ok(Self {
            config: config.clone(),
            validation,
            http,
            cache: Mutex::new(KeyCache::default()),
        })
    }

    /// The principal `token` names, when its signature, issuer, audience,
    /// algorithm and times are right.
    pub async fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        let header = jsonwebtoken::decode_header(token)?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(JwtError::Algorithm(header.alg));
        }
        let kid = header.kid.unwrap_or_default();
        let key = self.key(&kid, header.alg.family()).await?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)?;
        self.principal(&data.claims)
    }

    /// The key named `kid` (`""`: the only key of the set), fetching the
    /// set when it is stale, or when `kid` is unknown and the last fetch is
    /// old enough.
    async fn key(&self, kid: &str, family: AlgorithmFamily) -> Result<DecodingKey, JwtError> {
        let mut cache = self.cache.lock().await;
        let age = cache.fetched.map(|at| at.elapsed());
        let stale = age.is_none_or(|a| a >= Duration::from_secs(self.config.jwks_cache_secs));
        let missing = find(&cache.keys, kid, family).is_none();
        let may_refetch =
            age.is_none_or(|a| a >= Duration::from_secs(self.config.jwks_min_refetch_secs));
        if stale || (missing && may_refetch) {
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched = Some(Instant::now());
                }
                // A stale set still verifies until the issuer answers again.
                Err(error) if !cache.keys.is_empty() => {
                    tracing::warn!(%error, "keeping the cached key set");
                    cache.fetched = Some(Instant::now());
                }
                Err(error) => return Err(error),
            }
        }
        find(&cache.keys, kid, family).ok_or_else(|| JwtError::UnknownKey(kid.to_owned()))
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, AlgorithmFamily)>, JwtError> {
        let failed = |e: &dyn std::fmt::Display| JwtError::Fetch(e.to_string());
        let response = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        if !response.status().is_success() {
            return Err(failed(&format!("HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(&e))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(failed(&"the key set is larger than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| failed(&e))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            match DecodingKey::from_jwk(jwk) {
                Ok(key) if !matches!(key.family(), AlgorithmFamily::Hmac) => {
                    let family = key.family();
                    keys.insert(kid, (key, family));
                }
                Ok(_) => tracing::debug!(kid, "symmetric key in the key set ignored"),
                Err(error) => tracing::debug!(kid, %error, "unusable key in the key set"),
            }
        }
        tracing::debug!(keys = keys.len(), "fetched the issuer's key set");
        Ok(keys)
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, JwtError> {
        let claim_error = |claim: &str, why: &str| JwtError::Claim {
            claim: claim.to_owned(),
            why: why.to_owned(),
        };
        let user_claim = &self.config.user_claim;
        let user = claims
            .get(user_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| claim_error(user_claim, "missing or not a string"))?;
        check_user_id(user).map_err(|why| claim_error(user_claim, &why.to_string()))?;
        let role_claim = &self.config.role_claim;
        let admin = !role_claim.is_empty()
            && match claims.get(role_claim) {
                Some(Value::String(role)) => *role == self.config.admin_role,
                Some(Value::Array(roles)) => roles
                    .iter()
                    .any(|r| r.as_str() == Some(&self.config.admin_role)),
                _ => false,
            };
        let role = if admin { Role::Admin } else { Role::User };
        Ok(Principal::new(user, role))
    }
}

/// The key `kid` names, of the token's algorithm family; with no `kid`,
/// the set's only key of that family.
fn find(
    keys: &HashMap<String, (DecodingKey, AlgorithmFamily)>,
    kid: &str,
    family: AlgorithmFamily,
) -> Option<DecodingKey> {
    if kid.is_empty() {
        let mut of_family = keys.values().filter(|(_, f)| *f == family);
        let only = of_family.next()?;
        return of_family.next().is_none().then(|| only.0.clone());
    }
    keys.get(kid)
        .filter(|(_, f)| *f == family)
        .map(|(key, _)| key.clone())
}
