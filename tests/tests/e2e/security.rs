//! Regression tests for the holes an outside attack run found (threat model:
//! docs/security.md): what a model could reach through the tools that it
//! must not. The gateway's share is in `gateway/security.rs`.

pub mod hard_links;
pub mod key_exposure;
pub mod private_files;
pub mod url_secrets;
