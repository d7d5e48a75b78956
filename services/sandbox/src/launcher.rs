//! The sandbox launcher: how a confined command gets a process namespace of
//! its own. Binaries that start commands for the model (`openheim`,
//! `openheim-tool-executor`, `openheim-mcp-broker`) call
//! [`enter_if_requested`] first thing in `main`; that enables the launcher,
//! and [`crate::Confinement`] then starts every command as
//!
//! ```text
//! LAUNCHER __openheim-sandbox 2 MODE N WRITABLE… M HIDDEN… PROGRAM ARGS…
//! ```
//!
//! where `LAUNCHER` is a sealed copy of the small standalone
//! `openheim-sandbox` binary when the build put one beside this binary, else
//! `/proc/self/exe` ([`crate::sealed_launcher`]).
//!
//! The launcher process (single-threaded: nothing else ran yet) enters new
//! user, mount and PID namespaces, mapping its own user and group to
//! themselves, and forks. The child is PID 1 of the new namespace: it makes
//! the mount tree private, mounts a fresh `/proc` (only its own processes
//! are visible there), covers each `HIDDEN` directory (other users') with an
//! empty, unreadable tmpfs ([`crate::hiding`]), drops every capability, applies the Landlock domain
//! and executes the command. The launcher waits and exits as the command
//! did. When the kernel or a container refuses new namespaces, the launcher
//! drops the capabilities that reach other processes, applies Landlock and
//! executes the command itself (nothing is hidden then).
//!
//! Killing the process group (timeouts, cancellation) kills the launcher and
//! the command; when PID 1 of the namespace ends, the kernel ends everything
//! else in it, so no background process outlives its command.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use openheim_config::SandboxMode;

/// The first argument that selects the launcher.
pub const ARG: &str = "__openheim-sandbox";
/// Version of the argument layout, so a mismatch fails loudly.
pub const PROTOCOL: &str = "2";
/// Exit code of a launcher that could not confine or start the command.
pub const EXIT_SANDBOX_FAILED: i32 = 126;
/// Exit code of a launcher whose command could not be executed.
pub const EXIT_NOT_EXECUTED: i32 = 127;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether this binary called [`enter_if_requested`] (and can therefore be
/// its own launcher).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Runs the launcher when this process was started as one (and exits), else
/// enables it for the commands this process will start. Call it first in
/// `main`, before any thread exists.
pub fn enter_if_requested() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(OsStr::new(ARG)) {
        let code = match Spec::parse(args) {
            Ok(spec) => os::run(&spec),
            Err(e) => {
                eprintln!("openheim sandbox: {e}");
                EXIT_SANDBOX_FAILED
            }
        };
        std::process::exit(code);
    }
    ENABLED.store(cfg!(target_os = "linux"), Ordering::Relaxed);
}

/// The launcher's command line for `program args`.
pub(crate) fn wrap(
    mode: SandboxMode,
    writable: &[PathBuf],
    hidden: &[PathBuf],
    program: OsString,
    args: Vec<OsString>,
) -> (OsString, Vec<OsString>) {
    let mut wrapped: Vec<OsString> = vec![
        ARG.into(),
        PROTOCOL.into(),
        mode.name().into(),
        writable.len().to_string().into(),
    ];
    wrapped.extend(writable.iter().map(|p| p.as_os_str().to_owned()));
    wrapped.push(hidden.len().to_string().into());
    wrapped.extend(hidden.iter().map(|p| p.as_os_str().to_owned()));
    wrapped.push(program);
    wrapped.extend(args);
    (crate::sealed_launcher::program(), wrapped)
}

/// What the launcher was asked to run.
#[derive(Debug, PartialEq)]
struct Spec {
    mode: SandboxMode,
    writable: Vec<PathBuf>,
    /// Directories covered by an empty tmpfs (other users').
    hidden: Vec<PathBuf>,
    program: OsString,
    args: Vec<OsString>,
}

/// Why the launcher's command line was refused.
#[derive(Debug, thiserror::Error)]
enum BadSpec {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error(
        "launcher protocol {0:?} is not {expected:?} (mixed openheim versions?)",
        expected = PROTOCOL
    )]
    Protocol(OsString),
    #[error("unknown sandbox mode {0:?}")]
    Mode(OsString),
    #[error("bad {0} count {1:?}")]
    Count(&'static str, OsString),
}

impl Spec {
    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Self, BadSpec> {
        let mut next = |what: &'static str| args.next().ok_or(BadSpec::Missing(what));
        let protocol = next("protocol version")?;
        if protocol != PROTOCOL {
            return Err(BadSpec::Protocol(protocol));
        }
        let mode = next("mode")?;
        let Some(mode_name) = mode.to_str().and_then(SandboxMode::from_name) else {
            return Err(BadSpec::Mode(mode));
        };
        let writable = paths(&mut next, "writable")?;
        let hidden = paths(&mut next, "hidden")?;
        let program = next("program")?;
        Ok(Self {
            mode: mode_name,
            writable,
            hidden,
            program,
            args: args.collect(),
        })
    }
}

/// A counted list of paths of the launcher's command line.
fn paths(
    next: &mut impl FnMut(&'static str) -> Result<OsString, BadSpec>,
    what: &'static str,
) -> Result<Vec<PathBuf>, BadSpec> {
    let count = next(what)?;
    let Some(n) = count.to_str().and_then(|c| c.parse::<usize>().ok()) else {
        return Err(BadSpec::Count(what, count));
    };
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        out.push(PathBuf::from(next(what)?));
    }
    Ok(out)
}

#[cfg(target_os = "linux")]
mod os {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    use nix::sys::signal::{Signal, raise};
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, getgid, getuid};
    use openheim_config::SandboxMode;

    use super::{EXIT_NOT_EXECUTED, EXIT_SANDBOX_FAILED, Spec};
    use crate::confinement::Level;
    use crate::landlock::{level_of, restrict_current_thread};

    /// The launcher: namespaces if possible, then confine and execute.
    pub(super) fn run(spec: &Spec) -> i32 {
        if !single_threaded() {
            eprintln!("openheim sandbox: the launcher must run before any thread starts");
            return EXIT_SANDBOX_FAILED;
        }
        match enter_namespaces() {
            Ok(()) => run_as_namespace_init(spec),
            Err(NamespaceError::Refused) => {
                // No namespaces here: keep the commands away from other
                // processes by capabilities (openheim's are non-dumpable).
                crate::caps::drop_process_reaching();
                confine_and_exec(spec)
            }
            Err(NamespaceError::Broken(reason)) => {
                eprintln!("openheim sandbox: cannot set up the user namespace: {reason}");
                EXIT_SANDBOX_FAILED
            }
        }
    }

    fn single_threaded() -> bool {
        std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
    }

    enum NamespaceError {
        /// The kernel or a policy refused new namespaces: nothing changed.
        Refused,
        /// The namespaces exist but could not be completed.
        Broken(String),
    }

    /// New user, mount and PID namespaces, with this process's user and
    /// group mapped to themselves (so files keep their owners).
    fn enter_namespaces() -> Result<(), NamespaceError> {
        let (uid, gid) = (getuid(), getgid());
        let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
        unshare(flags).map_err(|_| NamespaceError::Refused)?;
        let write = |file: &str, text: String| {
            std::fs::write(file, text).map_err(|e| NamespaceError::Broken(format!("{file}: {e}")))
        };
        // Kernels older than 3.19 have no setgroups file and need none.
        if std::path::Path::new("/proc/self/setgroups").exists() {
            write("/proc/self/setgroups", "deny".to_owned())?;
        }
        write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        write("/proc/self/gid_map", format!("{gid} {gid} 1"))
    }

    /// Forks PID 1 of the new namespace, which runs the command; waits for
    /// it and ends the same way.
    fn run_as_namespace_init(spec: &Spec) -> i32 {
        match fork_single_threaded() {
            Ok(ForkResult::Child) => {
                // The namespace dies with its launcher, whatever kills it.
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                private_proc();
                if let Err(reason) = hide(&spec.hidden)
                    && spec.mode == SandboxMode::Enforce
                {
                    eprintln!("openheim sandbox: cannot hide other users' files: {reason}");
                    std::process::exit(EXIT_SANDBOX_FAILED);
                }
                crate::caps::drop_everything();
                std::process::exit(confine_and_exec(spec));
            }
            Ok(ForkResult::Parent { child }) => loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => return code,
                    Ok(WaitStatus::Signaled(_, signal, _)) => {
                        // End the same way, so the caller sees the signal.
                        let _ = raise(signal);
                        return 128 + signal as i32;
                    }
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        eprintln!("openheim sandbox: lost the command: {e}");
                        return EXIT_SANDBOX_FAILED;
                    }
                }
            },
            Err(e) => {
                eprintln!("openheim sandbox: cannot start the command: {e}");
                EXIT_SANDBOX_FAILED
            }
        }
    }

    #[allow(unsafe_code)]
    fn fork_single_threaded() -> nix::Result<ForkResult> {
        // SAFETY: `run` checked that this process has a single thread (the
        // launcher runs before `main` starts anything), so the child is a
        // complete copy and may allocate, as the parent could.
        unsafe { nix::unistd::fork() }
    }

    /// A `/proc` of the new PID namespace over the inherited one, in a mount
    /// tree whose changes stay here. Where the kernel refuses (a container
    /// masking parts of `/proc`), the command still runs: openheim's own
    /// processes are non-dumpable and the command has no capability left to
    /// read them.
    fn private_proc() {
        let none: Option<&str> = None;
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        if mount(none, "/", none, private, none).is_err() {
            return;
        }
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let _ = mount(Some("proc"), "/proc", Some("proc"), flags, none);
    }

    /// Covers each directory with an empty tmpfs nobody may read or write,
    /// in this process's own mount namespace (the files stay as they are
    /// for everyone else).
    fn hide(dirs: &[std::path::PathBuf]) -> Result<(), String> {
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        for dir in dirs {
            mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                flags,
                Some("size=4k,mode=000"),
            )
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(())
    }

    /// Applies the Landlock domain and executes the command; returns only
    /// when that failed, with the exit code to end with.
    fn confine_and_exec(spec: &Spec) -> i32 {
        let confined = restrict_current_thread(&spec.writable)
            .map(|status| level_of(&status))
            .map_err(|e| e.to_string());
        match (confined, spec.mode) {
            (Ok(Level::Full { .. } | Level::Partial { .. } | Level::Off), _)
            | (_, SandboxMode::BestEffort | SandboxMode::Off) => {}
            (Ok(Level::Unavailable { reason }) | Err(reason), SandboxMode::Enforce) => {
                eprintln!("openheim sandbox: cannot confine the command: {reason}");
                return EXIT_SANDBOX_FAILED;
            }
        }
        let error = Command::new(&spec.program).args(&spec.args).exec();
        eprintln!(
            "openheim sandbox: cannot run {}: {error}",
            spec.program.to_string_lossy()
        );
        EXIT_NOT_EXECUTED
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use super::{EXIT_SANDBOX_FAILED, Spec};

    pub(super) fn run(_spec: &Spec) -> i32 {
        eprintln!("openheim sandbox: the launcher exists only on Linux");
        EXIT_SANDBOX_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_round_trips() {
        let writable = vec![PathBuf::from("/w s"), PathBuf::from("/tmp")];
        let hidden = vec![PathBuf::from("/w/bob")];
        let (program, args) = wrap(
            SandboxMode::Enforce,
            &writable,
            &hidden,
            "/bin/sh".into(),
            vec!["-c".into(), "echo 'a b'".into()],
        );
        assert_eq!(program, "/proc/self/exe");
        assert_eq!(args[0], ARG);
        let spec = Spec::parse(args.into_iter().skip(1)).unwrap();
        assert_eq!(
            spec,
            Spec {
                mode: SandboxMode::Enforce,
                writable,
                hidden,
                program: "/bin/sh".into(),
                args: vec!["-c".into(), "echo 'a b'".into()],
            }
        );
    }

    #[test]
    fn a_foreign_layout_is_refused() {
        let parse =
            |args: &[&str]| Spec::parse(args.iter().map(OsString::from)).map_err(|e| e.to_string());
        assert!(
            parse(&["1", "enforce", "0", "0", "/bin/sh"])
                .unwrap_err()
                .contains("protocol")
        );
        assert!(
            parse(&["2", "strict", "0", "0", "/bin/sh"])
                .unwrap_err()
                .contains("mode")
        );
        assert!(parse(&["2", "enforce", "x"]).unwrap_err().contains("count"));
        assert!(
            parse(&["2", "enforce", "0", "y"])
                .unwrap_err()
                .contains("hidden count")
        );
        assert!(
            parse(&["2", "enforce", "2", "/a"])
                .unwrap_err()
                .contains("missing")
        );
    }
}
