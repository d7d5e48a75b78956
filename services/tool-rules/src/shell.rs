//! `execute_command`'s rules that do not depend on where the command runs:
//! how long it may run, and the text the model reads about how it ended.

use std::time::Duration;

/// Upper bound for a per-call `timeout_secs` (unless the configured default
/// is higher): a model must not park a command for hours.
pub const MAX_SHELL_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a command is not run when the workspace forbids the shell.
pub const SHELL_DISABLED: &str = "the shell is disabled in this workspace (allow_shell = false)";

/// The per-call override if given (capped), else the configured default.
pub fn effective_timeout(default: Duration, requested_secs: Option<u64>) -> Duration {
    match requested_secs {
        None | Some(0) => default,
        Some(secs) => Duration::from_secs(secs).min(default.max(MAX_SHELL_TIMEOUT)),
    }
}

/// How a command ended, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it (its number or name, as the runner reports it).
    Signal(String),
    /// Nothing could be read about it.
    Unknown,
}

impl std::fmt::Display for Exit {
    /// The first line of a command's result.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(code) => write!(f, "exit code: {code}"),
            Self::Signal(signal) => write!(f, "killed by signal {signal}"),
            Self::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// The output part of a command's result: each non-empty stream as
/// `label:` then its text, or `(no output)`.
pub fn sections(streams: &[(&str, &str)]) -> String {
    let shown: Vec<String> = streams
        .iter()
        .filter(|(_, text)| !text.is_empty())
        .map(|(label, text)| format!("{label}:\n{text}"))
        .collect();
    match shown.is_empty() {
        true => "(no output)".to_owned(),
        false => shown.join("\n"),
    }
}

/// The result of a command that ran: its exit line, then its output.
pub fn result_text(exit: &Exit, output: &str) -> String {
    format!("{exit}\n{output}")
}

/// The (error) result of a command killed at its timeout of `secs`.
pub fn timed_out_text(secs: u64, output: &str) -> String {
    format!("command timed out after {secs} s; it was killed with its child processes\n{output}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_call_timeouts_are_capped() {
        let default = Duration::from_secs(120);
        assert_eq!(effective_timeout(default, None), default);
        assert_eq!(effective_timeout(default, Some(0)), default);
        assert_eq!(effective_timeout(default, Some(5)), Duration::from_secs(5));
        assert_eq!(effective_timeout(default, Some(100_000)), MAX_SHELL_TIMEOUT);
        let long = Duration::from_secs(3600);
        assert_eq!(effective_timeout(long, Some(100_000)), long);
    }

    #[test]
    fn results_name_the_exit_and_the_streams() {
        assert_eq!(Exit::Code(3).to_string(), "exit code: 3");
        assert_eq!(Exit::Signal("9".into()).to_string(), "killed by signal 9");
        assert_eq!(Exit::Unknown.to_string(), "exit status unknown");
        assert_eq!(
            sections(&[("stdout", "a\n"), ("stderr", "b\n")]),
            "stdout:\na\n\nstderr:\nb\n"
        );
        assert_eq!(sections(&[("stdout", ""), ("stderr", "b")]), "stderr:\nb");
        assert_eq!(sections(&[("stdout", ""), ("stderr", "")]), "(no output)");
        assert_eq!(
            result_text(&Exit::Code(0), "(no output)"),
            "exit code: 0\n(no output)"
        );
        assert_eq!(
            timed_out_text(7, "output:\npartial"),
            "command timed out after 7 s; it was killed with its child processes\noutput:\npartial"
        );
    }
}
