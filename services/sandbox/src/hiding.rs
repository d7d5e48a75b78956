//! Other users' directories, hidden from a confined command. Landlock
//! confines what a command may write, not what it reads; on a server whose
//! `work_dir` is divided between users, the launcher therefore covers every
//! directory beside the session's own path with an empty, unreadable
//! file system in the command's private mount namespace
//! (`docs/security.md`, "Workspaces").

use std::path::{Path, PathBuf};

/// The directories beside the path from `root` down to `dir`: at each level
/// below `root`, every real directory (not a symlink) other than the one
/// leading to `dir`. Empty when `dir` is `root` or not inside it, or when
/// either cannot be resolved. Entries created later are not covered.
pub fn beside(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let (Ok(root), Ok(dir)) = (root.canonicalize(), dir.canonicalize()) else {
        return Vec::new();
    };
    let Ok(below) = dir.strip_prefix(&root) else {
        return Vec::new();
    };
    let mut hidden = Vec::new();
    let mut level = root.clone();
    for step in below.components() {
        let Ok(entries) = std::fs::read_dir(&level) else {
            break;
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && entry.file_name() != step.as_os_str() {
                hidden.push(entry.path());
            }
        }
        level.push(step);
    }
    hidden.sort();
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_directory_beside_the_path_is_listed_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in [
            "alice/proj",
            "alice/notes",
            "bob",
            ".projects/web",
            ".projects/ops",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        std::fs::write(r.join("readme.txt"), "a file is not a directory").unwrap();
        std::os::unix::fs::symlink("/usr", r.join("link")).unwrap();
        let real = r.canonicalize().unwrap();

        assert_eq!(
            beside(r, &r.join("alice")),
            vec![real.join(".projects"), real.join("bob")]
        );
        assert_eq!(
            beside(r, &r.join(".projects/web")),
            vec![
                real.join(".projects/ops"),
                real.join("alice"),
                real.join("bob")
            ]
        );
        assert_eq!(
            beside(r, &r.join("alice/proj")),
            vec![
                real.join(".projects"),
                real.join("alice/notes"),
                real.join("bob")
            ]
        );
        assert!(beside(r, r).is_empty(), "the root itself hides nothing");
        assert!(
            beside(&r.join("alice"), &r.join("bob")).is_empty(),
            "not inside"
        );
        assert!(beside(r, &r.join("missing")).is_empty());
    }
}
