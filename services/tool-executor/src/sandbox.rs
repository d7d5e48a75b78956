//! The workspace boundary: every path a tool or file operation touches is
//! resolved here, first lexically and then against the real filesystem, and
//! refused when it would leave the workspace root.
//!
//! Resolution walks the path one component at a time from the canonical root
//! and follows each symlink it meets, checking that the target stays inside.
//! The path handed back is the real path the operation must use, so `..` or
//! a symlink can never be reinterpreted by the OS after the check.
//!
//! Limits, on purpose and documented: the checks race with concurrent
//! changes to the tree (a process a shell command left running could swap a
//! directory for a symlink between the check and the use), and hard links
//! cannot be traced to where their other names live. Writes to files with
//! more than one hard link are therefore refused. OS confinement
//! ([`crate::confinement`]) bounds what shell commands themselves can write,
//! but these file tools run in the executor, outside it.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use openheim_tool_rules::path::{self as path_rule, normalise_absolute};

use crate::error::ToolError;

/// What the caller is about to do with a resolved path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read through the path; symlinks are followed (and must stay inside).
    Read,
    /// Create or overwrite through the path; symlinks are followed, dangling
    /// ones and multiply hard-linked files are refused.
    Write,
    /// Act on the directory entry itself (delete, rename): a final symlink is
    /// not followed, since removing or moving a link never touches its target.
    Entry,
}

/// A canonical, existing workspace directory that paths are confined to.
#[derive(Debug, Clone)]
pub struct WorkspaceRoot {
    /// Canonical path: what every resolved path starts with.
    real: PathBuf,
    /// The root as it was given, lexically normalised, so absolute paths
    /// written against a symlinked spelling of the root are recognised too.
    given: PathBuf,
    /// On a server divided between users: the executor's root and the
    /// session's boundary (its user's or project's directory), so commands
    /// can be kept from reading the directories beside it.
    divided: Option<(PathBuf, PathBuf)>,
}

impl WorkspaceRoot {
    /// Opens `root`, which must be an absolute path to an existing directory.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, ToolError> {
        let root = root.as_ref();
        let shown = root.display().to_string();
        if !root.is_absolute() {
            return Err(ToolError::outside(
                &shown,
                "the workspace root must be absolute",
            ));
        }
        let real = fs::canonicalize(root).map_err(|e| ToolError::io("open", &shown, e))?;
        if !real.is_dir() {
            return Err(ToolError::Failed(format!(
                "workspace root {shown:?} is not a directory"
            )));
        }
        let given = normalise_absolute(root);
        Ok(Self {
            real,
            given,
            divided: None,
        })
    }

    /// Opens the root of a session workspace as requested by a caller: it
    /// must be absolute, an existing directory and, when `allowed` is set,
    /// inside it. An empty `root` means `allowed` itself. Every failure is
    /// reported as [`ToolError::OutsideWorkspace`].
    pub fn open_within(root: &str, allowed: Option<&Path>) -> Result<Self, ToolError> {
        let requested = match (root.is_empty(), allowed) {
            (false, _) => Path::new(root),
            (true, Some(allowed)) => allowed,
            (true, None) => return Err(ToolError::outside(root, "no workspace root was given")),
        };
        let workspace = Self::new(requested).map_err(|e| match e {
            ToolError::OutsideWorkspace { .. } => e,
            other => ToolError::outside(root, format!("not a usable workspace: {other}")),
        })?;
        if let Some(allowed) = allowed {
            let allowed_real = fs::canonicalize(allowed).map_err(|e| {
                ToolError::Failed(format!(
                    "the executor's workspace root {} is unavailable: {e}",
                    allowed.display()
                ))
            })?;
            if !workspace.real.starts_with(&allowed_real) {
                return Err(ToolError::outside(
                    root,
                    format!(
                        "session workspaces must lie inside {}",
                        allowed_real.display()
                    ),
                ));
            }
        }
        Ok(workspace)
    }

    /// Like [`open_within`](Self::open_within), for a multi-user server:
    /// with `create`, a missing `root` inside `allowed` is made first
    /// (mode 0700); a non-empty `boundary` (a user's or a project's
    /// directory) must hold the root as it resolves now, so a directory
    /// swapped for a symlink to someone else's since the session began is
    /// refused.
    pub fn open_bounded(
        root: &str,
        allowed: Option<&Path>,
        boundary: &str,
        create: bool,
    ) -> Result<Self, ToolError> {
        if create && !root.is_empty() {
            create_private_dir(root, allowed)?;
        }
        let workspace = Self::open_within(root, allowed)?;
        if boundary.is_empty() {
            return Ok(workspace);
        }
        let fence = fs::canonicalize(boundary)
            .map_err(|e| ToolError::outside(root, format!("its boundary is unavailable: {e}")))?;
        if !workspace.real.starts_with(&fence) {
            return Err(ToolError::outside(
                root,
                format!("it resolves outside {}", fence.display()),
            ));
        }
        let divided = allowed.map(|allowed| (allowed.to_path_buf(), fence));
        Ok(Self {
            divided,
            ..workspace
        })
    }

    /// The directories a command of this session must not see: on a
    /// server divided between users, every directory beside the path from
    /// the executor's root to the session's boundary (other users' and
    /// other projects'); none otherwise.
    pub fn hidden_from_commands(&self) -> Vec<PathBuf> {
        match &self.divided {
            Some((root, fence)) => openheim_sandbox::hiding::beside(root, fence),
            None => Vec::new(),
        }
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.real
    }

    /// Resolves `user_path` (relative to the root, or absolute inside it) to
    /// the real path to use for `access`, or refuses it.
    pub fn resolve(&self, user_path: &str, access: Access) -> Result<PathBuf, ToolError> {
        let parts = self.lexical(user_path)?;
        let real = self.walk(user_path, &parts, access)?;
        if access == Access::Write {
            refuse_hard_linked(user_path, &real)?;
        }
        Ok(real)
    }

    /// `real` (a path returned by [`resolve`](Self::resolve)) relative to the
    /// root, '/'-separated; empty for the root itself.
    pub fn relative(&self, real: &Path) -> String {
        match real.strip_prefix(&self.real) {
            Ok(rest) => rest
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
            Err(_) => real.display().to_string(),
        }
    }

    /// The components of `user_path` below the root after removing `.` and
    /// `..` lexically (the shared rule); `..` may never climb above the root.
    fn lexical(&self, user_path: &str) -> Result<Vec<OsString>, ToolError> {
        Ok(path_rule::below_root(
            user_path,
            &[&self.real, &self.given],
        )?)
    }

    /// Walks `parts` from the canonical root, following symlinks and checking
    /// each target, and returns the real path.
    fn walk(
        &self,
        user_path: &str,
        parts: &[OsString],
        access: Access,
    ) -> Result<PathBuf, ToolError> {
        let mut current = self.real.clone();
        for (index, part) in parts.iter().enumerate() {
            let next = current.join(part);
            let meta = match fs::symlink_metadata(&next) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Nothing exists from here on: plain names below a real
                    // directory inside the root cannot leave it.
                    return Ok(parts[index + 1..].iter().fold(next, |p, part| p.join(part)));
                }
                Err(e) => return Err(ToolError::io("inspect", user_path, e)),
            };
            let last = index + 1 == parts.len();
            current = if meta.file_type().is_symlink() && !(last && access == Access::Entry) {
                self.follow(user_path, &next)?
            } else {
                next
            };
        }
        Ok(current)
    }

    /// The canonical target of the symlink `link`, if it stays inside.
    fn follow(&self, user_path: &str, link: &Path) -> Result<PathBuf, ToolError> {
        match fs::canonicalize(link) {
            Ok(target) if target.starts_with(&self.real) => Ok(target),
            Ok(target) => Err(ToolError::outside(
                user_path,
                format!(
                    "it goes through a symlink to {}, which leaves the workspace",
                    target.display()
                ),
            )),
            // A dangling link could be made to point anywhere, and a write
            // through it would create its target wherever that is.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ToolError::outside(
                user_path,
                "it goes through a dangling symlink, whose target cannot be checked",
            )),
            Err(e) => Err(ToolError::io("resolve", user_path, e)),
        }
    }
}

/// Writing to a file that has other hard links would change those other
/// names too, and they may live outside the workspace.
fn refuse_hard_linked(user_path: &str, real: &Path) -> Result<(), ToolError> {
    match fs::symlink_metadata(real) {
        Ok(meta) if meta.is_file() && meta.nlink() > 1 => Err(ToolError::outside(
            user_path,
            format!(
                "the file has {} hard links and writing it could change a file outside the workspace",
                meta.nlink()
            ),
        )),
        _ => Ok(()),
    }
}

/// Makes `dir` (absolute, lexically inside `allowed`, no `..`) and its
/// missing parents with mode 0700; an existing one is left as it is.
fn create_private_dir(dir: &str, allowed: Option<&Path>) -> Result<(), ToolError> {
    use std::os::unix::fs::DirBuilderExt;
    use std::path::Component;
    let path = Path::new(dir);
    let plain = path.is_absolute() && path.components().all(|c| c != Component::ParentDir);
    // The root as configured, or as it resolves (another service may spell
    // it through a symlink).
    let inside = allowed.is_some_and(|allowed| {
        path.starts_with(allowed)
            || fs::canonicalize(allowed).is_ok_and(|real| path.starts_with(real))
    });
    if !plain || !inside {
        return Err(ToolError::outside(
            dir,
            "only a directory inside the executor's root is created",
        ));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| ToolError::io("create", dir, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use openheim_proto::tool_executor::v1::ToolErrorKind;

    use super::*;

    /// A workspace and a sibling directory standing for "outside".
    struct Fixture {
        _dir: tempfile::TempDir,
        ws: WorkspaceRoot,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        let outside = dir.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret.txt"), "secret").unwrap();
        let ws = WorkspaceRoot::new(&root).unwrap();
        let outside = fs::canonicalize(outside).unwrap();
        Fixture {
            _dir: dir,
            ws,
            outside,
        }
    }

    fn refused(ws: &WorkspaceRoot, path: &str, access: Access) {
        match ws.resolve(path, access) {
            Err(e) => assert_eq!(e.kind(), ToolErrorKind::OutsideWorkspace, "{path}: {e}"),
            Ok(p) => panic!("{path} resolved to {}", p.display()),
        }
    }

    /// Writes through the sandbox the way the tools do, if it allows it.
    fn try_write(ws: &WorkspaceRoot, path: &str) {
        if let Ok(real) = ws.resolve(path, Access::Write) {
            if let Some(parent) = real.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(real, "x").unwrap();
        }
    }

    fn outside_entries(f: &Fixture) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(&f.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn relative_paths_resolve_under_the_root() {
        let f = fixture();
        let root = f.ws.path();
        assert_eq!(
            f.ws.resolve("a/b.txt", Access::Write).unwrap(),
            root.join("a/b.txt")
        );
        assert_eq!(
            f.ws.resolve("./a/../b", Access::Read).unwrap(),
            root.join("b")
        );
        assert_eq!(f.ws.resolve("", Access::Read).unwrap(), root);
        assert_eq!(f.ws.resolve(".", Access::Entry).unwrap(), root);
    }

    #[test]
    fn parent_components_never_climb_above_the_root() {
        let f = fixture();
        refused(&f.ws, "../outside/secret.txt", Access::Read);
        refused(&f.ws, "a/../../x", Access::Write);
        refused(&f.ws, "..", Access::Entry);
    }

    #[test]
    fn absolute_paths_must_lie_inside() {
        let f = fixture();
        let inside = f.ws.path().join("dir/file.txt");
        let resolved =
            f.ws.resolve(inside.to_str().unwrap(), Access::Write)
                .unwrap();
        assert_eq!(resolved, inside);
        refused(
            &f.ws,
            f.outside.join("secret.txt").to_str().unwrap(),
            Access::Read,
        );
        refused(&f.ws, "/etc/passwd", Access::Read);
        let sneaky = format!("{}/../outside/x", f.ws.path().display());
        refused(&f.ws, &sneaky, Access::Write);
    }

    #[test]
    fn symlinks_leaving_the_workspace_are_refused() {
        let f = fixture();
        let root = f.ws.path();
        symlink(f.outside.join("secret.txt"), root.join("to_file")).unwrap();
        symlink(&f.outside, root.join("to_dir")).unwrap();
        refused(&f.ws, "to_file", Access::Read);
        refused(&f.ws, "to_file", Access::Write);
        refused(&f.ws, "to_dir/new.txt", Access::Write);
        refused(&f.ws, "to_dir/secret.txt", Access::Read);
        refused(&f.ws, "to_dir", Access::Read);
        try_write(&f.ws, "to_file");
        try_write(&f.ws, "to_dir/new.txt");
        assert_eq!(
            fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
            "secret"
        );
        assert_eq!(outside_entries(&f), ["secret.txt"]);
    }

    #[test]
    fn dangling_symlinks_are_refused() {
        let f = fixture();
        symlink(f.outside.join("planted.txt"), f.ws.path().join("dangling")).unwrap();
        symlink("missing-inside", f.ws.path().join("dangling_in")).unwrap();
        refused(&f.ws, "dangling", Access::Write);
        refused(&f.ws, "dangling", Access::Read);
        refused(&f.ws, "dangling_in", Access::Write);
        try_write(&f.ws, "dangling");
        assert_eq!(outside_entries(&f), ["secret.txt"]);
    }

    #[test]
    fn symlinks_inside_the_workspace_are_followed() {
        let f = fixture();
        let root = f.ws.path();
        fs::create_dir(root.join("real")).unwrap();
        fs::write(root.join("real/f.txt"), "hi").unwrap();
        symlink(root.join("real"), root.join("alias")).unwrap();
        symlink("real/f.txt", root.join("f_link")).unwrap();
        assert_eq!(
            f.ws.resolve("alias/f.txt", Access::Read).unwrap(),
            root.join("real/f.txt")
        );
        assert_eq!(
            f.ws.resolve("f_link", Access::Write).unwrap(),
            root.join("real/f.txt")
        );
        assert_eq!(
            f.ws.resolve("alias/new/x", Access::Write).unwrap(),
            root.join("real/new/x")
        );
    }

    #[test]
    fn entry_access_does_not_follow_the_final_link() {
        let f = fixture();
        symlink(&f.outside, f.ws.path().join("to_dir")).unwrap();
        assert_eq!(
            f.ws.resolve("to_dir", Access::Entry).unwrap(),
            f.ws.path().join("to_dir")
        );
        refused(&f.ws, "to_dir/secret.txt", Access::Entry);
    }

    #[test]
    fn nul_bytes_are_refused() {
        let f = fixture();
        refused(&f.ws, "a\0b", Access::Read);
    }

    #[test]
    fn multiply_hard_linked_files_are_not_written() {
        let f = fixture();
        let linked = f.ws.path().join("linked");
        fs::hard_link(f.outside.join("secret.txt"), &linked).unwrap();
        refused(&f.ws, "linked", Access::Write);
        assert!(f.ws.resolve("linked", Access::Read).is_ok());
    }

    #[test]
    fn open_within_confines_session_roots() {
        let f = fixture();
        let allowed = f.ws.path();
        fs::create_dir(allowed.join("project")).unwrap();
        let project = allowed.join("project");
        let ws = WorkspaceRoot::open_within(project.to_str().unwrap(), Some(allowed)).unwrap();
        assert_eq!(ws.path(), project);
        assert_eq!(
            WorkspaceRoot::open_within("", Some(allowed))
                .unwrap()
                .path(),
            allowed
        );
        for bad in [
            f.outside.to_str().unwrap(),
            "relative",
            "",
            "/does/not/exist",
        ] {
            let e = WorkspaceRoot::open_within(bad, Some(allowed)).err();
            let e = if bad.is_empty() {
                WorkspaceRoot::open_within(bad, None).err()
            } else {
                e
            };
            assert_eq!(
                e.map(|e| e.kind()),
                Some(ToolErrorKind::OutsideWorkspace),
                "{bad}"
            );
        }
        assert!(WorkspaceRoot::open_within(f.outside.to_str().unwrap(), None).is_ok());
    }

    #[test]
    fn bounded_roots_are_created_privately_and_must_stay_inside_their_boundary() {
        use std::os::unix::fs::PermissionsExt;
        let f = fixture();
        let allowed = f.ws.path();
        let alice = allowed.join("alice");
        let text = |p: &Path| p.to_str().unwrap().to_owned();
        let ws =
            WorkspaceRoot::open_bounded(&text(&alice), Some(allowed), &text(&alice), true).unwrap();
        assert_eq!(ws.path(), alice);
        let mode = fs::metadata(&alice).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Nothing is created outside the executor's root.
        let elsewhere = f.outside.join("made");
        assert!(WorkspaceRoot::open_bounded(&text(&elsewhere), Some(allowed), "", true).is_err());
        assert!(!elsewhere.exists());
        // A directory of Alice's that became a link to Bob's is refused.
        fs::create_dir(allowed.join("bob")).unwrap();
        std::os::unix::fs::symlink(allowed.join("bob"), alice.join("sub")).unwrap();
        let e = WorkspaceRoot::open_bounded(
            &text(&alice.join("sub")),
            Some(allowed),
            &text(&alice),
            false,
        )
        .err()
        .map(|e| e.kind());
        assert_eq!(e, Some(ToolErrorKind::OutsideWorkspace));
    }

    #[test]
    fn relative_is_slash_separated() {
        let f = fixture();
        let real = f.ws.resolve("a/b/c.txt", Access::Write).unwrap();
        assert_eq!(f.ws.relative(&real), "a/b/c.txt");
        assert_eq!(f.ws.relative(f.ws.path()), "");
    }
}
