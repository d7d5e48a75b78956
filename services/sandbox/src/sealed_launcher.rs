//! Which program confined commands start through.
//!
//! Re-executing this binary (`/proc/self/exe`) always works, but every
//! command then pays for loading the whole binary: the dynamic loader
//! relocates about a megabyte of pointers in it, which is most of the
//! launcher's cost (docs/performance.md, "Shell commands"). When the small
//! standalone launcher of the same build, `openheim-sandbox`, sits beside
//! this binary, commands start through it instead.
//!
//! It is not executed from its path. The first command copies it into a
//! sealed memory file (no write, grow, shrink or further seals) and every
//! command executes that copy, so nothing a command writes to the file on
//! disk changes what later commands start through — the guarantee
//! `/proc/self/exe` gives, since a running binary cannot be rewritten. The
//! copy must carry [`MARKER`] (so it speaks this launcher protocol) and be
//! executable; otherwise, or when there is none, `/proc/self/exe`.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// File name of the standalone launcher, beside the binary that uses it.
pub const BINARY: &str = "openheim-sandbox";

/// Bytes every launcher binary of this protocol holds (the standalone one
/// keeps it with `#[used]`); the text ends with [`crate::launcher::PROTOCOL`].
pub const MARKER: &str = "openheim-sandbox launcher protocol 2";

/// The fallback: this binary, which then must have called
/// [`crate::launcher::enter_if_requested`].
pub(crate) const SELF: &str = "/proc/self/exe";

/// Set when the sealed copy could not be executed: from then on, `SELF`.
pub(crate) static GIVEN_UP: AtomicBool = AtomicBool::new(false);

/// A file beside the binary larger than this is no launcher (the real one
/// is about half a megabyte); it is not read.
const MAX_BYTES: u64 = 16 << 20;

/// The standalone launcher, copied and sealed, open for the life of the
/// process.
#[derive(Debug)]
pub struct Sealed {
    /// Read-only: an executable cannot be executed while a descriptor may
    /// still write it.
    fd: OwnedFd,
}

/// Why the standalone launcher is not used.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("cannot copy {path}: {source}")]
    Copy { path: String, source: io::Error },
    #[error("{path} is not an openheim launcher of protocol {protocol}")]
    Foreign {
        path: String,
        protocol: &'static str,
    },
    #[error("this system does not execute memory files (vm.memfd_noexec)")]
    NotExecutable,
}

impl Sealed {
    /// Copies `binary` into a sealed memory file, when it holds [`MARKER`].
    pub fn copy(binary: &Path) -> Result<Self, Unusable> {
        let copy_error = |source| Unusable::Copy {
            path: binary.display().to_string(),
            source,
        };
        let size = std::fs::metadata(binary).map_err(copy_error)?.len();
        let bytes = match size {
            0..=MAX_BYTES => std::fs::read(binary).map_err(copy_error)?,
            _ => Vec::new(),
        };
        if memchr::memmem::find(&bytes, MARKER.as_bytes()).is_none() {
            return Err(Unusable::Foreign {
                path: binary.display().to_string(),
                protocol: crate::launcher::PROTOCOL,
            });
        }
        let (fd, executable) = os::sealed_copy(&bytes).map_err(copy_error)?;
        if !executable {
            return Err(Unusable::NotExecutable);
        }
        Ok(Self { fd })
    }

    /// The path that executes the copy, valid in this process and in the
    /// children it forks (until they execute something else).
    pub fn path(&self) -> OsString {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd()).into()
    }
}

/// The program every confined command starts through: the sealed copy of
/// the standalone launcher beside this binary, else `/proc/self/exe`.
/// Decided on first use (which copies about half a megabyte), then fixed
/// for the life of the process.
pub(crate) fn program() -> OsString {
    static CHOSEN: OnceLock<Option<Sealed>> = OnceLock::new();
    if GIVEN_UP.load(Ordering::Relaxed) {
        return SELF.into();
    }
    let sealed = CHOSEN.get_or_init(|| beside(&std::env::current_exe().ok()?));
    sealed.as_ref().map_or_else(|| SELF.into(), Sealed::path)
}

/// Whether starting `program` failed because it is the sealed copy and
/// this system will not execute it (a security module, a seccomp policy):
/// then the process stops using it and the caller retries with
/// `/proc/self/exe`. Errors of `/proc/self/exe` itself are the caller's.
pub(crate) fn give_up(program: &std::ffi::OsStr, error: &io::Error) -> bool {
    if program == SELF {
        return false;
    }
    if !GIVEN_UP.swap(true, Ordering::Relaxed) {
        tracing::warn!(%error, "cannot execute the sealed launcher; commands start through {SELF} instead");
    }
    true
}

/// The sealed copy of the standalone launcher in the directory of `exe`,
/// when one is there and usable (a warning says why not otherwise).
pub fn beside(exe: &Path) -> Option<Sealed> {
    let path = exe.parent()?.join(BINARY);
    if !path.is_file() {
        return None;
    }
    Sealed::copy(&path)
        .inspect_err(|e| tracing::warn!(%e, "commands start through {SELF} instead"))
        .ok()
}

#[cfg(target_os = "linux")]
mod os {
    use std::fs::File;
    use std::io::{self, Write};
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::PermissionsExt;

    use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl, open};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use nix::sys::stat::Mode;

    /// A sealed, read-only memory file holding `bytes`, and whether it may
    /// be executed (`vm.memfd_noexec` can forbid it).
    pub(super) fn sealed_copy(bytes: &[u8]) -> io::Result<(OwnedFd, bool)> {
        let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
        let mut copy = File::from(memfd_create(c"openheim-sandbox", flags)?);
        copy.write_all(bytes)?;
        let seals = SealFlag::F_SEAL_SEAL
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE;
        fcntl(&copy, FcntlArg::F_ADD_SEALS(seals))?;
        let executable = copy.metadata()?.permissions().mode() & 0o111 != 0;
        // execve refuses a file some descriptor could still write (ETXTBSY):
        // keep a read-only one and close the writable one.
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&copy));
        let read_only = open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok((read_only, executable))
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use std::io;
    use std::os::fd::OwnedFd;

    pub(super) fn sealed_copy(_bytes: &[u8]) -> io::Result<(OwnedFd, bool)> {
        Err(io::Error::other("memory files exist only on Linux"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_marker_names_the_protocol() {
        assert!(super::MARKER.ends_with(&format!(" {}", crate::launcher::PROTOCOL)));
    }
}
