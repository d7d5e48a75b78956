//! `Watch` over gRPC: live events with workspace-relative paths, refused
//! escapes, and the OS watcher going away with the call.

use std::os::unix::fs::symlink;

use openheim_proto::tool_executor::v1::{FsEvent, WatchRequest};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::support::{Harness, PATIENCE, harness};

fn watch(h: &Harness, path: &str) -> WatchRequest {
    WatchRequest {
        workspace: Some(h.workspace(false)),
        path: path.to_owned(),
        recursive: true,
    }
}

/// The next event mentioning `path`, skipping others (editors and the OS
/// may report a create and a modify for one write).
async fn event_for(stream: &mut tonic::Streaming<FsEvent>, path: &str) -> FsEvent {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = stream.next().await.unwrap().unwrap();
            if event.paths.iter().any(|p| p == path) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event for {path}"))
}

#[tokio::test]
async fn changes_stream_as_relative_paths_until_the_call_is_dropped() {
    let h = harness();
    std::fs::create_dir(h.root.join("sub")).unwrap();
    let mut c = h.client.clone();
    let mut stream = c.watch(watch(&h, "")).await.unwrap().into_inner();

    std::fs::write(h.root.join("sub/new.txt"), "x").unwrap();
    let created = event_for(&mut stream, "sub/new.txt").await;
    assert!(
        ["create", "modify"].contains(&created.kind.as_str()),
        "{created:?}"
    );
    std::fs::rename(h.root.join("sub/new.txt"), h.root.join("moved.txt")).unwrap();
    let moved = event_for(&mut stream, "moved.txt").await;
    assert_eq!(moved.kind, "rename");
    std::fs::remove_file(h.root.join("moved.txt")).unwrap();
    let removed = loop {
        let event = event_for(&mut stream, "moved.txt").await;
        if event.kind == "remove" {
            break event;
        }
    };
    assert_eq!(removed.paths, ["moved.txt"]);

    // A directory created after the watch started is watched too.
    std::fs::create_dir(h.root.join("later")).unwrap();
    event_for(&mut stream, "later").await;
    std::fs::write(h.root.join("later/deep.txt"), "x").unwrap();
    event_for(&mut stream, "later/deep.txt").await;
    drop(stream);
}

#[tokio::test]
async fn escapes_and_missing_paths_are_refused() {
    let h = harness();
    symlink(&h.outside, h.root.join("out")).unwrap();
    let mut c = h.client.clone();
    for path in ["../outside", "out", "out/secret.txt", "/etc"] {
        let status = c.watch(watch(&h, path)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{path}: {status:?}");
    }
    let missing = c.watch(watch(&h, "nope")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn a_symlinked_directory_inside_is_not_followed_out() {
    let h = harness();
    symlink(&h.outside, h.root.join("out")).unwrap();
    let mut c = h.client.clone();
    let mut stream = c.watch(watch(&h, "")).await.unwrap().into_inner();
    // A change outside, reachable through the link, is not reported; a
    // change inside afterwards is, and is the first event seen.
    std::fs::write(h.outside.join("other.txt"), "x").unwrap();
    std::fs::write(h.root.join("marker.txt"), "x").unwrap();
    let first = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.paths, ["marker.txt"], "{first:?}");
}
