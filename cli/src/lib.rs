//! openheim: the `openheim` binary and the embeddable library.
//!
//! This crate is the composition root. [`Runtime`] wires the four services
//! together, each either in this process (a generated gRPC server behind an
//! in-memory channel) or remote (HTTP/2 to the address in `[services]`); the
//! front ends (`run`, later the REPL, ACP and the gateway) only ever hold an
//! agent-loop gRPC client.

pub mod init;
pub mod run;
mod runtime;

pub use runtime::{Runtime, RuntimeError};
