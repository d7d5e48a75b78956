//! Spawns openheim service binaries for end-to-end tests and waits until they listen.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::bins::bin_path;

/// How long a service may take to print its `listening on` line. Generous because a cold
/// debug binary on a loaded 2-core CI machine can be slow to start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long to wait for the stderr reader to catch up before reporting a failed start.
const STDERR_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a service may take to exit after SIGTERM.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(20);

/// Output lines kept per stream for diagnostics.
const TAIL_LINES: usize = 200;

/// The line prefix every service prints once its listener is bound.
const READY_PREFIX: &str = "listening on ";

/// The last lines of an output stream, shared with the task that reads it.
type Tail = Arc<Mutex<VecDeque<String>>>;

/// A running service binary; killed when dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    addr: String,
    child: Child,
    stdout_tail: Tail,
    stderr_tail: Tail,
}

impl ServiceProcess {
    /// Starts binary `bin_name` with `args` plus `--listen 127.0.0.1:0` and extra `env`, and
    /// waits until it reports its address. Panics with the child's stderr if it does not.
    pub async fn spawn(bin_name: &str, args: &[&str], env: &[(&str, &str)]) -> ServiceProcess {
        Self::spawn_program(&bin_path(bin_name), args, env).await
    }

    /// Like [`ServiceProcess::spawn`] for a program given by path, e.g. one outside the
    /// workspace target directory.
    pub async fn spawn_program(
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServiceProcess {
        Self::spawn_program_on(program, args, env, "127.0.0.1:0").await
    }

    /// Like [`ServiceProcess::spawn_program`] on a given address, e.g. to
    /// restart a server where its clients will reconnect.
    pub async fn spawn_program_on(
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        listen: &str,
    ) -> ServiceProcess {
        let bin_name = program.file_name().map_or_else(
            || program.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let bin_name = bin_name.as_str();
        let mut child = Command::new(program)
            .args(args)
            .args(["--listen", listen])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn `{bin_name}`: {e}"));
        let stderr_tail = Tail::default();
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_task = tokio::spawn(collect_lines(BufReader::new(stderr), stderr_tail.clone()));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stdout_tail = Tail::default();

        let ready = tokio::time::timeout(READY_TIMEOUT, read_ready_line(&mut stdout, &stdout_tail));
        let failure = match ready.await {
            Ok(Ok(addr)) => {
                // Keep draining stdout so a chatty service never blocks on a full pipe. The
                // reader itself moves on: lines it already buffered must not be lost.
                tokio::spawn(collect_lines(stdout, stdout_tail.clone()));
                return ServiceProcess {
                    name: bin_name.to_owned(),
                    addr,
                    child,
                    stdout_tail,
                    stderr_tail,
                };
            }
            Ok(Err(reason)) => reason,
            Err(_) => format!("no `{READY_PREFIX}<ADDR>` line within {READY_TIMEOUT:?}"),
        };
        let _ = child.start_kill();
        let status = child.wait().await.ok();
        fail_start(bin_name, &failure, status, stderr_task, &stderr_tail).await
    }

    /// The bound address as `host:port`.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// The base URL, `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OS process id, while the child runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the child and waits for it, e.g. to test how peers react to a crashed service.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Asks the child to stop (SIGTERM) and waits for it to exit; kills it
    /// when it has not exited after [`TERMINATE_TIMEOUT`].
    pub async fn terminate(&mut self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            use nix::sys::signal::{Signal, kill};
            let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
            if tokio::time::timeout(TERMINATE_TIMEOUT, self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        self.kill().await;
    }

    /// The last (up to 200) lines the child wrote to stderr, for assertion messages.
    pub fn stderr_tail(&self) -> String {
        join_tail(&self.stderr_tail)
    }

    /// The last (up to 200) lines the child wrote to stdout after its ready line.
    pub fn stdout_tail(&self) -> String {
        join_tail(&self.stdout_tail)
    }

    /// The program's file name, as used in failure messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Reads stdout until the ready line and returns the address it names.
async fn read_ready_line(
    stdout: &mut BufReader<ChildStdout>,
    tail: &Tail,
) -> Result<String, String> {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line).await {
            Ok(0) => return Err("stdout closed before the ready line".to_owned()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading stdout failed: {e}")),
        }
        let line = line.trim_end();
        push_line(tail, line.to_owned());
        if let Some(addr) = line.strip_prefix(READY_PREFIX) {
            let addr = addr.trim();
            return match addr.parse::<std::net::SocketAddr>() {
                Ok(_) => Ok(addr.to_owned()),
                Err(e) => Err(format!(
                    "ready line names no socket address ({e}): {line:?}"
                )),
            };
        }
    }
}

/// Panics with everything known about a service that failed to start.
async fn fail_start(
    bin_name: &str,
    failure: &str,
    status: Option<std::process::ExitStatus>,
    stderr_task: JoinHandle<()>,
    stderr_tail: &Tail,
) -> ! {
    // The child is gone, so its stderr reaches EOF soon; wait briefly to report all of it.
    let _ = tokio::time::timeout(STDERR_DRAIN_TIMEOUT, stderr_task).await;
    let status = status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
    panic!(
        "`{bin_name}` did not start: {failure} (exit status: {status})\n--- stderr ---\n{}",
        join_tail(stderr_tail)
    )
}

/// Reads `stream` line by line into `tail` until EOF.
async fn collect_lines(stream: impl AsyncBufRead + Unpin, tail: Tail) {
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        push_line(&tail, line);
    }
}

fn push_line(tail: &Tail, line: String) {
    let mut lines = tail.lock().unwrap_or_else(PoisonError::into_inner);
    if lines.len() == TAIL_LINES {
        lines.pop_front();
    }
    lines.push_back(line);
}

fn join_tail(tail: &Tail) -> String {
    let lines = tail.lock().unwrap_or_else(PoisonError::into_inner);
    lines
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let tail = Tail::default();
        for i in 0..(TAIL_LINES + 5) {
            push_line(&tail, i.to_string());
        }
        let joined = join_tail(&tail);
        assert!(joined.starts_with("5\n"));
        assert!(joined.ends_with(&format!("\n{}", TAIL_LINES + 4)));
    }

    /// A stand-in service: `sh -c SCRIPT` receives the appended `--listen` flag as `$0 $1`.
    async fn spawn_sh(script: &str) -> ServiceProcess {
        ServiceProcess::spawn_program(Path::new("/bin/sh"), &["-c", script], &[("GREETING", "hi")])
            .await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_the_ready_line_and_keeps_output() {
        let mut service = spawn_sh(
            "echo booting; echo \"$GREETING from $0 $1\" >&2; \
             echo 'listening on 127.0.0.1:4242'; echo after; exec sleep 30",
        )
        .await;
        assert_eq!(service.addr(), "127.0.0.1:4242");
        assert_eq!(service.url(), "http://127.0.0.1:4242");
        assert_eq!(service.name(), "sh");
        assert!(service.id().is_some());
        // The child writes on after its ready line and the readers are separate tasks, so
        // poll (bounded) for the output instead of racing it.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while !service.stdout_tail().ends_with("after") || service.stderr_tail().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        service.kill().await;
        assert!(service.id().is_none(), "kill waits for the child");
        assert_eq!(service.stderr_tail(), "hi from --listen 127.0.0.1:0");
        assert_eq!(
            service.stdout_tail(),
            "booting\nlistening on 127.0.0.1:4242\nafter"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn dropping_kills_the_child() {
        let service = spawn_sh("echo 'listening on 127.0.0.1:1'; exec sleep 30").await;
        let pid = service.id().unwrap();
        drop(service);
        // SIGKILL is sent on drop; the child is dead once it is gone or a zombie awaiting reap.
        let stat = format!("/proc/{pid}/stat");
        let dead = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match std::fs::read_to_string(&stat) {
                    Err(_) => return,
                    Ok(s)
                        if s.rsplit(") ")
                            .next()
                            .is_some_and(|rest| rest.starts_with('Z')) =>
                    {
                        return;
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        });
        assert!(dead.await.is_ok(), "child {pid} survived the drop");
    }

    #[tokio::test(flavor = "current_thread")]
    #[should_panic(expected = "--- stderr ---\nconfig is broken")]
    async fn failed_start_reports_stderr() {
        spawn_sh("echo 'config is broken' >&2; exit 3").await;
    }

    #[tokio::test]
    async fn collect_lines_reads_until_eof() {
        let tail = Tail::default();
        collect_lines(&b"one\ntwo\n"[..], tail.clone()).await;
        assert_eq!(join_tail(&tail), "one\ntwo");
    }
}
