//! Where a principal's files are: the one rule that maps a user (and a
//! session) to a directory under a server's workspace root, and that says
//! which directories a session of that user may work in
//! (`docs/security.md`, "Workspaces").
//!
//! Pure path arithmetic, no I/O: callers pass canonical paths (symlinks
//! resolved) and create the directories themselves.

use std::path::{Component, Path, PathBuf};

use crate::Principal;

/// How a server divides its workspace root between users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkspaceMode {
    /// Everyone works in the root itself (a single-user server).
    Shared,
    /// Each user in `<root>/<user>/`.
    User,
    /// Each session in `<root>/<user>/<session id>/`.
    Session,
}

/// A directory several users share on purpose (`[server.projects.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub name: String,
    /// Canonical, inside the root.
    pub path: PathBuf,
    /// User ids that may work in it.
    pub members: Vec<String>,
}

/// Why a path is no workspace of a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    #[error("the user id {user:?} cannot name a directory: {reason}")]
    BadUserId { user: String, reason: &'static str },
    #[error("work_dir {dir} is outside this server's workspace {own}")]
    Outside { dir: String, own: String },
}

/// The workspaces of one server: its root, how it is divided and the
/// shared projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspaces {
    /// Canonical.
    pub root: PathBuf,
    pub mode: WorkspaceMode,
    pub projects: Vec<Project>,
}

impl Workspaces {
    pub fn new(root: PathBuf, mode: WorkspaceMode, projects: Vec<Project>) -> Self {
        Self {
            root,
            mode,
            projects,
        }
    }

    /// The directory of `principal`'s own files: the root when shared,
    /// else `<root>/<user>` (also in session mode: a user's sessions are
    /// directories inside it).
    pub fn user_dir(&self, principal: &Principal) -> Result<PathBuf, WorkspaceError> {
        match self.mode {
            WorkspaceMode::Shared => Ok(self.root.clone()),
            WorkspaceMode::User | WorkspaceMode::Session => {
                check_path_component(&principal.user).map_err(|reason| {
                    WorkspaceError::BadUserId {
                        user: principal.user.clone(),
                        reason,
                    }
                })?;
                Ok(self.root.join(&principal.user))
            }
        }
    }

    /// Where a new session of `principal` works, and the directory its
    /// tools are confined to. `requested` is the canonical directory the
    /// client asked for (`None`: none, or the root itself, which stands for
    /// the caller's own workspace):
    ///
    /// - none: the user's directory (session mode: a new
    ///   `<user>/<session_id>` inside it);
    /// - inside the user's directory: that directory;
    /// - inside a project the user is a member of: that directory, confined
    ///   to the project;
    /// - anything else is refused.
    pub fn session_dir(
        &self,
        principal: &Principal,
        requested: Option<&Path>,
        session_id: &str,
    ) -> Result<SessionDir, WorkspaceError> {
        let own = self.user_dir(principal)?;
        let Some(dir) = requested else {
            let dir = match self.mode {
                WorkspaceMode::Session => own.join(session_id),
                WorkspaceMode::Shared | WorkspaceMode::User => own.clone(),
            };
            return Ok(SessionDir { dir, boundary: own });
        };
        self.boundary_of(principal, dir)
            .map(|boundary| SessionDir {
                dir: dir.to_path_buf(),
                boundary,
            })
            .ok_or_else(|| WorkspaceError::Outside {
                dir: dir.display().to_string(),
                own: own.display().to_string(),
            })
    }

    /// The directory `principal`'s sessions in `dir` (canonical) are
    /// confined to: their own directory or a project they are a member of
    /// that holds `dir`; `None` when neither does.
    pub fn boundary_of(&self, principal: &Principal, dir: &Path) -> Option<PathBuf> {
        let own = self.user_dir(principal).ok()?;
        if is_within(dir, &own) {
            return Some(own);
        }
        self.projects
            .iter()
            .find(|p| is_within(dir, &p.path) && p.members.contains(&principal.user))
            .map(|p| p.path.clone())
    }
}

/// A session's working directory and the directory it is confined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDir {
    pub dir: PathBuf,
    pub boundary: PathBuf,
}

/// Whether `path` is `dir` or below it, comparing whole components; a
/// path with `..` is never within anything.
pub fn is_within(path: &Path, dir: &Path) -> bool {
    let plain = |p: &Path| !p.components().any(|c| c == Component::ParentDir);
    plain(path) && plain(dir) && path.starts_with(dir)
}

/// Whether `name` (a user id) can be a directory name of its own: not
/// empty, at most 128 bytes, no `/`, `\` or NUL, no control character, not
/// starting with a dot (so not `.` or `..`, and never a hidden directory
/// such as a project's `.projects`). The reason when it cannot.
pub fn check_path_component(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("it is empty")
    } else if name.len() > crate::MAX_USER_ID_BYTES {
        Err("it is too long")
    } else if name.starts_with('.') {
        Err("it starts with a dot")
    } else if name.contains(['/', '\\', '\0']) {
        Err("it contains a path separator or NUL")
    } else if name.chars().any(char::is_control) {
        Err("it contains a control character")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn alice() -> Principal {
        Principal::new("alice", Role::User)
    }

    fn spaces(mode: WorkspaceMode) -> Workspaces {
        let project = Project {
            name: "web".into(),
            path: "/w/.projects/web".into(),
            members: vec!["alice".into()],
        };
        Workspaces::new("/w".into(), mode, vec![project])
    }

    #[test]
    fn user_ids_that_are_no_plain_directory_name_are_refused() {
        for bad in [
            "", ".", "..", ".hidden", "a/b", "../bob", "a\\b", "a\0b", "a\nb",
        ] {
            assert!(check_path_component(bad).is_err(), "{bad:?}");
        }
        assert!(check_path_component(&"x".repeat(129)).is_err());
        for good in ["alice", "alice@example.com", "auth0|123", "a.b", "default"] {
            assert_eq!(check_path_component(good), Ok(()), "{good:?}");
        }
        let ws = spaces(WorkspaceMode::User);
        let evil = Principal::new("..", Role::Admin);
        assert!(matches!(
            ws.user_dir(&evil),
            Err(WorkspaceError::BadUserId { .. })
        ));
        // Shared: the id names no directory, so any id works.
        assert_eq!(
            spaces(WorkspaceMode::Shared).user_dir(&evil),
            Ok("/w".into())
        );
    }

    #[test]
    fn each_mode_puts_a_new_session_in_its_place() {
        let dir = |mode| spaces(mode).session_dir(&alice(), None, "s1").unwrap();
        assert_eq!(dir(WorkspaceMode::Shared).dir, PathBuf::from("/w"));
        assert_eq!(dir(WorkspaceMode::User).dir, PathBuf::from("/w/alice"));
        let session = dir(WorkspaceMode::Session);
        assert_eq!(session.dir, PathBuf::from("/w/alice/s1"));
        assert_eq!(session.boundary, PathBuf::from("/w/alice"));
    }

    #[test]
    fn a_requested_directory_must_be_the_users_own_or_a_projects_of_theirs() {
        let ws = spaces(WorkspaceMode::User);
        let bob = Principal::new("bob", Role::Admin);
        let ask = |who: &Principal, dir: &str| ws.session_dir(who, Some(Path::new(dir)), "s");
        assert_eq!(
            ask(&alice(), "/w/alice/src").unwrap().boundary,
            PathBuf::from("/w/alice")
        );
        let project = ask(&alice(), "/w/.projects/web/app").unwrap();
        assert_eq!(project.boundary, PathBuf::from("/w/.projects/web"));
        for outside in ["/w/bob", "/w/alicex", "/w", "/etc", "/w/alice/../bob"] {
            assert!(ask(&alice(), outside).is_err(), "{outside}");
        }
        // Not a member (admins neither).
        assert!(matches!(
            ask(&bob, "/w/.projects/web"),
            Err(WorkspaceError::Outside { .. })
        ));
    }
}
