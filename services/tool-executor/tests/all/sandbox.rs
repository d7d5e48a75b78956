//! The escape suite: `..`, absolute paths, symlinks out (to a file, to a
//! directory, dangling, made by the shell), hard links, NUL and look-alike
//! Unicode — through every file tool. Each is refused (or, for names that
//! only look like traversal, resolved inside), and nothing outside changes.

use std::os::unix::fs::symlink;

use openheim_proto::tool_executor::v1::{ExecuteResponse, ToolErrorKind};
use serde_json::json;

use crate::support::{Harness, harness, kind, raw};

fn assert_refused(resp: &ExecuteResponse, what: &str) {
    assert!(resp.is_error, "{what} was allowed: {}", resp.output);
    assert_eq!(
        kind(resp),
        ToolErrorKind::OutsideWorkspace,
        "{what}: {}",
        resp.output
    );
    assert!(
        resp.output.contains("outside the workspace"),
        "{what}: {}",
        resp.output
    );
    assert!(
        !resp.output.contains("secret\n") && resp.output != "secret",
        "{what} leaked"
    );
}

/// Calls every file tool on `path` and expects each to refuse.
async fn every_tool_refuses(h: &Harness, path: &str) {
    let write = h
        .call("write_file", json!({"path": path, "content": "pwned"}))
        .await;
    assert_refused(&write, &format!("write_file {path}"));
    let edit = h
        .call(
            "edit_file",
            json!({"path": path, "old_string": "secret", "new_string": "pwned"}),
        )
        .await;
    assert_refused(&edit, &format!("edit_file {path}"));
    let read = h.call("read_file", json!({"path": path})).await;
    assert_refused(&read, &format!("read_file {path}"));
}

/// Paths naming a directory outside, for the listing and search tools.
async fn directory_tools_refuse(h: &Harness, path: &str) {
    let list = h.call("list_dir", json!({"path": path})).await;
    assert_refused(&list, &format!("list_dir {path}"));
    let search = h
        .call("search", json!({"pattern": "secret", "path": path}))
        .await;
    assert_refused(&search, &format!("search {path}"));
}

#[tokio::test]
async fn escapes_are_refused_by_every_file_tool() {
    let h = harness();
    symlink(&h.outside, h.root.join("out_dir")).unwrap();
    symlink(h.outside.join("secret.txt"), h.root.join("out_file")).unwrap();
    symlink(h.outside.join("planted.txt"), h.root.join("dangling")).unwrap();
    let absolute = h.outside.join("secret.txt").display().to_string();
    let sneaky = format!("{}/../outside/secret.txt", h.root.display());
    for path in [
        "../outside/secret.txt",
        "a/../../outside/secret.txt",
        absolute.as_str(),
        sneaky.as_str(),
        "out_dir/secret.txt",
        "out_file",
        "dangling",
        "/etc/passwd",
    ] {
        every_tool_refuses(&h, path).await;
    }
    let outside = h.outside.display().to_string();
    for dir in ["..", "../outside", outside.as_str(), "out_dir", "/"] {
        directory_tools_refuse(&h, dir).await;
    }
    // Walking the workspace lists the links but never follows them out.
    let listing = h.call("list_dir", json!({"depth": 5})).await;
    assert_eq!(listing.output, "dangling\nout_dir\nout_file\n");
    let found = h.call("search", json!({"pattern": "secret"})).await;
    assert!(found.output.starts_with("No matches"), "{}", found.output);
    h.assert_outside_untouched();
}

#[tokio::test]
async fn a_symlink_made_by_the_shell_is_no_way_out() {
    let h = harness();
    let out = h.outside.display();
    let made = h
        .shell(&format!(
            "ln -s {out} sh_dir && ln -s {out}/secret.txt sh_file && ln -s {out}/new.txt sh_dangling"
        ))
        .await;
    assert!(made.output.starts_with("exit code: 0"), "{}", made.output);
    for path in [
        "sh_file",
        "sh_dir/secret.txt",
        "sh_dangling",
        "sh_dir/new.txt",
    ] {
        every_tool_refuses(&h, path).await;
    }
    directory_tools_refuse(&h, "sh_dir").await;
    let found = h.call("search", json!({"pattern": "secret"})).await;
    assert!(found.output.starts_with("No matches"), "{}", found.output);
    h.assert_outside_untouched();
}

#[tokio::test]
async fn hard_linked_files_are_never_written() {
    let h = harness();
    std::fs::hard_link(h.outside.join("secret.txt"), h.root.join("hard")).unwrap();
    let write = h
        .call("write_file", json!({"path": "hard", "content": "pwned"}))
        .await;
    assert_refused(&write, "write_file through a hard link");
    assert!(write.output.contains("2 hard links"), "{}", write.output);
    let edit = h
        .call(
            "edit_file",
            json!({"path": "hard", "old_string": "secret", "new_string": "pwned"}),
        )
        .await;
    assert_refused(&edit, "edit_file through a hard link");
    h.assert_outside_untouched();
}

#[tokio::test]
async fn nul_bytes_are_refused_and_look_alike_names_stay_inside() {
    let h = harness();
    for path in ["a\0b", "../outside/secret.txt\0.txt"] {
        let resp = h
            .call("write_file", json!({"path": path, "content": "x"}))
            .await;
        assert_eq!(kind(&resp), ToolErrorKind::OutsideWorkspace, "{path:?}");
    }
    // Characters that only look like dots, slashes or a reversed name are
    // ordinary file name characters: such a path names a file inside.
    let look_alikes = [
        "\u{FF0E}\u{FF0E}\u{FF0F}outside\u{FF0F}planted.txt",
        "\u{FF0E}\u{FF0E}/outside/planted.txt",
        ".\u{0301}./outside/planted.txt",
        "..\u{2215}outside\u{2215}planted.txt",
        "..\\outside\\planted.txt",
        "%2e%2e/outside/planted.txt",
        "\u{202E}txt.exe",
        "\u{200B}../outside/planted.txt",
    ];
    for path in look_alikes {
        let resp = h
            .call("write_file", json!({"path": path, "content": "x"}))
            .await;
        if resp.is_error {
            assert_eq!(kind(&resp), ToolErrorKind::OutsideWorkspace, "{path:?}");
            continue;
        }
        let written = raw(&resp)["path"].as_str().unwrap().to_owned();
        let real = std::fs::canonicalize(h.root.join(&written)).unwrap();
        assert!(
            real.starts_with(&h.root),
            "{path:?} wrote {}",
            real.display()
        );
    }
    h.assert_outside_untouched();
    assert!(!h.dir.path().join("planted.txt").exists());
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
    let edit = h
        .call(
            "edit_file",
            json!({"path": "alias/lib.rs", "old_string": "main", "new_string": "start"}),
        )
        .await;
    assert!(!edit.is_error, "{}", edit.output);
}
