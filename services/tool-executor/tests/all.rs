//! Integration tests of the tool-executor, driven through its generated gRPC
//! client: in process (the CLI deployment) and over TCP (containers).
//!
//! One test binary; its modules live in `tests/all/` (a crate root looks for
//! modules next to itself, hence the `#[path]`s).

// Helpers outside `#[test]` functions fail loudly too; clippy's test
// allowances only cover the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "all/confinement.rs"]
mod confinement;
#[path = "all/file_tools.rs"]
mod file_tools;
#[path = "all/fileops.rs"]
mod fileops;
#[path = "all/sandbox.rs"]
mod sandbox;
#[path = "all/shell.rs"]
mod shell;
#[path = "all/support.rs"]
mod support;
#[path = "all/tcp.rs"]
mod tcp;
#[path = "all/tools.rs"]
mod tools;
#[path = "all/watch.rs"]
mod watch;
#[path = "all/web_fetch.rs"]
mod web_fetch;
