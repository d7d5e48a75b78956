//! Integration tests of agent-loop: the session store contract, run against
//! every backend (the file store in a temporary directory, the Redis store
//! against a real `redis-server`), and what only the Redis store promises:
//! several replicas sharing sessions, leases and remembered approvals.

// Test support helpers are not `#[test]` functions, which the lint
// exemptions in clippy.toml cover; a failed setup should panic loudly here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "all/redis_server.rs"]
mod redis_server;

#[path = "all/store_contract.rs"]
mod store_contract;

#[path = "all/redis_replicas.rs"]
mod redis_replicas;

#[path = "all/redis_faults.rs"]
mod redis_faults;
