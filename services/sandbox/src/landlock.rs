//! The Landlock ruleset every confined command runs under, and the probe of
//! what the kernel enforces.

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, BitFlags, LandlockStatus, RestrictionStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, path_beneath_rules,
};

use crate::confinement::Level;

/// The newest ABI whose rights we ask for; older kernels get what they
/// support (best effort), newer ones change nothing.
const TARGET_ABI: ABI = ABI::V6;

/// Device files (and the pseudo-terminal directory) commands may read and
/// write.
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

/// Restricts the calling thread (and what it starts later): read and
/// execute everywhere, write only below `writable` and to [`DEVICES`],
/// signals and abstract sockets scoped to the domain, `no_new_privs` set.
/// Links and renames need the `refer` right on both sides, which only the
/// writable directories have: no hard link to a file outside them can be
/// made inside them.
pub(crate) fn restrict_current_thread(
    writable: &[PathBuf],
) -> Result<RestrictionStatus, RulesetError> {
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

pub(crate) fn level_of(status: &RestrictionStatus) -> Level {
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
pub(crate) fn probe() -> Level {
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
