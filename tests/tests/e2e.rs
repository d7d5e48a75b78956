//! End-to-end scenarios: the real `openheim` binary and the service
//! binaries, against the mock LLM provider over real HTTP.
//!
//! Run `cargo build --workspace --bins` first (the README's test command does).

// Test code: failing fast with a clear message is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e {
    pub mod acp;
    pub mod acp_sdk_client;
    pub mod agents;
    pub mod architecture;
    pub mod cli;
    pub mod compaction;
    pub mod compose;
    pub mod context_window;
    pub mod custom_provider;
    pub mod embeddings;
    pub mod gateway;
    pub mod hooks;
    pub mod images;
    pub mod interrupted;
    pub mod library;
    pub mod mcp;
    pub mod mcp_elicitation;
    pub mod mcp_oauth;
    pub mod mcp_turns;
    pub mod memory;
    pub mod plans;
    pub mod project_instructions;
    pub mod provider_faults;
    pub mod providers;
    pub mod redis_store;
    pub mod run_files_task;
    pub mod run_json;
    pub mod sandbox;
    pub mod scale;
    pub mod scratch;
    pub mod security;
    pub mod telemetry;
    pub mod thinking;
    pub mod tui;
    pub mod turns;
    pub mod web;
}
