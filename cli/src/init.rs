//! `openheim init`: writes a commented `config.toml` and a `system.md` into
//! the openheim home, never replacing an existing file without `force`.

use std::path::{Path, PathBuf};

pub const CONFIG_TEMPLATE: &str = include_str!("../templates/config.toml");
pub const SYSTEM_TEMPLATE: &str = include_str!("../templates/system.md");

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    Written(PathBuf),
    Replaced(PathBuf),
    Kept(PathBuf),
}

/// Creates `home` (and `home/skills`) and the two files in it.
pub fn init(home: &Path, force: bool) -> std::io::Result<Vec<FileOutcome>> {
    std::fs::create_dir_all(home.join("skills"))?;
    let mut outcomes = Vec::new();
    for (name, text) in [
        ("config.toml", CONFIG_TEMPLATE),
        ("system.md", SYSTEM_TEMPLATE),
    ] {
        let path = home.join(name);
        let outcome = match (path.exists(), force) {
            (true, false) => FileOutcome::Kept(path),
            (true, true) => {
                std::fs::write(&path, text)?;
                FileOutcome::Replaced(path)
            }
            (false, _) => {
                std::fs::write(&path, text)?;
                FileOutcome::Written(path)
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("oh");
        let first = init(&home, false).unwrap();
        assert!(matches!(first[0], FileOutcome::Written(_)));
        std::fs::write(home.join("system.md"), "mine").unwrap();
        let second = init(&home, false).unwrap();
        assert!(second.iter().all(|o| matches!(o, FileOutcome::Kept(_))));
        assert_eq!(
            std::fs::read_to_string(home.join("system.md")).unwrap(),
            "mine"
        );
        let third = init(&home, true).unwrap();
        assert!(matches!(third[1], FileOutcome::Replaced(_)));
        assert_eq!(
            std::fs::read_to_string(home.join("system.md")).unwrap(),
            SYSTEM_TEMPLATE
        );
        assert!(home.join("skills").is_dir());
    }

    #[test]
    fn the_template_is_a_valid_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, CONFIG_TEMPLATE).unwrap();
        let options = openheim_config::LoadOptions {
            file: Some(path),
            file_required: true,
            ..Default::default()
        };
        let config = openheim_config::load(&options).unwrap();
        assert_eq!(config.default_provider.as_deref(), Some("openai"));
    }
}
