//! OS-level confinement of the processes openheim starts for the model. On
//! Linux a Landlock domain lets a command (and everything it starts) write
//! only inside the workspace, the temp directories, a few device files and
//! the configured `tools.writable_paths`, while it may still read and
//! execute everywhere; it also sets `no_new_privs`, so set-uid programs
//! cannot regain privileges inside a command.
//!
//! Two ways to start a confined process:
//! - **Through the launcher** ([`crate::launcher`]), when the binary enabled
//!   it: the process is started as `/proc/self/exe __openheim-sandbox …`,
//!   which moves into its own user, mount and PID namespaces with a private
//!   `/proc` (other processes, openheim's included, are invisible), drops
//!   every capability, applies the Landlock domain and executes the command.
//!   Where namespaces are unavailable (a container's seccomp profile, a
//!   kernel setting) it drops the capabilities that reach other processes
//!   and applies Landlock alone.
//! - **From a restricted thread**, for embedders whose binary did not enable
//!   the launcher: Landlock restricts the calling *thread* and whatever it
//!   starts later, so the process is spawned from a short-lived dedicated
//!   thread that restricts itself first; the child inherits the domain, the
//!   thread ends, and no other thread is touched.
//!
//! What the kernel supports is probed once, by restricting a throwaway
//! thread. `tools.sandbox` then decides: `enforce` refuses to run commands
//! without Landlock, `best_effort` runs them as confined as the kernel
//! allows, `off` leaves it to the container. A ruleset that fails to apply
//! although the probe succeeded is an error in both modes.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

pub use openheim_config::SandboxMode;

use crate::SandboxError;

/// Directories confined commands may always write to, besides the workspace.
pub const TEMP_DIRS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// How far commands are confined on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// Every restriction is in force (`abi`: the Landlock ABI used).
    Full { abi: u32 },
    /// Writes are confined, but the kernel lacks the finer controls named
    /// in `missing`.
    Partial {
        abi: u32,
        missing: Vec<&'static str>,
    },
    /// The kernel cannot confine commands.
    Unavailable { reason: String },
    /// `tools.sandbox = "off"`.
    Off,
}

/// The confinement commands run under.
#[derive(Debug, Clone)]
pub struct Confinement {
    mode: SandboxMode,
    level: Level,
    /// Extra writable directories (`tools.writable_paths`).
    writable: Vec<PathBuf>,
}

/// A confined start prepared by [`Confinement::launch`]: the program and
/// arguments to spawn, and how.
#[derive(Debug)]
pub struct Launch {
    pub program: OsString,
    pub args: Vec<OsString>,
    how: How,
}

#[derive(Debug)]
enum How {
    /// Spawn as given: nothing confines (or the caller's container does).
    Direct,
    /// Spawn through the launcher, which confines itself; `program` is the
    /// sealed standalone launcher or `/proc/self/exe`.
    Launcher,
    /// Spawn from a thread restricted to these writable directories.
    RestrictedThread {
        writable: Vec<PathBuf>,
        mode: SandboxMode,
    },
}

impl Launch {
    /// Spawns through `start`, which receives the program and arguments to
    /// use (the caller sets up stdio, environment, working directory and
    /// process group). `start` runs on the thread that confines the child
    /// when that is how it is confined. It runs a second time, with
    /// `/proc/self/exe`, when the sealed standalone launcher cannot be
    /// executed here; the process then stops using it.
    pub async fn spawn<T, F>(self, mut start: F) -> Result<T, SandboxError>
    where
        T: Send + 'static,
        F: FnMut(&OsStr, &[OsString]) -> std::io::Result<T> + Send + 'static,
    {
        let Self { program, args, how } = self;
        let failed = |program: &OsStr, source| SandboxError::Start {
            program: program.to_string_lossy().into_owned(),
            source,
        };
        match how {
            How::Direct => start(&program, &args).map_err(|e| failed(&program, e)),
            How::Launcher => match start(&program, &args) {
                Err(error) if crate::sealed_launcher::give_up(&program, &error) => {
                    let program = OsString::from(crate::sealed_launcher::SELF);
                    start(&program, &args).map_err(|e| failed(&program, e))
                }
                started => started.map_err(|e| failed(&program, e)),
            },
            How::RestrictedThread { writable, mode } => {
                os::spawn_from_restricted_thread(writable, mode, move || {
                    start(&program, &args).map_err(|e| failed(&program, e))
                })
                .await
            }
        }
    }
}

impl Confinement {
    /// Probes the kernel (unless `mode` is off) and settles the level.
    /// Relative `writable` paths are left out: they would depend on the
    /// executor's current directory.
    pub fn probe(mode: SandboxMode, mut writable: Vec<PathBuf>) -> Self {
        writable.retain(|path| {
            let absolute = path.is_absolute();
            if !absolute {
                tracing::warn!(path = %path.display(), "tools.writable_paths entry ignored: not absolute");
            }
            absolute
        });
        let level = match mode {
            SandboxMode::Off => Level::Off,
            SandboxMode::Enforce | SandboxMode::BestEffort => os::probe(),
        };
        Self {
            mode,
            level,
            writable,
        }
    }

    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// The mode as written in the configuration.
    pub fn mode_name(&self) -> &'static str {
        self.mode.name()
    }

    pub fn level(&self) -> &Level {
        &self.level
    }

    /// `"landlock"` when commands are confined, `"none"` otherwise.
    pub fn name(&self) -> &'static str {
        match self.level {
            Level::Full { .. } | Level::Partial { .. } => "landlock",
            Level::Unavailable { .. } | Level::Off => "none",
        }
    }

    /// Whether commands may run at all: not when confinement is enforced
    /// but unavailable.
    pub fn allows_commands(&self) -> bool {
        !(self.mode == SandboxMode::Enforce && matches!(self.level, Level::Unavailable { .. }))
    }

    /// One sentence for logs and `GetSandboxInfo`.
    pub fn detail(&self) -> String {
        let processes = match (&self.level, crate::launcher::enabled()) {
            (Level::Off, _) => "",
            (_, true) => {
                "; each command runs in its own process namespace with a private /proc where the kernel allows it (openheim's processes are never readable)"
            }
            (_, false) => "; openheim's own processes are not readable by commands",
        };
        let landlock = match &self.level {
            Level::Full { abi } => {
                format!("Landlock (kernel ABI v{abi}): {}", self.scope_sentence())
            }
            Level::Partial { abi, missing } => format!(
                "Landlock (kernel ABI v{abi}): {}; this kernel lacks {}",
                self.scope_sentence(),
                missing.join(", ")
            ),
            Level::Unavailable { reason } if self.allows_commands() => format!(
                "no OS confinement ({reason}); shell commands run with path checks only (tools.sandbox = \"best_effort\")"
            ),
            Level::Unavailable { reason } => format!(
                "no OS confinement ({reason}); shell commands are refused (tools.sandbox = \"enforce\")"
            ),
            Level::Off => {
                "OS confinement is off (tools.sandbox = \"off\"): the container is the sandbox"
                    .to_owned()
            }
        };
        format!("{landlock}{processes}")
    }

    fn scope_sentence(&self) -> String {
        let mut places = vec!["the workspace".to_owned()];
        places.extend(TEMP_DIRS.iter().map(|d| (*d).to_owned()));
        places.extend(self.writable.iter().map(|p| p.display().to_string()));
        format!(
            "shell commands may write only inside {} (and to standard devices), and read everywhere",
            places.join(", ")
        )
    }

    /// Every directory a command in `workspace` may write to.
    fn writable_for(&self, workspace: &Path) -> Vec<PathBuf> {
        let mut dirs = vec![workspace.to_path_buf()];
        dirs.extend(TEMP_DIRS.iter().map(PathBuf::from));
        dirs.extend(self.writable.iter().cloned());
        dirs
    }

    /// Prepares starting `program` with `args` for `workspace` under this
    /// confinement.
    pub fn launch(
        &self,
        workspace: &Path,
        program: impl Into<OsString>,
        args: Vec<OsString>,
    ) -> Result<Launch, SandboxError> {
        self.launch_hiding(workspace, &[], program, args)
    }

    /// Like [`launch`](Self::launch), with `hidden` directories (other
    /// users', [`crate::hiding::beside`]) covered in the command's own
    /// mount namespace. Hiding needs the launcher and new namespaces; where
    /// the kernel refuses them the command still runs, and can read them.
    pub fn launch_hiding(
        &self,
        workspace: &Path,
        hidden: &[PathBuf],
        program: impl Into<OsString>,
        args: Vec<OsString>,
    ) -> Result<Launch, SandboxError> {
        let (program, args) = (program.into(), args);
        let direct = |program, args| Launch {
            program,
            args,
            how: How::Direct,
        };
        match (&self.level, self.mode) {
            (Level::Unavailable { reason }, SandboxMode::Enforce) => {
                Err(SandboxError::Unconfined {
                    reason: reason.clone(),
                })
            }
            (Level::Off, _) => Ok(direct(program, args)),
            (_, mode) if crate::launcher::enabled() => {
                let writable = self.writable_for(workspace);
                let (program, args) = crate::launcher::wrap(mode, &writable, hidden, program, args);
                Ok(Launch {
                    program,
                    args,
                    how: How::Launcher,
                })
            }
            (Level::Unavailable { .. }, _) => Ok(direct(program, args)),
            (Level::Full { .. } | Level::Partial { .. }, mode) => Ok(Launch {
                program,
                args,
                how: How::RestrictedThread {
                    writable: self.writable_for(workspace),
                    mode,
                },
            }),
        }
    }
}

#[cfg(target_os = "linux")]
mod os {
    //! The dedicated spawning thread of the fallback.

    use std::path::PathBuf;

    use super::{Level, SandboxMode};
    use crate::SandboxError;
    use crate::landlock::{level_of, restrict_current_thread};

    pub(super) use crate::landlock::probe;

    /// Runs `start` on a new thread restricted to `writable`, with the
    /// capabilities that reach other processes dropped.
    pub(super) async fn spawn_from_restricted_thread<T, F>(
        writable: Vec<PathBuf>,
        mode: SandboxMode,
        start: F,
    ) -> Result<T, SandboxError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, SandboxError> + Send + 'static,
    {
        // tokio registers a child with the runtime that spawns it.
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            SandboxError::Confine(format!("cannot start a command outside a runtime: {e}"))
        })?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("openheim-confined-spawn".to_owned())
            .spawn(move || {
                let _entered = runtime.enter();
                crate::caps::drop_process_reaching();
                let result = restrict_current_thread(&writable)
                    .map_err(|e| SandboxError::Confine(format!("cannot confine the command: {e}")))
                    .and_then(|status| match (level_of(&status), mode) {
                        (Level::Unavailable { reason }, SandboxMode::Enforce) => {
                            Err(SandboxError::Unconfined { reason })
                        }
                        (Level::Unavailable { reason }, _) => {
                            tracing::warn!(%reason, "command runs without confinement");
                            Ok(())
                        }
                        (Level::Full { .. } | Level::Partial { .. } | Level::Off, _) => Ok(()),
                    })
                    .and_then(|()| start());
                // A dropped call drops the child, whose kill-on-drop ends it.
                let _ = tx.send(result);
            })
            .map_err(|e| SandboxError::Confine(format!("cannot start a thread: {e}")))?;
        rx.await.unwrap_or_else(|_| {
            Err(SandboxError::Confine(
                "the thread starting the command ended without starting it".to_owned(),
            ))
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    //! Landlock exists only on Linux.

    use std::path::PathBuf;

    use super::{Level, SandboxMode};
    use crate::SandboxError;

    pub(super) fn probe() -> Level {
        Level::Unavailable {
            reason: "Landlock exists only on Linux".to_owned(),
        }
    }

    pub(super) async fn spawn_from_restricted_thread<T, F>(
        _writable: Vec<PathBuf>,
        _mode: SandboxMode,
        start: F,
    ) -> Result<T, SandboxError>
    where
        F: FnOnce() -> Result<T, SandboxError>,
    {
        start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_needs_no_probe_and_says_so() {
        let off = Confinement::probe(SandboxMode::Off, Vec::new());
        assert_eq!((off.level(), off.name()), (&Level::Off, "none"));
        assert!(off.allows_commands());
        assert!(off.detail().contains("the container is the sandbox"));
        let launch = off
            .launch(Path::new("/w"), "/bin/sh", vec!["-c".into(), "true".into()])
            .unwrap();
        assert_eq!(launch.program, "/bin/sh");
    }

    #[test]
    fn enforce_without_landlock_refuses_commands() {
        let refused = Confinement {
            mode: SandboxMode::Enforce,
            level: Level::Unavailable {
                reason: "no kernel support".to_owned(),
            },
            writable: Vec::new(),
        };
        assert!(!refused.allows_commands());
        assert!(refused.detail().contains("shell commands are refused"));
        let error = refused
            .launch(Path::new("/w"), "/bin/sh", Vec::new())
            .unwrap_err();
        assert!(matches!(error, SandboxError::Unconfined { .. }), "{error}");
        let tolerated = Confinement {
            mode: SandboxMode::BestEffort,
            ..refused
        };
        assert!(tolerated.allows_commands());
        assert!(tolerated.detail().contains("path checks only"));
    }

    #[test]
    fn the_detail_names_every_writable_place() {
        let confined = Confinement {
            mode: SandboxMode::BestEffort,
            level: Level::Partial {
                abi: 4,
                missing: vec!["device ioctl control (ABI v5)"],
            },
            writable: vec![PathBuf::from("/cache")],
        };
        assert_eq!(confined.name(), "landlock");
        assert!(confined.detail().starts_with(
            "Landlock (kernel ABI v4): shell commands may write only inside the workspace, /tmp, /var/tmp, /dev/shm, /cache (and to standard devices), and read everywhere; this kernel lacks device ioctl control (ABI v5); "
        ), "{}", confined.detail());
    }

    #[test]
    fn probing_leaves_this_thread_unrestricted() {
        // The probe thread may write nowhere; this one must still write.
        let _ = Confinement::probe(SandboxMode::BestEffort, Vec::new());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("still-writable"), "x").unwrap();
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_thread_confined_command_writes_only_where_allowed() {
        let confinement = Confinement::probe(SandboxMode::Enforce, Vec::new());
        if !matches!(confinement.level(), Level::Full { .. }) {
            return; // Kernel without Landlock: covered by the refusal tests.
        }
        let workspace = tempfile::tempdir().unwrap();
        // Outside the temp directories, which confined commands may write.
        let here = std::env::current_dir().unwrap();
        let base = match TEMP_DIRS.iter().any(|t| here.starts_with(t)) {
            true => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"),
            false => here,
        };
        std::fs::create_dir_all(&base).unwrap();
        let outside = tempfile::tempdir_in(base).unwrap();
        let script = format!(
            "echo in > inside.txt; echo out > {}/outside.txt",
            outside.path().display()
        );
        let launch = confinement
            .launch(
                workspace.path(),
                "/bin/sh",
                vec!["-c".into(), script.into()],
            )
            .unwrap();
        let cwd = workspace.path().to_path_buf();
        let mut child = launch
            .spawn(move |program, args| {
                tokio::process::Command::new(program)
                    .args(args)
                    .current_dir(&cwd)
                    .kill_on_drop(true)
                    .spawn()
            })
            .await
            .unwrap();
        let _ = child.wait().await.unwrap();
        assert!(workspace.path().join("inside.txt").exists());
        assert!(!outside.path().join("outside.txt").exists());
    }

    #[tokio::test]
    async fn a_launcher_that_cannot_be_executed_is_given_up_for_this_binary() {
        let launch = Launch {
            program: "/proc/self/fd/999999".into(),
            args: vec![crate::launcher::ARG.into()],
            how: How::Launcher,
        };
        let tried = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = tried.clone();
        let started = launch
            .spawn(move |program, _args| {
                let mut tried = record.lock().unwrap();
                tried.push(program.to_owned());
                match tried.len() {
                    1 => Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
                    _ => Ok(program.to_owned()),
                }
            })
            .await
            .unwrap();
        assert_eq!(started, "/proc/self/exe");
        assert_eq!(tried.lock().unwrap().len(), 2);
        // Later commands of this process go straight to /proc/self/exe.
        assert!(
            crate::sealed_launcher::GIVEN_UP.load(std::sync::atomic::Ordering::Relaxed),
            "the sealed launcher was not given up"
        );
    }
}
