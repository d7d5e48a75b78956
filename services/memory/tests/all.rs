//! Integration tests of the memory: the store contract and the relevance
//! corpus, each run against both backends (SQLite in a temporary directory,
//! Redis against a real `redis-server`), and how each backend fails.

// Test support helpers are not `#[test]` functions, which the lint
// exemptions in clippy.toml cover; a failed setup should panic loudly here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "all/support.rs"]
mod support;

#[path = "all/contract.rs"]
mod contract;

#[path = "all/relevance.rs"]
mod relevance;

#[path = "all/failures.rs"]
mod failures;
