//! The standalone launcher binary, run from its sealed in-memory copy.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use openheim_sandbox::launcher::{ARG, PROTOCOL};
use openheim_sandbox::sealed_launcher::{BINARY, Sealed, Unusable, beside};

fn built_launcher() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openheim-sandbox"))
}

/// Runs `script` with `sh -c` through `launcher`, writable `dir`; stdout.
fn run_through(launcher: OsString, dir: &Path, script: &str) -> String {
    let output = Command::new(launcher)
        .args([ARG, PROTOCOL, "best_effort", "1"])
        .arg(dir)
        .args(["0", "/bin/sh", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn script_file(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_sealed_copy_starts_commands() {
    let dir = tempfile::tempdir().unwrap();
    let sealed = Sealed::copy(&built_launcher()).unwrap();
    let out = run_through(sealed.path(), dir.path(), "echo made > f && cat f");
    assert_eq!(out, "made\n");
}

#[test]
fn rewriting_the_launcher_on_disk_does_not_change_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let on_disk = dir.path().join("openheim-sandbox");
    std::fs::copy(built_launcher(), &on_disk).unwrap();
    let sealed = Sealed::copy(&on_disk).unwrap();
    // What a command with write access to the install directory could do
    // between two commands: rewrite the launcher in place.
    script_file(&on_disk, "echo unconfined");
    assert_eq!(
        Command::new(&on_disk).output().unwrap().stdout,
        b"unconfined\n"
    );
    let out = run_through(sealed.path(), dir.path(), "echo confined");
    assert_eq!(out, "confined\n");
}

#[test]
fn a_binary_that_is_not_this_launcher_is_not_used() {
    match Sealed::copy(Path::new("/bin/echo")) {
        Err(Unusable::Foreign { protocol, .. }) => assert_eq!(protocol, PROTOCOL),
        other => panic!("/bin/echo was taken for the launcher: {other:?}"),
    }
}

#[test]
fn the_launcher_refuses_to_be_run_by_hand() {
    let output = Command::new(built_launcher()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("openheim runs it"));
}

#[test]
fn the_launcher_is_taken_from_beside_the_binary_when_it_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("openheim");
    assert!(beside(&exe).is_none(), "no launcher there yet");
    std::fs::copy("/bin/echo", dir.path().join(BINARY)).unwrap();
    assert!(beside(&exe).is_none(), "echo is no launcher");
    std::fs::copy(built_launcher(), dir.path().join(BINARY)).unwrap();
    let sealed = beside(&exe).expect("the launcher beside the binary");
    let path = sealed.path().into_string().unwrap();
    assert!(path.starts_with("/proc/self/fd/"), "{path}");
    assert_eq!(run_through(sealed.path(), dir.path(), "echo ok"), "ok\n");
}

#[test]
fn an_oversized_file_is_not_read_as_a_launcher() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join(BINARY);
    let mut bytes = std::fs::read(built_launcher()).unwrap();
    bytes.resize(17 << 20, 0);
    std::fs::write(&big, bytes).unwrap();
    assert!(matches!(Sealed::copy(&big), Err(Unusable::Foreign { .. })));
}
