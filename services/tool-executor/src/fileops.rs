//! File operations behind the gateway's fs channel (list, read, write,
//! mkdir, delete, rename), all confined to the workspace and bounded in size.
//!
//! They are plain blocking functions: the gRPC adapter runs them on the
//! blocking pool, and tests call them directly.

use std::collections::VecDeque;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::UNIX_EPOCH;

use openheim_proto::tool_executor::v1::{
    FileEntry, FileOpResponse, ListDirResponse, ReadFileResponse,
};

use crate::error::ToolError;
use crate::sandbox::{Access, WorkspaceRoot};

/// Entries listed when the request does not say.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000;
/// Most entries one listing returns, whatever the request says.
pub const MAX_ENTRIES: usize = 10_000;
/// How deep a recursive listing descends (1 = the directory itself).
pub const MAX_DEPTH: usize = 8;
/// Bytes read when the request does not say.
pub const DEFAULT_MAX_READ_BYTES: u64 = 1024 * 1024;
/// Most bytes one read returns, whatever the request says.
pub const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;
/// A NUL byte in this many leading bytes marks a file as binary.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// Lists `path` (recursively, breadth first, up to [`MAX_DEPTH`]), sorted by
/// path. `truncated` says entries were left out by the entry limit or the
/// depth limit. Symlinks are listed but never descended into.
pub fn list_dir(
    ws: &WorkspaceRoot,
    path: &str,
    recursive: bool,
    max_entries: u32,
) -> Result<ListDirResponse, ToolError> {
    let limits = WalkLimits {
        max_depth: if recursive { MAX_DEPTH } else { 1 },
        max_entries: match max_entries {
            0 => DEFAULT_MAX_ENTRIES,
            n => (n as usize).min(MAX_ENTRIES),
        },
        skip_vcs: false,
    };
    let walk = walk(ws, path, &limits)?;
    let truncated = walk.hit_entry_limit || (recursive && walk.hit_depth_limit);
    let mut entries = walk.entries;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ListDirResponse { entries, truncated })
}

/// Bounds of [`walk`].
#[derive(Debug, Clone)]
pub(crate) struct WalkLimits {
    /// 1 = the directory's own entries.
    pub max_depth: usize,
    pub max_entries: usize,
    /// List `.git` and similar directories without descending into them.
    pub skip_vcs: bool,
}

/// What [`walk`] found, in breadth-first order.
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    pub entries: Vec<FileEntry>,
    pub hit_entry_limit: bool,
    /// Some directory at the depth limit was not descended into.
    pub hit_depth_limit: bool,
}

/// Version-control directories, which [`WalkLimits::skip_vcs`] does not
/// descend into.
const VCS_DIRS: [&str; 4] = [".git", ".hg", ".svn", ".jj"];

/// Walks `path` breadth first within `limits`; symlinks are listed but
/// never descended into, unreadable subdirectories are skipped.
pub(crate) fn walk(ws: &WorkspaceRoot, path: &str, limits: &WalkLimits) -> Result<Walk, ToolError> {
    let dir = ws.resolve(path, Access::Read)?;
    let mut found = Walk {
        entries: Vec::new(),
        hit_entry_limit: false,
        hit_depth_limit: false,
    };
    let mut queue = VecDeque::from([(dir, 1_usize)]);
    'walk: while let Some((current, depth)) = queue.pop_front() {
        let children = match fs::read_dir(&current) {
            Ok(children) => children,
            // The requested directory must be readable; deeper ones that are
            // not are skipped rather than failing the whole listing.
            Err(e) if depth == 1 => return Err(ToolError::io("list", path, e)),
            Err(_) => continue,
        };
        let mut children: Vec<fs::DirEntry> = children.filter_map(Result::ok).collect();
        children.sort_by_key(fs::DirEntry::file_name);
        for child in children {
            if found.entries.len() == limits.max_entries {
                found.hit_entry_limit = true;
                break 'walk;
            }
            let Some((entry, descend)) = file_entry(ws, &child) else {
                continue;
            };
            let vcs = limits.skip_vcs && VCS_DIRS.contains(&entry.name.as_str());
            if descend && !vcs {
                if depth < limits.max_depth {
                    queue.push_back((child.path(), depth + 1));
                } else {
                    found.hit_depth_limit = true;
                }
            }
            found.entries.push(entry);
        }
    }
    Ok(found)
}

/// The entry for `child`, and whether a walk may descend into it (a real
/// directory, not a symlink to one).
fn file_entry(ws: &WorkspaceRoot, child: &fs::DirEntry) -> Option<(FileEntry, bool)> {
    let own = child.metadata().ok()?;
    let rel = ws.relative(&child.path());
    // A symlink is described by its target when that stays inside the
    // workspace, and as a plain entry otherwise (its target is off limits).
    let meta = if own.file_type().is_symlink() {
        ws.resolve(&rel, Access::Read)
            .ok()
            .and_then(|target| fs::metadata(target).ok())
            .unwrap_or_else(|| own.clone())
    } else {
        own.clone()
    };
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let entry = FileEntry {
        path: rel,
        name: child.file_name().to_string_lossy().into_owned(),
        is_dir: meta.is_dir(),
        size: if meta.is_dir() { 0 } else { meta.len() },
        modified_ms,
    };
    Some((entry, own.is_dir()))
}

/// Reads up to `max_bytes` (0 = [`DEFAULT_MAX_READ_BYTES`], at most
/// [`MAX_READ_BYTES`]) of a file.
pub fn read_file(
    ws: &WorkspaceRoot,
    path: &str,
    max_bytes: u64,
) -> Result<ReadFileResponse, ToolError> {
    let real = ws.resolve(path, Access::Read)?;
    let io_err = |e| ToolError::io("read", path, e);
    let file = fs::File::open(&real).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(ToolError::Failed(format!(
            "{path:?} is a directory, not a file"
        )));
    }
    let limit = match max_bytes {
        0 => DEFAULT_MAX_READ_BYTES,
        n => n.min(MAX_READ_BYTES),
    };
    let mut content = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut content)
        .map_err(io_err)?;
    let truncated = content.len() as u64 > limit;
    content.truncate(limit as usize);
    let sniff = &content[..content.len().min(BINARY_SNIFF_BYTES)];
    Ok(ReadFileResponse {
        is_binary: sniff.contains(&0),
        truncated,
        size: meta.len().max(content.len() as u64),
        content,
    })
}

/// Creates or overwrites a file, creating missing parent directories.
pub fn write_file(
    ws: &WorkspaceRoot,
    path: &str,
    content: &[u8],
) -> Result<FileOpResponse, ToolError> {
    let real = ws.resolve(path, Access::Write)?;
    if let Some(parent) = real.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| ToolError::io("create the directories of", path, e))?;
    }
    fs::write(&real, content).map_err(|e| ToolError::io("write", path, e))?;
    Ok(done(ws, &real))
}

/// Creates a directory and any missing parents.
pub fn make_dir(ws: &WorkspaceRoot, path: &str) -> Result<FileOpResponse, ToolError> {
    let real = ws.resolve(path, Access::Write)?;
    fs::create_dir_all(&real).map_err(|e| ToolError::io("create directory", path, e))?;
    Ok(done(ws, &real))
}

/// Deletes a file or symlink, or a directory (non-empty ones only with
/// `recursive`). The workspace root itself is never deleted.
pub fn delete(
    ws: &WorkspaceRoot,
    path: &str,
    recursive: bool,
) -> Result<FileOpResponse, ToolError> {
    let real = ws.resolve(path, Access::Entry)?;
    refuse_root(ws, path, &real, "delete")?;
    let io_err = |e| ToolError::io("delete", path, e);
    let meta = fs::symlink_metadata(&real).map_err(io_err)?;
    let removed = match (meta.is_dir(), recursive) {
        (true, true) => fs::remove_dir_all(&real),
        (true, false) => fs::remove_dir(&real),
        (false, _) => fs::remove_file(&real),
    };
    removed.map_err(io_err)?;
    Ok(done(ws, &real))
}

/// Renames `from` to `to`, both inside the workspace. An existing `to` is
/// never overwritten.
pub fn rename(ws: &WorkspaceRoot, from: &str, to: &str) -> Result<FileOpResponse, ToolError> {
    let source = ws.resolve(from, Access::Entry)?;
    let target = ws.resolve(to, Access::Entry)?;
    refuse_root(ws, from, &source, "rename")?;
    refuse_root(ws, to, &target, "replace")?;
    fs::symlink_metadata(&source).map_err(|e| ToolError::io("rename", from, e))?;
    if fs::symlink_metadata(&target).is_ok() {
        let exists = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        return Err(ToolError::io("rename onto", to, exists));
    }
    fs::rename(&source, &target).map_err(|e| ToolError::io("rename", from, e))?;
    Ok(done(ws, &target))
}

fn refuse_root(ws: &WorkspaceRoot, path: &str, real: &Path, action: &str) -> Result<(), ToolError> {
    if real == ws.path() {
        return Err(ToolError::Failed(format!(
            "refusing to {action} the workspace root ({path:?})"
        )));
    }
    Ok(())
}

fn done(ws: &WorkspaceRoot, real: &Path) -> FileOpResponse {
    FileOpResponse {
        path: ws.relative(real),
    }
}

#[cfg(test)]
mod tests {
    use openheim_proto::tool_executor::v1::ToolErrorKind;

    use super::*;

    fn workspace() -> (tempfile::TempDir, WorkspaceRoot) {
        let dir = tempfile::tempdir().unwrap();
        let ws = WorkspaceRoot::new(dir.path()).unwrap();
        (dir, ws)
    }

    fn paths(resp: &ListDirResponse) -> Vec<&str> {
        resp.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn listing_is_sorted_bounded_and_relative() {
        let (_dir, ws) = workspace();
        write_file(&ws, "b/inner/deep.txt", b"x").unwrap();
        write_file(&ws, "a.txt", b"hello").unwrap();
        let flat = list_dir(&ws, "", false, 0).unwrap();
        assert_eq!(paths(&flat), ["a.txt", "b"]);
        assert!(!flat.truncated);
        assert_eq!(flat.entries[0].size, 5);
        assert!(flat.entries[1].is_dir && flat.entries[0].modified_ms > 0);
        let all = list_dir(&ws, ".", true, 0).unwrap();
        assert_eq!(paths(&all), ["a.txt", "b", "b/inner", "b/inner/deep.txt"]);
        let few = list_dir(&ws, "", true, 2).unwrap();
        assert_eq!(paths(&few), ["a.txt", "b"]);
        assert!(few.truncated);
    }

    #[test]
    fn recursion_stops_at_the_depth_limit() {
        let (_dir, ws) = workspace();
        let deep = (0..MAX_DEPTH + 2)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join("/");
        make_dir(&ws, &deep).unwrap();
        let listing = list_dir(&ws, "", true, 0).unwrap();
        assert_eq!(listing.entries.len(), MAX_DEPTH);
        assert!(listing.truncated);
    }

    #[test]
    fn reads_are_bounded_and_binary_is_detected() {
        let (_dir, ws) = workspace();
        write_file(&ws, "t.txt", b"0123456789").unwrap();
        write_file(&ws, "b.bin", b"ab\0cd").unwrap();
        let part = read_file(&ws, "t.txt", 4).unwrap();
        assert_eq!(
            (part.content.as_slice(), part.truncated, part.size),
            (&b"0123"[..], true, 10)
        );
        let whole = read_file(&ws, "t.txt", 0).unwrap();
        assert!(!whole.truncated && !whole.is_binary);
        assert!(read_file(&ws, "b.bin", 0).unwrap().is_binary);
        assert_eq!(
            read_file(&ws, "", 0).unwrap_err().kind(),
            ToolErrorKind::Failed
        );
    }

    #[test]
    fn delete_and_rename_act_inside_only() {
        let (_dir, ws) = workspace();
        write_file(&ws, "d/f.txt", b"x").unwrap();
        assert_eq!(rename(&ws, "d/f.txt", "g.txt").unwrap().path, "g.txt");
        assert_eq!(
            rename(&ws, "g.txt", "d").unwrap_err().kind(),
            ToolErrorKind::Io
        );
        assert_eq!(
            rename(&ws, "g.txt", "../g.txt").unwrap_err().kind(),
            ToolErrorKind::OutsideWorkspace
        );
        write_file(&ws, "d/again.txt", b"x").unwrap();
        assert_eq!(
            delete(&ws, "d", false).unwrap_err().kind(),
            ToolErrorKind::Io
        );
        delete(&ws, "d", true).unwrap();
        assert_eq!(
            delete(&ws, ".", true).unwrap_err().kind(),
            ToolErrorKind::Failed
        );
        assert_eq!(
            delete(&ws, "sub/..", true).unwrap_err().kind(),
            ToolErrorKind::Failed
        );
        assert_eq!(
            rename(&ws, ".", "x").unwrap_err().kind(),
            ToolErrorKind::Failed
        );
        assert_eq!(paths(&list_dir(&ws, "", true, 0).unwrap()), ["g.txt"]);
    }

    #[test]
    fn symlinks_are_listed_by_target_inside_and_deleted_as_links() {
        let (dir, ws) = workspace();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep.txt"), "keep").unwrap();
        make_dir(&ws, "real").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("alias")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let listing = list_dir(&ws, "", true, 0).unwrap();
        let by_name = |n: &str| listing.entries.iter().find(|e| e.name == n).unwrap().is_dir;
        assert!(by_name("alias") && !by_name("out"));
        assert_eq!(
            list_dir(&ws, "out", false, 0).unwrap_err().kind(),
            ToolErrorKind::OutsideWorkspace
        );
        delete(&ws, "out", true).unwrap();
        assert!(outside.path().join("keep.txt").exists());
    }
}
