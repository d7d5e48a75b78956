//! Escapes from the workspace through the tools: `..`, absolute paths,
//! symlinks out and dangling symlinks are refused and write nothing outside.

use std::os::unix::fs::symlink;

use openheim_proto::tool_executor::v1::ToolErrorKind;
use serde_json::json;

use crate::support::{harness, kind};

#[tokio::test]
async fn escapes_are_refused_and_nothing_is_written_outside() {
    let h = harness();
    symlink(&h.outside, h.root.join("out_dir")).unwrap();
    symlink(h.outside.join("secret.txt"), h.root.join("out_file")).unwrap();
    symlink(h.outside.join("planted.txt"), h.root.join("dangling")).unwrap();
    let absolute = h.outside.join("planted.txt").display().to_string();
    let sneaky = format!("{}/../outside/planted.txt", h.root.display());
    let targets = [
        "../outside/planted.txt",
        "a/../../outside/planted.txt",
        absolute.as_str(),
        sneaky.as_str(),
        "out_dir/planted.txt",
        "out_file",
        "dangling",
    ];
    for path in targets {
        let resp = h
            .call("write_file", json!({"path": path, "content": "pwned"}))
            .await;
        assert!(resp.is_error, "{path} was written");
        assert_eq!(
            kind(&resp),
            ToolErrorKind::OutsideWorkspace,
            "{path}: {}",
            resp.output
        );
        assert!(
            resp.output.contains("outside the workspace"),
            "{}",
            resp.output
        );
    }
    for path in [
        "../outside/secret.txt",
        "out_file",
        "out_dir/secret.txt",
        "/etc/passwd",
    ] {
        let resp = h.call("read_file", json!({"path": path})).await;
        assert_eq!(
            kind(&resp),
            ToolErrorKind::OutsideWorkspace,
            "{path}: {}",
            resp.output
        );
        assert!(!resp.output.contains("secret\n") && resp.output != "secret");
    }
    h.assert_outside_untouched();
}

#[tokio::test]
async fn symlinks_that_stay_inside_work() {
    let h = harness();
    std::fs::create_dir(h.root.join("src")).unwrap();
    symlink(h.root.join("src"), h.root.join("alias")).unwrap();
    let resp = h
        .call(
            "write_file",
            json!({"path": "alias/lib.rs", "content": "fn main() {}"}),
        )
        .await;
    assert!(!resp.is_error, "{}", resp.output);
    assert_eq!(
        std::fs::read_to_string(h.root.join("src/lib.rs")).unwrap(),
        "fn main() {}"
    );
}
