//! `[server.users.NAME]` and `[server.oidc]`: who may use a shared server
//! (docs/security.md, "Users").

use serde::Deserialize;

use crate::Secret;

/// What a user may do beyond its own sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    #[default]
    User,
    Admin,
}

/// One user of a shared server, known by a static token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    /// The environment variable holding the user's token (filled into
    /// `token` at load).
    pub token_env: Option<String>,
    /// The token itself; prefer `token_env`.
    pub token: Option<Secret>,
    pub role: UserRole,
    /// This user's limits, key by key over `[server.limits]`. An entry with
    /// limits and no token sets the limits of a user known by OIDC.
    pub limits: LimitsConfig,
}

impl UserConfig {
    /// An entry that only sets limits (of a user known by OIDC).
    pub fn is_limits_only(&self) -> bool {
        self.token_env.is_none() && self.token.is_none() && self.limits != LimitsConfig::default()
    }
}

/// Per-user limits of a server (`[server.limits]` for everyone,
/// `[server.users.NAME.limits]` per user; docs/security.md, "Limits").
/// An absent key is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Turns of one user running at once (a sub-agent's turn runs in its
    /// parent's).
    pub concurrent_turns: Option<u32>,
    /// Sessions one user may create per UTC day (sub-agents' do not count).
    pub sessions_per_day: Option<u32>,
    /// HTTP requests (REST calls and socket opens) per user per minute, at
    /// the gateway.
    pub requests_per_minute: Option<u32>,
    /// Input plus output tokens of one user's LLM calls per UTC day.
    pub tokens_per_day: Option<u64>,
}

impl LimitsConfig {
    /// `self`'s keys where set, else `defaults`'.
    pub fn over(&self, defaults: &LimitsConfig) -> LimitsConfig {
        LimitsConfig {
            concurrent_turns: self.concurrent_turns.or(defaults.concurrent_turns),
            sessions_per_day: self.sessions_per_day.or(defaults.sessions_per_day),
            requests_per_minute: self.requests_per_minute.or(defaults.requests_per_minute),
            tokens_per_day: self.tokens_per_day.or(defaults.tokens_per_day),
        }
    }
}

/// Default clock skew allowed on `exp` and `nbf`, in seconds.
pub const DEFAULT_OIDC_LEEWAY_SECS: u64 = 60;
/// Default time a fetched key set is used before it is fetched again.
pub const DEFAULT_JWKS_CACHE_SECS: u64 = 300;
/// Default shortest time between two fetches caused by an unknown `kid`.
pub const DEFAULT_JWKS_MIN_REFETCH_SECS: u64 = 30;

/// Bearer tokens that are JWTs signed by an OpenID Connect issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// Accepted `aud` values; a token must name one of them.
    pub audience: Vec<String>,
    /// Where the issuer publishes its signing keys (JWK Set).
    pub jwks_url: String,
    /// Accepted signing algorithms (`RS256`, `ES256`, `EdDSA`, ...); `none`
    /// and HMAC are never accepted.
    pub algorithms: Vec<String>,
    pub leeway_secs: u64,
    pub jwks_cache_secs: u64,
    pub jwks_min_refetch_secs: u64,
    /// The claim holding the user id.
    pub user_claim: String,
    /// The claim holding the user's roles (a string or a list); "" = every
    /// token is a plain user.
    pub role_claim: String,
    /// The value of `role_claim` that makes an admin.
    pub admin_role: String,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: Vec::new(),
            jwks_url: String::new(),
            algorithms: vec!["RS256".to_owned(), "ES256".to_owned()],
            leeway_secs: DEFAULT_OIDC_LEEWAY_SECS,
            jwks_cache_secs: DEFAULT_JWKS_CACHE_SECS,
            jwks_min_refetch_secs: DEFAULT_JWKS_MIN_REFETCH_SECS,
            user_claim: "sub".to_owned(),
            role_claim: String::new(),
            admin_role: "admin".to_owned(),
        }
    }
}

/// Algorithms `[server.oidc] algorithms` may name.
pub const OIDC_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];
