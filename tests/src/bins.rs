//! Locates the workspace binaries that end-to-end tests spawn.

use std::path::PathBuf;

/// The built binary `name` from the target directory of the running test.
///
/// A test executable lives in `target/<profile>/deps/`, the binaries in `target/<profile>/`;
/// deriving the path from `current_exe` keeps tests working for any profile or target dir.
/// Panics if the binary has not been built, because cargo does not build other packages'
/// binaries for a test of this crate.
pub fn bin_path(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "binary `{name}` not found at {}; run `cargo build --workspace --bins` first \
         (the README's test command does this)",
        path.display()
    );
    path
}

/// The built example program `name` (`target/<profile>/examples/`), such as
/// `custom_provider` of the `openheim` crate. Panics, saying how to build
/// it, if it has not been built.
pub fn example_path(name: &str) -> PathBuf {
    let bin = bin_dir();
    let path = bin
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example `{name}` not found at {}; run `cargo build --workspace --bins --examples` first \
         (the README's test command does this)",
        path.display()
    );
    path
}

/// `target/`, from the running test executable: a place for tools the
/// tests install once (never committed).
pub fn target_dir() -> PathBuf {
    let mut dir = bin_dir();
    dir.pop();
    dir
}

/// `target/<profile>/`, from the running test executable.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running test executable");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "cargo build --workspace --bins")]
    fn missing_binary_says_how_to_build_it() {
        bin_path("openheim-no-such-binary");
    }

    #[test]
    #[should_panic(expected = "cargo build --workspace --bins --examples")]
    fn missing_example_says_how_to_build_it() {
        example_path("openheim-no-such-example");
    }
}
