//! Writing one setting back to a config file (the TUI's `/theme`): the rest
//! of the file (other keys, comments, formatting) is kept as the user wrote
//! it, and the file is replaced atomically so a crash never leaves half of it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

/// Why a setting could not be written. The file is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("invalid config key {0:?}: expected dotted names such as `ui.theme`")]
    InvalidKey(String),
    #[error(
        "{} is not valid TOML, so `{key}` was not written (fix the file first): {message}",
        path.display()
    )]
    InvalidToml {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("cannot write `{key}` to {}: `{at}` is not a table", path.display())]
    NotATable {
        path: PathBuf,
        key: String,
        at: String,
    },
    #[error("cannot write `{key}` to {}: {source}", path.display())]
    Io {
        path: PathBuf,
        key: String,
        source: std::io::Error,
    },
}

/// Sets the dotted `key` (`ui.theme`) to the string `value` in the TOML file
/// at `path`, creating the file, its directory and missing tables as needed.
/// Everything else in the file is kept byte for byte; a file that is not
/// valid TOML is refused, never overwritten.
pub fn set_file_value(path: &Path, key: &str, value: &str) -> Result<(), PersistError> {
    let segments: Vec<&str> = key.split('.').collect();
    if segments.iter().any(|s| s.trim().is_empty()) {
        return Err(PersistError::InvalidKey(key.to_owned()));
    }
    let io = |source| PersistError::Io {
        path: path.to_path_buf(),
        key: key.to_owned(),
        source,
    };
    // Write through a symbolic link (dotfiles managers) rather than replace it.
    let target = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(io(e)),
    };
    let text = match fs::read_to_string(&target) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut document: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| PersistError::InvalidToml {
                path: path.to_path_buf(),
                key: key.to_owned(),
                message: e.message().to_owned(),
            })?;
    set_path(document.as_item_mut(), &segments, value, 0).map_err(|at| {
        PersistError::NotATable {
            path: path.to_path_buf(),
            key: key.to_owned(),
            at: segments[..at].join("."),
        }
    })?;
    write_atomically(&target, document.to_string().as_bytes()).map_err(io)
}

/// Sets `path` under `item` (a table, `depth` segments below the document).
/// On failure, returns how many segments lead to the item in the way.
fn set_path(item: &mut Item, path: &[&str], value: &str, depth: usize) -> Result<(), usize> {
    let Some((first, rest)) = path.split_first() else {
        return Err(depth);
    };
    // A missing child table takes the form of its parent: a `[section]`
    // inside a document, an inline table inside an inline table.
    let empty_child = match item {
        Item::Table(_) => {
            let mut table = Table::new();
            // Shown only once it holds a value: no empty `[a]` above `[a.b]`.
            table.set_implicit(true);
            Item::Table(table)
        }
        Item::Value(Value::InlineTable(_)) => Item::Value(Value::InlineTable(InlineTable::new())),
        _ => return Err(depth),
    };
    let table = item.as_table_like_mut().ok_or(depth)?;
    if rest.is_empty() {
        let mut new = Value::from(value);
        match table.get_mut(first) {
            // Keep the comment and spacing around the old value.
            Some(Item::Value(old)) => {
                *new.decor_mut() = old.decor().clone();
                *old = new;
            }
            Some(Item::None) | None => {
                table.insert(first, Item::Value(new));
            }
            Some(Item::Table(_) | Item::ArrayOfTables(_)) => return Err(depth + 1),
        }
        return Ok(());
    }
    if table.get(first).is_none() {
        table.insert(first, empty_child);
    }
    let child = table.get_mut(first).ok_or(depth + 1)?;
    set_path(child, rest, value, depth + 1)
}

/// Replaces `path` with `contents` through a temporary file in the same
/// directory and a rename, keeping the old file's permissions (config
/// files can hold API keys).
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".to_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // Left over by a crash of an earlier process with this id, if anything.
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        if let Ok(metadata) = fs::metadata(path) {
            file.set_permissions(metadata.permissions())?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadOptions, load};

    const COMMENTED: &str = "# my openheim settings\n\
        default_provider = \"local\" # the laptop one\n\
        \n\
        [providers.local]\n\
        api_base = \"http://localhost:11434/v1\"   # ollama\n\
        default_model = \"llama3\"\n\
        \n\
        [ui]\n\
        # pick one of the themes\n\
        theme = \"blue\"   # current\n";

    #[test]
    fn only_the_value_changes_and_comments_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        fs::write(&path, COMMENTED).unwrap();
        set_file_value(&path, "ui.theme", "cyan").unwrap();
        let written = fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            COMMENTED.replace("theme = \"blue\"", "theme = \"cyan\"")
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }

    #[test]
    fn a_missing_table_is_added_after_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let original = "# top\nmax_iterations = 4\n\n[server]\nport = 9000 # mine\n";
        fs::write(&path, original).unwrap();
        set_file_value(&path, "ui.theme", "red").unwrap();
        let written = fs::read_to_string(&path).unwrap();
        assert!(written.starts_with(original), "{written}");
        assert!(written.ends_with("[ui]\ntheme = \"red\"\n"), "{written}");
    }

    #[test]
    fn a_missing_file_and_directory_are_created_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home/.openheim/config.toml");
        set_file_value(&path, "ui.theme", "magenta").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "[ui]\ntheme = \"magenta\"\n"
        );
        let options = LoadOptions {
            file: Some(path.clone()),
            file_required: true,
            ..LoadOptions::default()
        };
        assert_eq!(load(&options).unwrap().ui.theme, "magenta");
        set_file_value(&path, "ui.theme", "yellow").unwrap();
        assert_eq!(load(&options).unwrap().ui.theme, "yellow");
    }

    #[test]
    fn an_invalid_file_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let broken = "[ui\ntheme = \"blue\"\nmax_iterations = \n";
        fs::write(&path, broken).unwrap();
        let err = set_file_value(&path, "ui.theme", "cyan").unwrap_err();
        assert!(matches!(err, PersistError::InvalidToml { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("config.toml is not valid TOML") && text.contains("`ui.theme`"),
            "{text}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_value_in_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        fs::write(&path, "ui = \"green\"\n").unwrap();
        let err = set_file_value(&path, "ui.theme", "cyan").unwrap_err();
        assert!(err.to_string().contains("`ui` is not a table"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "ui = \"green\"\n");
        assert!(matches!(
            set_file_value(&path, "ui..theme", "x"),
            Err(PersistError::InvalidKey(_))
        ));
    }

    #[test]
    fn inline_tables_are_edited_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        fs::write(&path, "ui = { theme = \"blue\" }\n").unwrap();
        set_file_value(&path, "ui.theme", "white").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "ui = { theme = \"white\" }\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn permissions_and_symbolic_links_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.toml");
        fs::write(&real, "max_iterations = 3\n").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("config.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        set_file_value(&link, "ui.theme", "blue").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            "max_iterations = 3\n\n[ui]\ntheme = \"blue\"\n"
        );
        let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
