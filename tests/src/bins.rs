//! Locates the workspace binaries that end-to-end tests spawn.

use std::path::PathBuf;

/// The built binary `name` from the target directory of the running test.
///
/// A test executable lives in `target/<profile>/deps/`, the binaries in `target/<profile>/`;
/// deriving the path from `current_exe` keeps tests working for any profile or target dir.
/// Panics if the binary has not been built, because cargo does not build other packages'
/// binaries for a test of this crate.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running test executable");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "binary `{name}` not found at {}; run `cargo build --workspace --bins` first \
         (the README's test command does this)",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "cargo build --workspace --bins")]
    fn missing_binary_says_how_to_build_it() {
        bin_path("openheim-no-such-binary");
    }
}
