//! `execute_command` run by the turn's caller (an ACP client's terminal)
//! instead of tool-executor.
//!
//! The caller runs `sh -c COMMAND` in the session's workspace, shows it to
//! its user, and answers with how it ended. Everything else stays here: the
//! permission gate already ran, the timeout is the one tool-executor would
//! apply, and the result text has tool-executor's shape (`exit code: N`, then
//! the output), so the model cannot tell where the command ran. The turn
//! waits at most the timeout plus [`ANSWER_GRACE`], so a caller that never
//! answers cannot hold a turn forever.

use std::time::Duration;

use openheim_proto::agent_loop::v1::{CommandResult, RunCommand, client_request::Operation};
use openheim_proto::common::v1::ToolCall;
use serde::Deserialize;

use crate::client_ops::ClientReply;
use crate::turn::{Outcome, Turn};

/// The built-in shell tool's name.
pub const SHELL: &str = "execute_command";

/// Upper bound for a per-call `timeout_secs` (unless the configured default
/// is higher), as tool-executor caps it.
const MAX_SHELL_TIMEOUT: Duration = Duration::from_secs(600);

/// How much longer than the command's timeout the turn waits for the
/// caller's answer (it still has to kill the command and read its output).
const ANSWER_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct Args {
    command: String,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

impl Turn {
    /// Runs a delegated `execute_command` through the caller.
    pub(crate) async fn client_command(&self, call: &ToolCall) -> Result<Outcome, String> {
        if !self.settings.allow_shell {
            return Err("the shell is disabled in this workspace (allow_shell = false)".to_owned());
        }
        let args: Args = serde_json::from_str(&call.arguments_json)
            .map_err(|e| format!("invalid arguments for {SHELL}: {e}"))?;
        let timeout = effective_timeout(self.settings.shell_timeout, args.timeout_secs);
        let run = RunCommand {
            command: args.command,
            cwd: self.meta.work_dir.clone(),
            timeout_secs: u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX),
            output_byte_limit: self.settings.max_result_bytes as u64,
        };
        let asked = self.ask(call, Operation::RunCommand(run));
        let reply = tokio::time::timeout(timeout + ANSWER_GRACE, asked)
            .await
            .map_err(|_| {
                format!(
                    "the client did not report how the command ended within {} s",
                    (timeout + ANSWER_GRACE).as_secs()
                )
            })?;
        match reply {
            ClientReply::Command(result) => Ok(command_outcome(&result, timeout)),
            ClientReply::Error(error) => Err(format!("the command could not be run: {error}")),
            ClientReply::Text(_) => {
                Err("the client answered a command with a file operation's result".to_owned())
            }
        }
    }
}

/// The per-call override if given (capped), else the configured default.
fn effective_timeout(default: Duration, requested_secs: Option<u64>) -> Duration {
    match requested_secs {
        None | Some(0) => default,
        Some(secs) => Duration::from_secs(secs).min(default.max(MAX_SHELL_TIMEOUT)),
    }
}

/// The result the model sees, shaped like tool-executor's: the exit status
/// line, then the output. A timeout is an error result, as there.
fn command_outcome(result: &CommandResult, timeout: Duration) -> Outcome {
    let output = match (result.output.is_empty(), result.truncated) {
        (true, _) => "(no output)".to_owned(),
        (false, false) => format!("output:\n{}", result.output),
        (false, true) => format!(
            "output (the start was cut to fit the limit):\n{}",
            result.output
        ),
    };
    let raw_output = serde_json::json!({
        "exit_code": result.exit_code,
        "signal": Some(&result.signal).filter(|s| !s.is_empty()),
        "truncated": result.truncated,
        "timed_out": result.timed_out,
        "via": "client",
    });
    let (text, is_error) = match (result.timed_out, result.exit_code) {
        (true, _) => (
            format!(
                "command timed out after {} s; it was killed with its child processes\n{output}",
                timeout.as_secs()
            ),
            true,
        ),
        (false, Some(code)) => (format!("exit code: {code}\n{output}"), false),
        (false, None) if !result.signal.is_empty() => (
            format!("killed by signal {}\n{output}", result.signal),
            false,
        ),
        (false, None) => (format!("exit status unknown\n{output}"), false),
    };
    Outcome {
        text,
        is_error,
        raw_output_json: raw_output.to_string(),
        diffs: Vec::new(),
        images: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(exit_code: Option<i32>, output: &str) -> CommandResult {
        CommandResult {
            exit_code,
            output: output.into(),
            ..CommandResult::default()
        }
    }

    #[test]
    fn results_read_like_tool_executor_output() {
        let timeout = Duration::from_secs(5);
        let done = command_outcome(&result(Some(3), "hi\n"), timeout);
        assert_eq!(done.text, "exit code: 3\noutput:\nhi\n");
        assert!(!done.is_error);
        let raw: serde_json::Value = serde_json::from_str(&done.raw_output_json).unwrap();
        assert_eq!(raw["exit_code"], 3);
        assert_eq!(raw["via"], "client");
        assert_eq!(
            command_outcome(&result(Some(0), ""), timeout).text,
            "exit code: 0\n(no output)"
        );
        let killed = CommandResult {
            signal: "SIGTERM".into(),
            ..result(None, "x")
        };
        assert_eq!(
            command_outcome(&killed, timeout).text,
            "killed by signal SIGTERM\noutput:\nx"
        );
        let cut = CommandResult {
            truncated: true,
            ..result(Some(0), "end")
        };
        assert!(
            command_outcome(&cut, timeout)
                .text
                .contains("the start was cut")
        );
    }

    #[test]
    fn a_timeout_is_an_error_result() {
        let timed_out = CommandResult {
            timed_out: true,
            ..result(None, "partial")
        };
        let outcome = command_outcome(&timed_out, Duration::from_secs(7));
        assert!(outcome.is_error);
        assert_eq!(
            outcome.text,
            "command timed out after 7 s; it was killed with its child processes\noutput:\npartial"
        );
    }

    #[test]
    fn per_call_timeouts_are_capped_like_tool_executor_caps_them() {
        let default = Duration::from_secs(120);
        assert_eq!(effective_timeout(default, None), default);
        assert_eq!(effective_timeout(default, Some(0)), default);
        assert_eq!(effective_timeout(default, Some(5)), Duration::from_secs(5));
        assert_eq!(effective_timeout(default, Some(100_000)), MAX_SHELL_TIMEOUT);
        let long = Duration::from_secs(3600);
        assert_eq!(effective_timeout(long, Some(100_000)), long);
    }
}
