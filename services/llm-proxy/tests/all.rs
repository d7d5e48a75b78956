//! Integration tests of llm-proxy: the service is called through its
//! generated gRPC client over the in-process transport (and once over TCP),
//! against a fake OpenAI server on 127.0.0.1:0 that speaks the exact Chat
//! Completions SSE wire format and records every request it receives.

// Test support helpers are not `#[test]` functions, which the lint
// exemptions in clippy.toml cover; a failed setup should panic loudly here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "all/support.rs"]
mod support;

#[path = "all/streaming.rs"]
mod streaming;

#[path = "all/failures.rs"]
mod failures;

#[path = "all/retries.rs"]
mod retries;

#[path = "all/anthropic.rs"]
mod anthropic;

#[path = "all/gemini.rs"]
mod gemini;

#[path = "all/responses.rs"]
mod responses;

#[path = "all/secrets.rs"]
mod secrets;
