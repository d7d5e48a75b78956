//! End-to-end scenarios of openheim and the shared support they run on: a mock
//! OpenAI-compatible LLM provider, the location of the workspace binaries and a spawner for
//! service processes.
//!
//! The scenarios live in `tests/` (the `e2e` test binary); this library holds what they share.

// Everything here runs only inside tests, where failing fast with a clear message is the
// desired behaviour (clippy.toml allows the same in `#[cfg(test)]` code).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bins;
pub mod install;
pub mod json_schema;
pub mod mock_llm;
pub mod oauth_server;
pub mod otlp;
pub mod process;
pub mod procs;
pub mod pty;

pub use bins::bin_path;
pub use install::{Cluster, Install};
pub use mock_llm::{
    MockLlm, MockLlmBuilder, RecordedRequest, Reply, ToolCallSpec, Usage, last_tool_result,
};
pub use openheim_test_redis::RedisServer;
pub use process::ServiceProcess;
