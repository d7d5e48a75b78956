//! Who may do what. A request is made by a [`Principal`] (a user id and a
//! [`Role`]); what it may do with a resource is decided by [`authorize`],
//! the one rule the gateway's routes and agent-loop's RPCs apply, so the
//! same answer holds in one process and in a distributed deployment
//! (`docs/security.md`, "Users").
//!
//! Where a principal's files are is [`workspace`]'s rule: one directory per
//! user (or session) under a server's workspace root, and shared projects.
//!
//! A resource another user owns is answered [`Decision::NotFound`], exactly
//! as a missing one: a caller learns nothing about what others have.

pub mod workspace;

pub use workspace::{Project, SessionDir, WorkspaceError, WorkspaceMode, Workspaces};

/// The user of a single-user setup: the local CLI, TUI and `openheim acp`
/// over stdio, `server.auth_tokens`, and every session or note stored
/// before owners were recorded (an empty owner).
pub const LOCAL_USER: &str = "default";

/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// What a principal may do beyond its own resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Its own sessions and notes only.
    User,
    /// Also lists and reads every user's sessions.
    Admin,
}

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

impl Principal {
    pub fn new(user: impl Into<String>, role: Role) -> Self {
        Self {
            user: user.into(),
            role,
        }
    }

    /// The local user (an admin of its own machine).
    pub fn local() -> Self {
        Self::new(LOCAL_USER, Role::Admin)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether `owner` (as stored: `""` is [`LOCAL_USER`]) is this user.
    pub fn owns(&self, owner: &str) -> bool {
        owner_or_local(owner) == self.user
    }
}

/// A stored owner as a user id: `""` (recorded before owners were) is the
/// local user.
pub fn owner_or_local(owner: &str) -> &str {
    if owner.is_empty() { LOCAL_USER } else { owner }
}

/// Why a user id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadUserId {
    #[error("the user id is empty")]
    Empty,
    #[error("the user id is longer than {MAX_USER_ID_BYTES} bytes")]
    TooLong,
    #[error("the user id contains a control character")]
    Control,
}

/// What a principal asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// List its own sessions.
    ListOwnSessions,
    /// List every user's sessions.
    ListAllSessions,
    /// Read a session: load its history, list its children, tools and
    /// MCP servers.
    ReadSession,
    /// Act in a session: prompt, resume, cancel, change its model, mode or
    /// skills, attach MCP servers.
    UseSession,
    /// Delete a session.
    DeleteSession,
    /// Read or forget a memory note.
    UseMemoryNote,
    /// Read what the deployment offers (configuration without secrets,
    /// models, tools, skills).
    ReadDeployment,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::ListOwnSessions,
        Action::ListAllSessions,
        Action::ReadSession,
        Action::UseSession,
        Action::DeleteSession,
        Action::UseMemoryNote,
        Action::ReadDeployment,
    ];
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    /// Refused without saying whether the resource exists.
    NotFound,
    /// Refused: the principal may never do this (listing every user's
    /// sessions without being an admin).
    Forbidden,
}

/// Whether `principal` may do `action` with a resource owned by
/// `resource_owner` (`None` for actions on no one resource; a stored `""`
/// is the local user).
pub fn authorize(principal: &Principal, action: Action, resource_owner: Option<&str>) -> Decision {
    let owns = resource_owner.is_some_and(|owner| principal.owns(owner));
    match action {
        Action::ListOwnSessions | Action::ReadDeployment => Decision::Allow,
        Action::ListAllSessions if principal.is_admin() => Decision::Allow,
        Action::ListAllSessions => Decision::Forbidden,
        Action::ReadSession if owns || (principal.is_admin() && resource_owner.is_some()) => {
            Decision::Allow
        }
        Action::UseSession | Action::DeleteSession | Action::UseMemoryNote if owns => {
            Decision::Allow
        }
        Action::ReadSession
        | Action::UseSession
        | Action::DeleteSession
        | Action::UseMemoryNote => Decision::NotFound,
    }
}

/// Checks a user id from a token or a claim: not empty, at most
/// [`MAX_USER_ID_BYTES`], no control characters.
pub fn check_user_id(user: &str) -> Result<(), BadUserId> {
    if user.is_empty() {
        Err(BadUserId::Empty)
    } else if user.len() > MAX_USER_ID_BYTES {
        Err(BadUserId::TooLong)
    } else if user.chars().any(char::is_control) {
        Err(BadUserId::Control)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
