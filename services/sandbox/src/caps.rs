//! Capabilities a command started by openheim must not have, even when
//! openheim runs as root: those that reach into other processes (reading
//! their memory and environment through `/proc`), the kernel or the mount
//! table. A process without them cannot read openheim's non-dumpable
//! `/proc` entries.

use caps::{CapSet, Capability};

/// Dropped from every set of the calling thread (bounding included, so no
/// program it executes regains them) when it holds them.
const PROCESS_REACHING: [Capability; 8] = [
    Capability::CAP_SYS_PTRACE,
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_SYS_MODULE,
    Capability::CAP_SYS_RAWIO,
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_SYS_BOOT,
    Capability::CAP_MAC_ADMIN,
];

/// Drops [`PROCESS_REACHING`] from the calling thread. Nothing to do for an
/// unprivileged process; failures are logged, not fatal: the Landlock
/// domain still applies.
pub(crate) fn drop_process_reaching() {
    drop_all_of(&PROCESS_REACHING);
}

/// Drops every capability from the calling thread, bounding set included.
/// Inside its own user namespace a command needs none.
pub(crate) fn drop_everything() {
    let all: Vec<Capability> = caps::all().into_iter().collect();
    drop_all_of(&all);
}

fn drop_all_of(list: &[Capability]) {
    // The bounding set first: dropping from it needs CAP_SETPCAP, which the
    // effective set loses last.
    for cap in list {
        if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false)
            && let Err(e) = caps::drop(None, CapSet::Bounding, *cap)
        {
            tracing::debug!(?cap, %e, "cannot drop a capability from the bounding set");
        }
    }
    let _ = caps::clear(None, CapSet::Ambient);
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        for cap in list {
            if caps::has_cap(None, set, *cap).unwrap_or(false) {
                let _ = caps::drop(None, set, *cap);
            }
        }
    }
}
