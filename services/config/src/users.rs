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

/// `server.workspaces`: how a server divides its `work_dir` between users
/// (docs/security.md, "Workspaces").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspacesConfig {
    /// Everyone in `work_dir` itself.
    Shared,
    /// Each user in `<work_dir>/<user>/`.
    User,
    /// Each session in `<work_dir>/<user>/<session id>/`.
    Session,
}

/// `server.workspaces` where an empty value (an unset variable in a
/// compose file, `OPENHEIM_SERVER__WORKSPACES=`) means "not set".
pub(crate) fn empty_is_unset<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<WorkspacesConfig>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(mode) => {
            WorkspacesConfig::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(mode))
                .map(Some)
        }
    }
}

impl From<WorkspacesConfig> for openheim_access::WorkspaceMode {
    fn from(mode: WorkspacesConfig) -> Self {
        match mode {
            WorkspacesConfig::Shared => Self::Shared,
            WorkspacesConfig::User => Self::User,
            WorkspacesConfig::Session => Self::Session,
        }
    }
}

/// `[server.projects.NAME]`: a directory several users share on purpose.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectConfig {
    /// Relative to `work_dir`; its first component starts with a dot
    /// (`.projects/web`), which no user's directory can.
    pub path: std::path::PathBuf,
    /// User ids that may create sessions in it.
    pub members: Vec<String>,
}

impl crate::ServerConfig {
    /// `server.workspaces`, or its default: one directory per user when
    /// users are configured (`[server.users]`, `[server.oidc]`), the shared
    /// `work_dir` otherwise (a single-user server, as before).
    pub fn workspace_mode(&self) -> openheim_access::WorkspaceMode {
        match self.workspaces {
            Some(mode) => mode.into(),
            None if !self.users.is_empty() || self.oidc.is_some() => {
                openheim_access::WorkspaceMode::User
            }
            None => openheim_access::WorkspaceMode::Shared,
        }
    }

    /// The server's workspaces under `root` (the canonical `work_dir`).
    pub fn workspaces_under(&self, root: std::path::PathBuf) -> openheim_access::Workspaces {
        workspaces_under(root, self.workspace_mode(), &self.projects)
    }
}

/// The workspaces under `root` (the canonical `work_dir`) divided by
/// `mode`, with `projects` (paths relative to `root`).
pub fn workspaces_under(
    root: std::path::PathBuf,
    mode: openheim_access::WorkspaceMode,
    projects: &std::collections::BTreeMap<String, ProjectConfig>,
) -> openheim_access::Workspaces {
    let projects = projects
        .iter()
        .map(|(name, project)| openheim_access::Project {
            name: name.clone(),
            path: root.join(&project.path),
            members: project.members.clone(),
        })
        .collect();
    openheim_access::Workspaces::new(root, mode, projects)
}
