//! The gateway's own tests: the router with `oneshot` against fake
//! backends, and sockets over a real listener.

// Test code: failing fast with a clear message is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fakes;
mod router;
mod sockets;
mod web;
