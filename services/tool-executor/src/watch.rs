//! Change notifications under a workspace path, for the gateway's fs
//! channel (`watch` / `fs_event`).
//!
//! A [`FsWatch`] owns one OS watcher (inotify on Linux) and yields
//! [`FsEvent`]s with workspace-relative paths until it is dropped, which
//! removes the watcher. The path to watch is resolved by the sandbox like any
//! other read, symlinks are never followed while watching, and events whose
//! paths fall outside the workspace are dropped, so nothing about the tree
//! outside the boundary is reported.
//!
//! The OS watcher calls back on its own thread; events are handed over through
//! a bounded channel with `try_send`, so a consumer that falls behind never
//! blocks that thread or grows a buffer: surplus events are dropped and one
//! `overflow` event says so (the consumer should list again).

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use openheim_proto::tool_executor::v1::FsEvent;
use tokio::sync::mpsc;

use crate::error::ToolError;
use crate::sandbox::{Access, WorkspaceRoot};

/// Events buffered per watch before surplus ones are dropped.
pub const EVENT_BUFFER: usize = 256;

/// The `kind` of the event that reports dropped events.
pub const OVERFLOW: &str = "overflow";

/// A running watch: a stream of events; dropping it stops the OS watcher.
pub struct FsWatch {
    events: mpsc::Receiver<FsEvent>,
    // Held for its `Drop`, which removes the OS watches.
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for FsWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsWatch").finish_non_exhaustive()
    }
}

impl tokio_stream::Stream for FsWatch {
    type Item = FsEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FsEvent>> {
        self.events.poll_recv(cx)
    }
}

/// Starts watching `path` (a directory or a file) inside `ws`. Blocking (it
/// registers the OS watches, recursively when asked): call it from the
/// blocking pool.
pub fn watch(ws: &WorkspaceRoot, path: &str, recursive: bool) -> Result<FsWatch, ToolError> {
    let real = ws.resolve(path, Access::Read)?;
    std::fs::metadata(&real).map_err(|e| ToolError::io("watch", path, e))?;
    let (tx, events) = mpsc::channel(EVENT_BUFFER);
    let root = ws.clone();
    let overflowed = Arc::new(AtomicBool::new(false));
    let handler = move |result: notify::Result<notify::Event>| match result {
        Ok(event) => {
            if let Some(event) = to_fs_event(&root, &event) {
                deliver(&tx, &overflowed, event);
            }
        }
        Err(error) => tracing::debug!(%error, "file watcher error"),
    };
    // Never follow symlinks: a link inside the workspace may point outside.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = RecommendedWatcher::new(handler, config).map_err(|e| watch_error(path, e))?;
    let mode = if recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    watcher
        .watch(&real, mode)
        .map_err(|e| watch_error(path, e))?;
    Ok(FsWatch {
        events,
        _watcher: watcher,
    })
}

/// Hands `event` to the consumer without blocking the watcher's thread; when
/// the buffer is full the event is dropped and an `overflow` event follows
/// as soon as there is room.
fn deliver(tx: &mpsc::Sender<FsEvent>, overflowed: &AtomicBool, event: FsEvent) {
    if overflowed.load(Ordering::Acquire) {
        let notice = FsEvent {
            kind: OVERFLOW.to_owned(),
            paths: Vec::new(),
        };
        if tx.try_send(notice).is_err() {
            return;
        }
        overflowed.store(false, Ordering::Release);
    }
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(event) {
        overflowed.store(true, Ordering::Release);
    }
}

/// The event as the client sees it: a kind and workspace-relative paths.
/// `None` for access events and events with no path inside the workspace.
fn to_fs_event(ws: &WorkspaceRoot, event: &notify::Event) -> Option<FsEvent> {
    let kind = kind_name(&event.kind)?;
    let paths: Vec<String> = event.paths.iter().filter_map(|p| inside(ws, p)).collect();
    if paths.is_empty() {
        return None;
    }
    Some(FsEvent {
        kind: kind.to_owned(),
        paths,
    })
}

/// `path` relative to the workspace, when it lies inside (the root itself
/// is reported as `""`).
fn inside(ws: &WorkspaceRoot, path: &Path) -> Option<String> {
    path.starts_with(ws.path()).then(|| ws.relative(path))
}

/// The proto's kind names; `None` for reads (`access`), which are noise.
fn kind_name(kind: &EventKind) -> Option<&'static str> {
    match kind {
        EventKind::Create(_) => Some("create"),
        EventKind::Modify(ModifyKind::Name(_)) => Some("rename"),
        EventKind::Modify(_) => Some("modify"),
        EventKind::Remove(_) => Some("remove"),
        EventKind::Access(_) => None,
        EventKind::Any | EventKind::Other => Some("other"),
    }
}

fn watch_error(path: &str, error: notify::Error) -> ToolError {
    match error.kind {
        notify::ErrorKind::Io(source) => ToolError::io("watch", path, source),
        notify::ErrorKind::PathNotFound => ToolError::io(
            "watch",
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ),
        notify::ErrorKind::Generic(_)
        | notify::ErrorKind::WatchNotFound
        | notify::ErrorKind::InvalidConfig(_)
        | notify::ErrorKind::MaxFilesWatch => {
            ToolError::Failed(format!("cannot watch {path:?}: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use notify::event::{CreateKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, paths: Vec<PathBuf>) -> notify::Event {
        notify::Event {
            kind,
            paths,
            attrs: Default::default(),
        }
    }

    #[test]
    fn events_are_relative_and_confined() {
        let dir = tempfile::tempdir().unwrap();
        let ws = WorkspaceRoot::new(dir.path()).unwrap();
        let inside_path = ws.path().join("a/b.txt");
        let created = event(
            EventKind::Create(CreateKind::File),
            vec![inside_path.clone(), PathBuf::from("/etc/passwd")],
        );
        let got = to_fs_event(&ws, &created).unwrap();
        assert_eq!(
            (got.kind.as_str(), got.paths),
            ("create", vec!["a/b.txt".to_owned()])
        );
        let outside = event(EventKind::Any, vec![PathBuf::from("/etc/passwd")]);
        assert!(to_fs_event(&ws, &outside).is_none());
        let renamed = event(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            vec![inside_path.clone(), ws.path().join("c.txt")],
        );
        assert_eq!(
            to_fs_event(&ws, &renamed).unwrap().paths,
            ["a/b.txt", "c.txt"]
        );
        let read = event(
            EventKind::Access(notify::event::AccessKind::Any),
            vec![inside_path],
        );
        assert!(to_fs_event(&ws, &read).is_none());
    }

    #[test]
    fn a_full_buffer_drops_events_and_says_so_once() {
        let (tx, mut rx) = mpsc::channel(2);
        let flag = AtomicBool::new(false);
        let ev = |p: &str| FsEvent {
            kind: "create".to_owned(),
            paths: vec![p.to_owned()],
        };
        for name in ["a", "b", "c", "d"] {
            deliver(&tx, &flag, ev(name));
        }
        assert_eq!(rx.try_recv().unwrap().paths, ["a"]);
        assert_eq!(rx.try_recv().unwrap().paths, ["b"]);
        deliver(&tx, &flag, ev("e"));
        assert_eq!(rx.try_recv().unwrap().kind, OVERFLOW);
        assert_eq!(rx.try_recv().unwrap().paths, ["e"]);
        assert!(rx.try_recv().is_err());
    }
}
