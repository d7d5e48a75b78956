//! OS-level confinement of shell commands. On Linux a Landlock domain lets a
//! command (and everything it starts) write only inside the workspace, the
//! temp directories, a few device files and the configured
//! `tools.writable_paths`, while it may still read and execute everywhere.
//!
//! Landlock restricts the calling *thread* and whatever it starts later, so
//! commands are spawned from a short-lived dedicated thread that restricts
//! itself first: the child inherits the domain when it is forked, the thread
//! then ends, and no other thread of the process is touched (the ruleset is
//! applied without the all-threads flag). This needs no `unsafe` `pre_exec`
//! hook. The thread also sets `no_new_privs`, so set-uid programs cannot
//! regain privileges inside a command.
//!
//! What the kernel supports is probed once when the executor starts, by
//! restricting a throwaway thread the same way. `tools.sandbox` then decides:
//! `enforce` refuses to run commands without confinement, `best_effort` runs
//! them as confined as the kernel allows, `off` leaves it to the container.
//! A ruleset that fails to apply although the probe succeeded is an error
//! in both modes: the command is not run.

use std::path::{Path, PathBuf};

pub use openheim_config::SandboxMode;
use tokio::process::{Child, Command};

use crate::error::ToolError;

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

/// The confinement shell commands run under.
#[derive(Debug, Clone)]
pub struct Confinement {
    mode: SandboxMode,
    level: Level,
    /// Extra writable directories (`tools.writable_paths`).
    writable: Vec<PathBuf>,
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
        match self.mode {
            SandboxMode::Enforce => "enforce",
            SandboxMode::BestEffort => "best_effort",
            SandboxMode::Off => "off",
        }
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

    /// Whether shell commands may run at all: not when confinement is
    /// enforced but unavailable.
    pub fn allows_shell(&self) -> bool {
        !(self.mode == SandboxMode::Enforce && matches!(self.level, Level::Unavailable { .. }))
    }

    /// One sentence for logs and `GetSandboxInfo`.
    pub fn detail(&self) -> String {
        match &self.level {
            Level::Full { abi } => {
                format!("Landlock (kernel ABI v{abi}): {}", self.scope_sentence())
            }
            Level::Partial { abi, missing } => format!(
                "Landlock (kernel ABI v{abi}): {}; this kernel lacks {}",
                self.scope_sentence(),
                missing.join(", ")
            ),
            Level::Unavailable { reason } if self.allows_shell() => format!(
                "no OS confinement ({reason}); shell commands run with path checks only (tools.sandbox = \"best_effort\")"
            ),
            Level::Unavailable { reason } => format!(
                "no OS confinement ({reason}); shell commands are refused (tools.sandbox = \"enforce\")"
            ),
            Level::Off => {
                "OS confinement is off (tools.sandbox = \"off\"): the container is the sandbox"
                    .to_owned()
            }
        }
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

    /// Starts `cmd` (a command for `workspace`) under this confinement.
    pub(crate) async fn spawn(
        &self,
        mut cmd: Command,
        workspace: &Path,
    ) -> Result<Child, ToolError> {
        match (&self.level, self.mode) {
            (Level::Unavailable { reason }, SandboxMode::Enforce) => Err(ToolError::Unconfined {
                reason: reason.clone(),
            }),
            (Level::Off | Level::Unavailable { .. }, _) => start(&mut cmd),
            (Level::Full { .. } | Level::Partial { .. }, mode) => {
                os::spawn_confined(cmd, self.writable_for(workspace), mode).await
            }
        }
    }
}

fn start(cmd: &mut Command) -> Result<Child, ToolError> {
    cmd.spawn()
        .map_err(|e| ToolError::io("start", "/bin/sh", e))
}

#[cfg(target_os = "linux")]
mod os {
    //! The Landlock ruleset and the dedicated spawning thread.

    use std::path::PathBuf;

    use landlock::{
        ABI, Access, AccessFs, BitFlags, LandlockStatus, RestrictionStatus, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, path_beneath_rules,
    };
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    use tokio::process::{Child, Command};

    use super::{Level, SandboxMode, start};
    use crate::error::ToolError;

    /// The newest ABI whose rights we ask for; older kernels get what they
    /// support (best effort), newer ones change nothing.
    const TARGET_ABI: ABI = ABI::V6;

    /// Device files (and the pseudo-terminal directory) commands may read
    /// and write.
    const DEVICES: [&str; 8] = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/pts",
    ];

    /// Restricts the calling thread: read and execute everywhere, write only
    /// below `writable` and to [`DEVICES`], signals and abstract sockets
    /// scoped to the domain.
    fn restrict_current_thread(writable: &[PathBuf]) -> Result<RestrictionStatus, RulesetError> {
        let device: BitFlags<AccessFs> =
            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev;
        Ruleset::default()
            .handle_access(AccessFs::from_all(TARGET_ABI))?
            .scope(Scope::from_all(TARGET_ABI))?
            .create()?
            .add_rules(path_beneath_rules(["/"], AccessFs::from_read(TARGET_ABI)))?
            .add_rules(path_beneath_rules(DEVICES, device))?
            // Paths that do not exist are skipped: nothing to write there.
            .add_rules(path_beneath_rules(writable, AccessFs::from_all(TARGET_ABI)))?
            .restrict_self()
    }

    fn level_of(status: &RestrictionStatus) -> Level {
        let abi = ABI::from(status.landlock);
        match status.ruleset {
            RulesetStatus::FullyEnforced => Level::Full { abi: abi as u32 },
            RulesetStatus::PartiallyEnforced => Level::Partial {
                abi: abi as u32,
                missing: missing_features(abi),
            },
            RulesetStatus::NotEnforced => Level::Unavailable {
                reason: unavailable_reason(status.landlock),
            },
        }
    }

    fn missing_features(abi: ABI) -> Vec<&'static str> {
        let checks = [
            (
                ABI::V2,
                "renames and links across directories (refused below ABI v2)",
            ),
            (ABI::V3, "truncation control (ABI v3)"),
            (ABI::V5, "device ioctl control (ABI v5)"),
            (ABI::V6, "signal and abstract-socket scoping (ABI v6)"),
        ];
        checks
            .into_iter()
            .filter(|(needed, _)| abi < *needed)
            .map(|(_, what)| what)
            .collect()
    }

    fn unavailable_reason(status: LandlockStatus) -> String {
        match status {
            LandlockStatus::NotEnabled => {
                "the kernel has Landlock but it is not enabled (lsm= boot parameter)".to_owned()
            }
            LandlockStatus::NotImplemented => {
                "the kernel has no Landlock (Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)".to_owned()
            }
            LandlockStatus::Available { .. } => "Landlock did not enforce the ruleset".to_owned(),
        }
    }

    /// What the kernel supports, found by restricting a throwaway thread.
    pub(super) fn probe() -> Level {
        let probing = std::thread::Builder::new()
            .name("openheim-landlock-probe".to_owned())
            .spawn(|| restrict_current_thread(&[]));
        match probing.map(std::thread::JoinHandle::join) {
            Ok(Ok(Ok(status))) => level_of(&status),
            Ok(Ok(Err(e))) => Level::Unavailable {
                reason: format!("Landlock failed: {e}"),
            },
            Ok(Err(_)) => Level::Unavailable {
                reason: "the Landlock probe panicked".to_owned(),
            },
            Err(e) => Level::Unavailable {
                reason: format!("cannot start the Landlock probe: {e}"),
            },
        }
    }

    /// Spawns `cmd` from a new thread restricted to `writable`.
    pub(super) async fn spawn_confined(
        mut cmd: Command,
        writable: Vec<PathBuf>,
        mode: SandboxMode,
    ) -> Result<Child, ToolError> {
        // tokio registers the child with the runtime that spawns it.
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            ToolError::Failed(format!("cannot start a command outside a runtime: {e}"))
        })?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("openheim-confined-spawn".to_owned())
            .spawn(move || {
                let _entered = runtime.enter();
                let result = restrict_current_thread(&writable)
                    .map_err(|e| ToolError::Failed(format!("cannot confine the command: {e}")))
                    .and_then(|status| match (level_of(&status), mode) {
                        (Level::Unavailable { reason }, SandboxMode::Enforce) => {
                            Err(ToolError::Unconfined { reason })
                        }
                        (Level::Unavailable { reason }, _) => {
                            tracing::warn!(%reason, "shell command runs without confinement");
                            Ok(())
                        }
                        (Level::Full { .. } | Level::Partial { .. } | Level::Off, _) => Ok(()),
                    })
                    .and_then(|()| start(&mut cmd));
                if let Err(Ok(child)) = tx.send(result) {
                    // The call was dropped meanwhile: nothing may outlive it.
                    kill_group(&child);
                }
            })
            .map_err(|e| ToolError::io("start a thread for", "/bin/sh", e))?;
        rx.await.unwrap_or_else(|_| {
            Err(ToolError::Failed(
                "the thread starting the command ended without starting it".to_owned(),
            ))
        })
    }

    fn kill_group(child: &Child) {
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn missing_features_follow_the_abi() {
            assert_eq!(missing_features(ABI::V6), Vec::<&str>::new());
            assert_eq!(missing_features(ABI::V5).len(), 1);
            assert_eq!(missing_features(ABI::V1).len(), 4);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    //! Landlock exists only on Linux.

    use std::path::PathBuf;

    use tokio::process::{Child, Command};

    use super::{Level, SandboxMode, start};
    use crate::error::ToolError;

    pub(super) fn probe() -> Level {
        Level::Unavailable {
            reason: "Landlock exists only on Linux".to_owned(),
        }
    }

    pub(super) async fn spawn_confined(
        mut cmd: Command,
        _writable: Vec<PathBuf>,
        _mode: SandboxMode,
    ) -> Result<Child, ToolError> {
        start(&mut cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_needs_no_probe_and_says_so() {
        let off = Confinement::probe(SandboxMode::Off, Vec::new());
        assert_eq!((off.level(), off.name()), (&Level::Off, "none"));
        assert!(off.allows_shell());
        assert!(off.detail().contains("the container is the sandbox"));
    }

    #[test]
    fn enforce_without_landlock_refuses_the_shell() {
        let refused = Confinement {
            mode: SandboxMode::Enforce,
            level: Level::Unavailable {
                reason: "no kernel support".to_owned(),
            },
            writable: Vec::new(),
        };
        assert!(!refused.allows_shell());
        assert!(refused.detail().contains("shell commands are refused"));
        let tolerated = Confinement {
            mode: SandboxMode::BestEffort,
            ..refused
        };
        assert!(tolerated.allows_shell());
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
        assert_eq!(
            confined.detail(),
            "Landlock (kernel ABI v4): shell commands may write only inside the workspace, /tmp, /var/tmp, /dev/shm, /cache (and to standard devices), and read everywhere; this kernel lacks device ioctl control (ABI v5)"
        );
    }

    #[test]
    fn probing_leaves_this_thread_unrestricted() {
        // The probe thread may write nowhere; this one must still write.
        let _ = Confinement::probe(SandboxMode::BestEffort, Vec::new());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("still-writable"), "x").unwrap();
    }
}
