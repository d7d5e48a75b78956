//! Errors of the tool-executor: [`ToolError`] for everything a tool call or
//! file operation can run into (each with a [`ToolErrorKind`] the caller can
//! act on), and [`ToolExecutorError`] for running the service itself.

use std::io;

use openheim_proto::tool_executor::v1::ToolErrorKind;

/// Why a tool call or file operation failed. The message is written for the
/// model (and the user): it names the tool, argument or path involved.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool {name:?}")]
    UnknownTool { name: String },

    /// `reason` names the argument and what was expected.
    #[error("invalid arguments for {tool}: {reason}")]
    InvalidArguments { tool: String, reason: String },

    #[error("{path:?} is outside the workspace: {reason}")]
    OutsideWorkspace { path: String, reason: String },

    #[error("{}", openheim_tool_rules::shell::SHELL_DISABLED)]
    ShellDisabled,

    /// `tools.sandbox = "enforce"` and the OS cannot confine commands.
    #[error(
        "the shell is disabled: tools.sandbox = \"enforce\" requires OS confinement, which is unavailable ({reason})"
    )]
    Unconfined { reason: String },

    /// A `web_fetch` target (or a redirect) that is not a public address.
    #[error("refused to fetch {url}: {reason}")]
    Blocked { url: String, reason: String },

    /// The command was killed with its whole process group. `output` is what
    /// it printed before that; `raw_output` the structured result.
    #[error("{}", openheim_tool_rules::shell::timed_out_text(*secs, output))]
    Timeout {
        secs: u64,
        output: String,
        raw_output: serde_json::Value,
    },

    #[error("cannot {action} {path:?}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },

    /// Anything else; custom tools report their own failures with it.
    #[error("{0}")]
    Failed(String),
}

impl From<openheim_tool_rules::path::Outside> for ToolError {
    fn from(outside: openheim_tool_rules::path::Outside) -> Self {
        Self::OutsideWorkspace {
            path: outside.path,
            reason: outside.reason,
        }
    }
}

impl From<openheim_sandbox::SandboxError> for ToolError {
    fn from(error: openheim_sandbox::SandboxError) -> Self {
        use openheim_sandbox::SandboxError as E;
        match error {
            E::Unconfined { reason } => Self::Unconfined { reason },
            E::Confine(reason) => Self::Failed(reason),
            E::Start { program, source } => Self::Io {
                action: "start",
                path: program,
                source,
            },
        }
    }
}

impl ToolError {
    /// The wire classification of this error.
    pub fn kind(&self) -> ToolErrorKind {
        match self {
            Self::UnknownTool { .. } => ToolErrorKind::UnknownTool,
            Self::InvalidArguments { .. } => ToolErrorKind::InvalidArguments,
            Self::OutsideWorkspace { .. } => ToolErrorKind::OutsideWorkspace,
            Self::ShellDisabled | Self::Unconfined { .. } => ToolErrorKind::ShellDisabled,
            // A network boundary refusal, of the same class as a path that
            // leaves the workspace.
            Self::Blocked { .. } => ToolErrorKind::OutsideWorkspace,
            Self::Timeout { .. } => ToolErrorKind::Timeout,
            Self::Io { .. } => ToolErrorKind::Io,
            Self::Failed(_) => ToolErrorKind::Failed,
        }
    }

    /// Structured output that survives the failure (a timed-out command's
    /// exit information), for clients that render it.
    pub fn raw_output(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Timeout { raw_output, .. } => Some(raw_output),
            Self::UnknownTool { .. }
            | Self::InvalidArguments { .. }
            | Self::OutsideWorkspace { .. }
            | Self::ShellDisabled
            | Self::Unconfined { .. }
            | Self::Blocked { .. }
            | Self::Io { .. }
            | Self::Failed(_) => None,
        }
    }

    pub(crate) fn invalid_arguments(tool: &str, reason: impl Into<String>) -> Self {
        Self::InvalidArguments {
            tool: tool.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn outside(path: &str, reason: impl Into<String>) -> Self {
        Self::OutsideWorkspace {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
