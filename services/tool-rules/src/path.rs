//! The lexical half of the workspace boundary: a path the model gives,
//! relative to the workspace root or absolute inside it, reduced to its
//! components below the root without looking at the disk. tool-executor then
//! walks them against the real filesystem (symlinks, hard links); a turn's
//! caller, which touches the files itself, gets the joined path.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// A path refused because it would leave the workspace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is outside the workspace: {reason}")]
pub struct Outside {
    /// The path as the model gave it.
    pub path: String,
    /// Why, written for the model.
    pub reason: String,
}

impl Outside {
    pub fn new(path: &str, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The components of `user_path` below the workspace root after removing
/// `.` and `..`; `..` may never climb above the root. An absolute path must
/// lie inside one of `roots` (the spellings of the root: its canonical path,
/// the path it was given as); the first one is named in the refusal.
pub fn below_root(user_path: &str, roots: &[&Path]) -> Result<Vec<OsString>, Outside> {
    if user_path.contains('\0') {
        return Err(Outside::new(
            user_path,
            "paths containing NUL bytes are refused",
        ));
    }
    let path = Path::new(user_path);
    if path.is_absolute() {
        let normal = normalise_absolute(path);
        for root in roots {
            if let Ok(rest) = normal.strip_prefix(normalise_absolute(root)) {
                return Ok(rest.iter().map(ToOwned::to_owned).collect());
            }
        }
        let shown = roots.first().map(|r| r.display().to_string());
        return Err(Outside::new(
            user_path,
            format!(
                "absolute paths must lie inside {}",
                shown.unwrap_or_default()
            ),
        ));
    }
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(Outside::new(
                        user_path,
                        "`..` climbs above the workspace root",
                    ));
                }
            }
            Component::Normal(name) => parts.push(name.to_owned()),
            Component::RootDir | Component::Prefix(_) => {
                return Err(Outside::new(user_path, "unexpected root component"));
            }
        }
    }
    Ok(parts)
}

/// `root` joined with the components of `user_path` ([`below_root`]).
pub fn join_below(root: &Path, user_path: &str) -> Result<PathBuf, Outside> {
    let parts = below_root(user_path, &[root])?;
    Ok(parts
        .iter()
        .fold(root.to_path_buf(), |p, part| p.join(part)))
}

/// `path` (absolute) with `.` and `..` removed lexically; `..` at `/` stays
/// at `/`, as the operating system reads it.
pub fn normalise_absolute(path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => parts.push(name),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    parts
        .into_iter()
        .fold(PathBuf::from("/"), |p, part| p.join(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_workspace_only() {
        let ws = Path::new("/home/u/ws");
        let join = |p: &str| join_below(ws, p);
        assert_eq!(join("a/b.txt").unwrap(), Path::new("/home/u/ws/a/b.txt"));
        assert_eq!(join("./a/../c").unwrap(), Path::new("/home/u/ws/c"));
        assert_eq!(join("/home/u/ws/x").unwrap(), Path::new("/home/u/ws/x"));
        assert_eq!(
            join("/home/u/ws/../ws/y").unwrap(),
            Path::new("/home/u/ws/y")
        );
        for bad in ["../x", "a/../../x", "/etc/passwd", "/home/u/wsx/a", "a\0b"] {
            let err = join(bad).unwrap_err().to_string();
            assert!(err.contains("is outside the workspace"), "{bad}: {err}");
        }
    }

    #[test]
    fn refusals_say_why() {
        let ws = Path::new("/ws");
        let reason = |p: &str| below_root(p, &[ws]).unwrap_err().reason;
        assert_eq!(reason("../x"), "`..` climbs above the workspace root");
        assert_eq!(reason("/etc"), "absolute paths must lie inside /ws");
        assert_eq!(reason("a\0"), "paths containing NUL bytes are refused");
    }

    #[test]
    fn any_spelling_of_the_root_is_recognised() {
        let (real, given) = (Path::new("/real/ws"), Path::new("/link/ws"));
        let parts = below_root("/link/ws/a/b", &[real, given]).unwrap();
        assert_eq!(parts, [OsString::from("a"), OsString::from("b")]);
        assert_eq!(
            normalise_absolute(Path::new("/../a/./b/..")),
            Path::new("/a")
        );
    }
}
