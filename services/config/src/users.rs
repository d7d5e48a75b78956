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
