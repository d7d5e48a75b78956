//! Integration tests of the mcp-broker, driven through its generated gRPC
//! client in process, against an rmcp server in this process (Streamable
//! HTTP on port 0) and against misbehaving child processes (stdio).
//!
//! One test binary; its modules live in `tests/all/` (a crate root looks for
//! modules next to itself, hence the `#[path]`s). The end-to-end scenarios
//! with a real stdio MCP server and full turns are in `tests/tests/e2e/mcp.rs`.

// Helpers outside `#[test]` functions fail loudly too; clippy's test
// allowances only cover the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "all/sessions.rs"]
mod sessions;
#[path = "all/stdio.rs"]
mod stdio;
#[path = "all/support.rs"]
mod support;
#[path = "all/token_store.rs"]
mod token_store;
#[path = "all/web.rs"]
mod web;
