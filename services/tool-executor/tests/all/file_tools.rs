//! The model's file tools through gRPC: edit_file's diff and ambiguity
//! errors, list_dir's bounds, search honouring .gitignore and skipping
//! binary files, read_file's offset/limit.

use openheim_proto::tool_executor::v1::ToolErrorKind;
use serde_json::json;

use crate::support::{Harness, harness, kind, raw};

fn write(h: &Harness, path: &str, content: &str) {
    let path = h.root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn read(h: &Harness, path: &str) -> String {
    std::fs::read_to_string(h.root.join(path)).unwrap()
}

#[tokio::test]
async fn edit_file_replaces_a_unique_string_and_returns_a_diff() {
    let h = harness();
    write(&h, "src/lib.rs", "fn a() {}\nfn b() {}\nfn c() {}\n");
    let args =
        json!({"path": "src/lib.rs", "old_string": "fn b() {}", "new_string": "fn bee() {}"});
    let resp = h.call("edit_file", args).await;
    assert!(!resp.is_error, "{}", resp.output);
    assert_eq!(
        resp.output,
        "Edited src/lib.rs: 1 replacement\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,3 @@\n fn a() {}\n-fn b() {}\n+fn bee() {}\n fn c() {}\n"
    );
    assert_eq!(
        read(&h, "src/lib.rs"),
        "fn a() {}\nfn bee() {}\nfn c() {}\n"
    );
    let diff = &resp.diffs[0];
    assert_eq!(diff.path, h.root.join("src/lib.rs").display().to_string());
    assert_eq!(
        diff.old_text.as_deref(),
        Some("fn a() {}\nfn b() {}\nfn c() {}\n")
    );
    assert_eq!(diff.new_text, "fn a() {}\nfn bee() {}\nfn c() {}\n");
    assert_eq!(raw(&resp), json!({"path": "src/lib.rs", "replacements": 1}));
}

#[tokio::test]
async fn edit_file_refuses_ambiguous_and_missing_strings() {
    let h = harness();
    write(&h, "a.txt", "x = 1\nx = 1\nx = 1\n");
    let ambiguous = h
        .call(
            "edit_file",
            json!({"path": "a.txt", "old_string": "x = 1", "new_string": "x = 2"}),
        )
        .await;
    assert_eq!(kind(&ambiguous), ToolErrorKind::InvalidArguments);
    assert_eq!(
        ambiguous.output,
        "invalid arguments for edit_file: `old_string` occurs 3 times in \"a.txt\"; include more surrounding lines to make it unique, or set replace_all to change every occurrence"
    );
    let missing = h
        .call(
            "edit_file",
            json!({"path": "a.txt", "old_string": "y = 1", "new_string": "y = 2"}),
        )
        .await;
    assert!(
        missing.output.contains("was not found in \"a.txt\""),
        "{}",
        missing.output
    );
    assert_eq!(
        read(&h, "a.txt"),
        "x = 1\nx = 1\nx = 1\n",
        "refusals change nothing"
    );
    let all = h
        .call(
            "edit_file",
            json!({"path": "a.txt", "old_string": "x = 1", "new_string": "x = 2", "replace_all": true}),
        )
        .await;
    assert!(
        all.output.starts_with("Edited a.txt: 3 replacements\n"),
        "{}",
        all.output
    );
    assert_eq!(read(&h, "a.txt"), "x = 2\nx = 2\nx = 2\n");
    let absent = h
        .call(
            "edit_file",
            json!({"path": "nope.txt", "old_string": "a", "new_string": "b"}),
        )
        .await;
    assert_eq!(kind(&absent), ToolErrorKind::Io);
}

#[tokio::test]
async fn list_dir_is_sorted_marked_and_bounded() {
    let h = harness();
    write(&h, "b/inner/deep/deeper.txt", "x");
    write(&h, "a.txt", "x");
    write(&h, ".git/HEAD", "ref");
    let resp = h.call("list_dir", json!({})).await;
    assert!(!resp.is_error, "{}", resp.output);
    assert_eq!(
        resp.output,
        ".git/\na.txt\nb/\nb/inner/\n[… directories at depth 2 not expanded; list them or raise depth (max 5) …]\n"
    );
    let deep = h.call("list_dir", json!({"path": "b", "depth": 9})).await;
    assert_eq!(
        deep.output,
        "b/inner/\nb/inner/deep/\nb/inner/deep/deeper.txt\n"
    );
    let flat = h
        .call("list_dir", json!({"path": "b/inner", "depth": 1}))
        .await;
    assert!(
        flat.output.starts_with("b/inner/deep/\n"),
        "{}",
        flat.output
    );

    for i in 0..600 {
        write(&h, &format!("many/f{i:03}"), "");
    }
    let many = h.call("list_dir", json!({"path": "many"})).await;
    assert_eq!(many.output.lines().count(), 501, "500 entries and a note");
    assert!(
        many.output
            .ends_with("[… stopped at 500 entries; list a subdirectory or lower depth …]\n")
    );
    assert_eq!(raw(&many)["truncated"], true);
    let file = h.call("list_dir", json!({"path": "a.txt"})).await;
    assert_eq!(kind(&file), ToolErrorKind::Io);
}

#[tokio::test]
async fn search_honours_gitignore_and_skips_binary_files() {
    let h = harness();
    write(&h, ".gitignore", "target/\n*.log\n");
    write(&h, "src/main.rs", "fn main() {\n    needle();\n}\n");
    write(&h, "target/debug/out.rs", "needle\n");
    write(&h, "debug.log", "needle\n");
    write(&h, ".github/ci.yml", "run: needle\n");
    std::fs::write(h.root.join("blob.bin"), b"needle\0\x01\x02needle").unwrap();
    let resp = h.call("search", json!({"pattern": "needle"})).await;
    assert!(!resp.is_error, "{}", resp.output);
    assert_eq!(
        resp.output,
        ".github/ci.yml:1:run: needle\nsrc/main.rs:2:    needle();\n"
    );
    // A glob narrows the files but never brings ignored ones back.
    let rs = h
        .call("search", json!({"pattern": "needle", "glob": "*.rs"}))
        .await;
    assert_eq!(rs.output, "src/main.rs:2:    needle();\n");
    let none = h.call("search", json!({"pattern": "haystack"})).await;
    assert!(!none.is_error);
    assert!(
        none.output.starts_with("No matches for \"haystack\""),
        "{}",
        none.output
    );
}

#[tokio::test]
async fn search_results_are_bounded() {
    let h = harness();
    let lines: String = (1..=50).map(|i| format!("hit {i}\n")).collect();
    write(&h, "a.txt", &lines);
    let resp = h
        .call("search", json!({"pattern": "hit", "max_results": 10}))
        .await;
    assert_eq!(resp.output.lines().count(), 11);
    assert!(resp.output.starts_with("a.txt:1:hit 1\n"));
    assert!(
        resp.output.ends_with(
            "a.txt:10:hit 10\n[… stopped at 10 matches; narrow the pattern, path or glob …]\n"
        ),
        "{}",
        resp.output
    );
    let exact = h
        .call("search", json!({"pattern": "hit", "max_results": 50}))
        .await;
    assert_eq!(raw(&exact)["truncated"], false);
    let bad = h.call("search", json!({"pattern": "(unclosed"})).await;
    assert_eq!(kind(&bad), ToolErrorKind::InvalidArguments);
    assert!(bad.output.contains("argument `pattern`"), "{}", bad.output);
}

#[tokio::test]
async fn read_file_pages_with_offset_and_limit() {
    let h = harness();
    let lines: String = (1..=10).map(|i| format!("l{i}\n")).collect();
    write(&h, "f.txt", &lines);
    let page = h
        .call(
            "read_file",
            json!({"path": "f.txt", "offset": 3, "limit": 2}),
        )
        .await;
    assert_eq!(
        page.output,
        "l3\nl4\n[… more lines follow; use offset=5 to read more …]"
    );
    assert_eq!(raw(&page)["next_offset"], 5);
    let rest = h
        .call("read_file", json!({"path": "f.txt", "offset": 9}))
        .await;
    assert_eq!(rest.output, "l9\nl10\n");
    let past = h
        .call("read_file", json!({"path": "f.txt", "offset": 11}))
        .await;
    assert_eq!(kind(&past), ToolErrorKind::InvalidArguments);
}
