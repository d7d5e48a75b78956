//! The rules of the built-in tools that must read the same wherever a tool
//! runs: in tool-executor, or through the turn's caller (an ACP client's
//! `fs/*` and `terminal/*`, which agent-loop drives). Both services apply
//! them from here, so a result never tells the model where it was produced.
//!
//! Pure on purpose: no I/O, no async, no environment. Each service does the
//! reading, writing and running and asks this crate what the rule says:
//! - [`args`]: the tools' names and the arguments they take;
//! - [`edit`]: `edit_file`'s replacement rule, its diff and result text;
//! - [`path`]: the lexical workspace check and its refusal text;
//! - [`shell`]: the per-call timeout cap, the exit status line, the output
//!   sections and the timeout text of `execute_command`;
//! - [`truncate`]: the head-and-tail cap on every result text.

pub mod args;
pub mod edit;
pub mod path;
pub mod shell;
pub mod truncate;
