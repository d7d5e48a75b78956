//! The gateway's file operations over gRPC: a full round trip, bounded
//! reads and listings, and refused escapes.

use std::os::unix::fs::symlink;

use openheim_proto::tool_executor::v1::{
    DeleteRequest, ListDirRequest, MakeDirRequest, ReadFileRequest, RenameRequest, WriteFileRequest,
};
use tonic::Code;

use crate::support::{Harness, harness};

fn list(h: &Harness, path: &str, recursive: bool) -> ListDirRequest {
    ListDirRequest {
        workspace: Some(h.workspace(false)),
        path: path.to_owned(),
        recursive,
        max_entries: 0,
    }
}

#[tokio::test]
async fn files_round_trip_through_every_operation() {
    let h = harness();
    let mut c = h.client.clone();
    let ws = || Some(h.workspace(false));
    let made = c
        .make_dir(MakeDirRequest {
            workspace: ws(),
            path: "docs/sub".into(),
        })
        .await
        .unwrap();
    assert_eq!(made.into_inner().path, "docs/sub");
    let write = WriteFileRequest {
        workspace: ws(),
        path: "docs/a.txt".into(),
        content: b"hello".to_vec(),
    };
    assert_eq!(
        c.write_file(write).await.unwrap().into_inner().path,
        "docs/a.txt"
    );

    let listing = c.list_dir(list(&h, "", true)).await.unwrap().into_inner();
    let paths: Vec<_> = listing
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.is_dir, e.size))
        .collect();
    assert_eq!(
        paths,
        [
            ("docs", true, 0),
            ("docs/a.txt", false, 5),
            ("docs/sub", true, 0)
        ]
    );
    assert!(!listing.truncated);

    let read = ReadFileRequest {
        workspace: ws(),
        path: "docs/a.txt".into(),
        max_bytes: 0,
    };
    let content = c.read_file(read).await.unwrap().into_inner();
    assert_eq!(
        (content.content.as_slice(), content.is_binary, content.size),
        (&b"hello"[..], false, 5)
    );

    let rename = RenameRequest {
        workspace: ws(),
        from: "docs/a.txt".into(),
        to: "docs/b.txt".into(),
    };
    assert_eq!(
        c.rename(rename).await.unwrap().into_inner().path,
        "docs/b.txt"
    );
    let delete = DeleteRequest {
        workspace: ws(),
        path: "docs".into(),
        recursive: true,
    };
    assert_eq!(c.delete(delete).await.unwrap().into_inner().path, "docs");
    assert!(
        c.list_dir(list(&h, "", true))
            .await
            .unwrap()
            .into_inner()
            .entries
            .is_empty()
    );
}

#[tokio::test]
async fn escapes_and_the_root_itself_are_refused() {
    let h = harness();
    let mut c = h.client.clone();
    let ws = || Some(h.workspace(false));
    symlink(&h.outside, h.root.join("out")).unwrap();
    symlink(h.outside.join("planted"), h.root.join("dangling")).unwrap();
    let outside_abs = h.outside.join("planted").display().to_string();
    for path in [
        "../outside/planted",
        outside_abs.as_str(),
        "out/planted",
        "dangling",
    ] {
        let write = WriteFileRequest {
            workspace: ws(),
            path: path.into(),
            content: b"x".to_vec(),
        };
        assert_eq!(
            c.write_file(write).await.unwrap_err().code(),
            Code::PermissionDenied,
            "{path}"
        );
        let mkdir = MakeDirRequest {
            workspace: ws(),
            path: format!("{path}/d"),
        };
        assert_eq!(
            c.make_dir(mkdir).await.unwrap_err().code(),
            Code::PermissionDenied,
            "{path}"
        );
    }
    let read = ReadFileRequest {
        workspace: ws(),
        path: "out/secret.txt".into(),
        max_bytes: 0,
    };
    assert_eq!(
        c.read_file(read).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        c.list_dir(list(&h, "out", false)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        c.list_dir(list(&h, "..", false)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let rename = RenameRequest {
        workspace: ws(),
        from: "out".into(),
        to: "../outside/moved".into(),
    };
    assert_eq!(
        c.rename(rename).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let delete = DeleteRequest {
        workspace: ws(),
        path: "out/secret.txt".into(),
        recursive: false,
    };
    assert_eq!(
        c.delete(delete).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let root = DeleteRequest {
        workspace: ws(),
        path: ".".into(),
        recursive: true,
    };
    assert_eq!(
        c.delete(root).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    // Deleting the link removes the link, never what it points at.
    let unlink = DeleteRequest {
        workspace: ws(),
        path: "out".into(),
        recursive: true,
    };
    c.delete(unlink).await.unwrap();
    assert!(h.root.exists());
    h.assert_outside_untouched();
}

#[tokio::test]
async fn missing_files_and_workspaces_have_clear_statuses() {
    let h = harness();
    let mut c = h.client.clone();
    let read = ReadFileRequest {
        workspace: Some(h.workspace(false)),
        path: "nope".into(),
        max_bytes: 0,
    };
    let status = c.read_file(read).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().starts_with("cannot read \"nope\""),
        "{}",
        status.message()
    );
    let no_ws = ReadFileRequest {
        workspace: None,
        path: "nope".into(),
        max_bytes: 0,
    };
    assert_eq!(
        c.read_file(no_ws).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}
