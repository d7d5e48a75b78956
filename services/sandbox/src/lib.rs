//! What confines the processes openheim starts for the model — shell
//! commands and stdio MCP servers — shared by tool-executor and mcp-broker so
//! the rule lives in one place: environment hygiene ([`env`]), OS
//! confinement ([`confinement`]: Landlock, capabilities), the launcher
//! that gives each command its own process namespace ([`launcher`]) and
//! the directories it hides there ([`hiding`]), and the small standalone
//! launcher binary it prefers ([`sealed_launcher`]). The
//! threat model is in `docs/security.md`.

#[cfg(target_os = "linux")]
mod caps;
pub mod confinement;
pub mod env;
pub mod hiding;
#[cfg(target_os = "linux")]
mod landlock;
pub mod launcher;
pub mod sealed_launcher;

pub use confinement::{Confinement, Launch, Level, SandboxMode};
pub use env::EnvPolicy;

/// Why a confined process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `tools.sandbox = "enforce"` and the OS cannot confine commands.
    #[error("tools.sandbox = \"enforce\" requires OS confinement, which is unavailable ({reason})")]
    Unconfined { reason: String },

    /// Confinement could not be applied although the kernel supports it.
    #[error("{0}")]
    Confine(String),

    #[error("cannot start {program}: {source}")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
}
