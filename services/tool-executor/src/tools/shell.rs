//! `execute_command`: runs `/bin/sh -c COMMAND` in the workspace, in its own
//! process group, confined by the OS where available ([`crate::confinement`])
//! and with an environment built for it: what openheim may pass on
//! (`Config::child_env`), narrowed by the policy ([`crate::env`]).
//!
//! The whole group is killed with SIGKILL on timeout, on cancellation, when
//! the call's future is dropped (a drop guard), and also once the shell
//! exits: processes it left running in the background would otherwise hold
//! its output pipes open and outlive every timeout. A command that must
//! outlive the call has to detach itself (`setsid`).

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use openheim_proto::common::v1::{ToolDefinition, ToolKind};
use openheim_tool_rules::args::ShellArgs;
use openheim_tool_rules::shell::{Exit, effective_timeout, result_text, sections};
use openheim_tool_rules::truncate::CappedBuffer;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::{ToolContext, ToolHandler, ToolOutput, builtin_definition, parse_args};
use crate::error::ToolError;

pub(crate) use openheim_tool_rules::args::EXECUTE_COMMAND as NAME;

/// How long output is still collected after the shell exited or was killed,
/// for descendants that escaped the process group and keep the pipes open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The built-in shell tool.
pub(crate) struct ExecuteCommand;

#[async_trait::async_trait]
impl ToolHandler for ExecuteCommand {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            NAME,
            "Run a shell command in the workspace (sh -c). Returns exit code, stdout and stderr.",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string"},
                    "timeout_secs": {"type": "integer"}
                },
                "required": ["command"]
            }),
            ToolKind::Execute,
            false,
        )
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: ShellArgs = parse_args(NAME, args)?;
        let timeout = effective_timeout(ctx.shell_timeout, args.timeout_secs);
        let run = run(&args.command, ctx, timeout, None).await?;
        let raw_output = serde_json::json!({
            "exit_code": run.status.and_then(|s| s.code()),
            "stdout_truncated": run.stdout.truncated(),
            "stderr_truncated": run.stderr.truncated(),
            "timed_out": run.timed_out,
        });
        let (stdout, stderr) = (run.stdout.into_text(), run.stderr.into_text());
        let sections = sections(&[("stdout", &stdout), ("stderr", &stderr)]);
        if run.timed_out {
            return Err(ToolError::Timeout {
                secs: timeout.as_secs(),
                output: sections,
                raw_output,
            });
        }
        let text = result_text(&exit(run.status), &sections);
        Ok(ToolOutput {
            text,
            raw_output,
            diffs: Vec::new(),
            images: Vec::new(),
        })
    }
}

/// How a command ended.
pub(crate) struct Run {
    /// `None` when it timed out or its status could not be read.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub stdout: CappedBuffer,
    pub stderr: CappedBuffer,
}

/// Runs `command` to completion, timeout or cancellation, with `input` on
/// its stdin (else stdin is empty).
pub(crate) async fn run(
    command: &str,
    ctx: &ToolContext,
    timeout: Duration,
    input: Option<Vec<u8>>,
) -> Result<Run, ToolError> {
    let mut child = spawn_shell(command, ctx, input.is_some()).await?;
    // Declared after `child`, so it is dropped (and kills) first when this
    // future is dropped mid-way.
    let mut group = GroupKiller::new(child.id());
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A command that does not read its input closes the pipe: that is
        // not an error, so the write's result is not looked at.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(&input).await;
        });
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let mut out = CappedBuffer::new(ctx.max_result_bytes);
    let mut err = CappedBuffer::new(ctx.max_result_bytes);
    let ended = {
        // Both pipes are read all along, so a chatty command never blocks
        // on a full pipe while we wait for it.
        let reading = async { tokio::join!(pump(stdout, &mut out), pump(stderr, &mut err)) };
        tokio::pin!(reading);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut read_all = false;
        let ended = loop {
            tokio::select! {
                status = child.wait() => break Ended::Exited(status),
                _ = &mut reading, if !read_all => read_all = true,
                () = &mut deadline => break Ended::TimedOut,
                () = ctx.cancel.cancelled() => break Ended::Cancelled,
            }
        };
        group.kill();
        if !read_all {
            let _ = tokio::time::timeout(DRAIN_GRACE, &mut reading).await;
        }
        ended
    };
    let (status, timed_out) = match ended {
        Ended::Exited(Ok(status)) => (Some(status), false),
        Ended::Exited(Err(e)) => return Err(ToolError::io("wait for", "/bin/sh", e)),
        Ended::TimedOut => (None, true),
        Ended::Cancelled => return Err(ToolError::Failed("the command was cancelled".to_owned())),
    };
    Ok(Run {
        status,
        timed_out,
        stdout: out,
        stderr: err,
    })
}

enum Ended {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Starts `sh -c COMMAND` in the workspace, confined, with its own
/// environment and process group.
async fn spawn_shell(command: &str, ctx: &ToolContext, input: bool) -> Result<Child, ToolError> {
    let builtins = &ctx.builtins;
    let env = builtins.env.child_env(&builtins.child_env);
    let workspace = ctx.workspace.path().to_path_buf();
    let hidden = ctx.workspace.hidden_from_commands();
    let launch = builtins.confinement.launch_hiding(
        &workspace,
        &hidden,
        "/bin/sh",
        vec!["-c".into(), command.into()],
    )?;
    let child = launch
        .spawn(move |program, args| {
            Command::new(program)
                .args(args)
                .current_dir(&workspace)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(if input { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // Its own group, so one signal reaches everything it starts.
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
        })
        .await?;
    Ok(child)
}

/// Reads `reader` to its end into `buf`; a read error ends the stream.
async fn pump(reader: Option<impl AsyncRead + Unpin>, buf: &mut CappedBuffer) {
    let Some(mut reader) = reader else { return };
    let mut chunk = vec![0_u8; 16 * 1024];
    while let Ok(n @ 1..) = reader.read(&mut chunk).await {
        buf.push(&chunk[..n]);
    }
}

/// Kills a process group once: explicitly, or when dropped.
struct GroupKiller {
    pgid: Option<Pid>,
}

impl GroupKiller {
    fn new(pid: Option<u32>) -> Self {
        let pgid = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
        Self { pgid }
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (the group is already gone) is the normal case after a
            // clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How `status` ended, for the result's first line.
fn exit(status: Option<ExitStatus>) -> Exit {
    match status.map(|s| (s.code(), s.signal())) {
        Some((Some(code), _)) => Exit::Code(code),
        Some((None, Some(signal))) => Exit::Signal(signal.to_string()),
        Some((None, None)) | None => Exit::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_name_the_exit_code_or_the_signal() {
        let status = ExitStatus::from_raw(3 << 8);
        assert_eq!(exit(Some(status)).to_string(), "exit code: 3");
        assert_eq!(
            exit(Some(ExitStatus::from_raw(9))).to_string(),
            "killed by signal 9"
        );
        assert_eq!(exit(None), Exit::Unknown);
    }
}
