//! `RunHook`: a configured hook command run like a shell command — in the
//! workspace, through the same confinement and environment policy
//! ([`crate::tools::shell`]) — with its JSON input on stdin. What its
//! answer means is the agent loop's business; this only runs it.

use std::os::unix::process::ExitStatusExt;

use openheim_proto::tool_executor::v1::RunHookResponse;

use crate::tools::ToolContext;
use crate::tools::shell;

/// Runs `command` under `ctx` (its `shell_timeout` is the hook's timeout)
/// and reports how it ended; a command that cannot be started is reported
/// in `error`, not as a failure of the call.
pub(crate) async fn run(ctx: &ToolContext, command: &str, input: String) -> RunHookResponse {
    match shell::run(command, ctx, ctx.shell_timeout, Some(input.into_bytes())).await {
        Ok(run) => RunHookResponse {
            exit_code: run
                .status
                .filter(|s| s.signal().is_none())
                .and_then(|s| s.code()),
            stdout: run.stdout.into_text(),
            stderr: run.stderr.into_text(),
            timed_out: run.timed_out,
            error: String::new(),
        },
        Err(error) => RunHookResponse {
            error: error.to_string(),
            ..RunHookResponse::default()
        },
    }
}
