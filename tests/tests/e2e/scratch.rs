//! Scratch directories the tests need outside the places confined commands
//! may write.

/// A scratch directory outside the temp directories confined commands may
/// write to (/tmp, /var/tmp, /dev/shm), for "outside the workspace" files a
/// test must see stay untouched: the target dir, unless the checkout lives
/// under a temp dir (CI clones into /tmp), then `$HOME/.cache/openheim-tests`.
pub fn outside_temp() -> tempfile::TempDir {
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let under_temp = openheim_sandbox::confinement::TEMP_DIRS
        .iter()
        .any(|t| target.starts_with(t));
    let base = if under_temp {
        let home = std::env::var_os("HOME").expect("HOME is set");
        let base = std::path::Path::new(&home).join(".cache/openheim-tests");
        std::fs::create_dir_all(&base).unwrap();
        base
    } else {
        target.to_path_buf()
    };
    tempfile::tempdir_in(base).unwrap()
}
