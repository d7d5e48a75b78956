//! The built-in tools' names and the arguments they take, parsed the same by
//! tool-executor and by a turn's caller.

use serde::Deserialize;

/// `read_file`.
pub const READ_FILE: &str = "read_file";
/// `write_file`.
pub const WRITE_FILE: &str = "write_file";
/// `edit_file`.
pub const EDIT_FILE: &str = "edit_file";
/// `execute_command`, the shell tool.
pub const EXECUTE_COMMAND: &str = "execute_command";

/// Arguments of `read_file`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadArgs {
    pub path: String,
    /// First line to read, 1-based.
    #[serde(default)]
    pub offset: Option<u64>,
    /// How many lines to read.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `write_file`.
#[derive(Debug, Clone, Deserialize)]
pub struct WriteArgs {
    pub path: String,
    pub content: String,
}

/// Arguments of `edit_file`; [`EditArgs::apply`] is its rule.
#[derive(Debug, Clone, Deserialize)]
pub struct EditArgs {
    pub path: String,
    pub old_string: String,
    pub new_string: String,
    #[serde(default)]
    pub replace_all: bool,
}

/// Arguments of `execute_command`.
#[derive(Debug, Clone, Deserialize)]
pub struct ShellArgs {
    pub command: String,
    /// Per-call timeout; capped by [`crate::shell::effective_timeout`].
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}
