//! `execute_command` run by the turn's caller (an ACP client's terminal)
//! instead of tool-executor.
//!
//! The caller runs `sh -c COMMAND` in the session's workspace, shows it to
//! its user, and answers with how it ended. Everything else stays here: the
//! permission gate already ran, the timeout is the one tool-executor would
//! apply, and the result text has tool-executor's shape (`exit code: N`, then
//! the output), both from `openheim-tool-rules`, so the model cannot tell
//! where the command ran. The turn waits at most the timeout plus
//! [`ANSWER_GRACE`], so a caller that never answers cannot hold a turn
//! forever.

use std::time::Duration;

use openheim_proto::agent_loop::v1::{CommandResult, RunCommand, client_request::Operation};
use openheim_tool_rules::args::{EXECUTE_COMMAND, ShellArgs};
use openheim_tool_rules::shell::{Exit, effective_timeout, result_text, sections, timed_out_text};

use super::{Asker, ClientReply, ClientToolError, Refused, Scope, parse};
use crate::outcome::Outcome;

/// How much longer than the command's timeout the turn waits for the
/// caller's answer (it still has to kill the command and read its output).
const ANSWER_GRACE: Duration = Duration::from_secs(30);

/// Runs a delegated `execute_command` through the caller.
pub(super) async fn run(asker: &Asker<'_>, scope: &Scope<'_>) -> Result<Outcome, ClientToolError> {
    if !scope.allow_shell {
        return Err(ClientToolError::ShellDisabled);
    }
    let args: ShellArgs = parse(EXECUTE_COMMAND, &asker.call.arguments_json)?;
    let timeout = effective_timeout(scope.shell_timeout, args.timeout_secs);
    let run = RunCommand {
        command: args.command,
        cwd: scope.work_dir.to_owned(),
        timeout_secs: u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX),
        output_byte_limit: scope.max_result_bytes as u64,
    };
    let waited = timeout + ANSWER_GRACE;
    let reply = tokio::time::timeout(waited, asker.ask(Operation::RunCommand(run)))
        .await
        .map_err(|_| ClientToolError::NoCommandAnswer {
            secs: waited.as_secs(),
        })?;
    match reply {
        ClientReply::Command(result) => Ok(command_outcome(&result, timeout)),
        ClientReply::Error(error) => Err(ClientToolError::Command(Refused::Client(error))),
        ClientReply::Text(_) => Err(ClientToolError::Command(Refused::WrongAnswer {
            asked: "a command",
            answered: "a file operation's result",
        })),
        ClientReply::Elicitation(_) => Err(ClientToolError::Command(Refused::WrongAnswer {
            asked: "a command",
            answered: "an elicitation answer",
        })),
    }
}

/// The result the model sees, shaped like tool-executor's: the exit status
/// line, then the output. A timeout is an error result, as there.
fn command_outcome(result: &CommandResult, timeout: Duration) -> Outcome {
    let label = match result.truncated {
        false => "output",
        true => "output (the start was cut to fit the limit)",
    };
    let output = sections(&[(label, &result.output)]);
    let raw_output = serde_json::json!({
        "exit_code": result.exit_code,
        "signal": Some(&result.signal).filter(|s| !s.is_empty()),
        "truncated": result.truncated,
        "timed_out": result.timed_out,
        "via": "client",
    });
    let exit = match (result.exit_code, result.signal.as_str()) {
        (Some(code), _) => Exit::Code(code),
        (None, "") => Exit::Unknown,
        (None, signal) => Exit::Signal(signal.to_owned()),
    };
    let (text, is_error) = match result.timed_out {
        true => (timed_out_text(timeout.as_secs(), &output), true),
        false => (result_text(&exit, &output), false),
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
        assert_eq!(
            command_outcome(&result(None, "x"), timeout).text,
            "exit status unknown\noutput:\nx"
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
}
