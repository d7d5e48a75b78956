//! Images named in a TUI prompt: a word `@path` whose path ends in `.png`,
//! `.jpg`, `.jpeg`, `.gif` or `.webp` (any case) attaches that file, read
//! relative to the session's workspace (docs/tui.md, "Images"). The word
//! stays in the text, so the model knows which file it is looking at.
//! Spaces in a path are written `\ ` (as terminals paste them) or the path
//! is quoted: `@"my shot.png"`. Other `@` words (mentions, e-mail
//! addresses, paths of other files) are plain text.

use std::path::{Path, PathBuf};

use openheim_proto::image::has_image_extension;

/// The image paths `line` refers to, in order, without duplicates.
pub(super) fn image_refs(line: &str) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    let mut chars = line.char_indices().peekable();
    let mut previous: Option<char> = None;
    while let Some((_, c)) = chars.next() {
        let at_word_start = previous.is_none_or(char::is_whitespace);
        previous = Some(c);
        if c != '@' || !at_word_start {
            continue;
        }
        let mut path = String::new();
        let quote = match chars.peek() {
            Some(&(_, q)) if q == '"' || q == '\'' => {
                chars.next();
                Some(q)
            }
            _ => None,
        };
        while let Some(&(_, next)) = chars.peek() {
            match (quote, next) {
                (Some(q), n) if n == q => {
                    chars.next();
                    break;
                }
                (None, n) if n.is_whitespace() => break,
                (None, '\\') => {
                    chars.next();
                    if let Some((_, escaped)) = chars.next() {
                        path.push(escaped);
                    }
                    continue;
                }
                _ => path.push(next),
            }
            chars.next();
        }
        previous = Some('@');
        // Sentence punctuation after the path is not part of it.
        let trimmed = path.trim_end_matches([',', '.', ';', ':', '!', '?', ')']);
        if has_image_extension(trimmed) && !refs.iter().any(|r| r == trimmed) {
            refs.push(trimmed.to_owned());
        }
    }
    refs
}

/// Where `reference` points: as is when absolute, else inside `work_dir`.
pub(super) fn resolve(reference: &str, work_dir: &Path) -> PathBuf {
    let path = Path::new(reference);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        work_dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_words_are_found_and_other_words_are_text() {
        assert_eq!(
            image_refs("what is in @shots/a.png and @B.JPG?"),
            vec!["shots/a.png", "B.JPG"]
        );
        assert_eq!(
            image_refs(r#"@my\ shot.webp vs @"other shot.gif", again @shots/a.png @shots/a.png"#),
            vec!["my shot.webp", "other shot.gif", "shots/a.png"]
        );
        assert!(image_refs("mail me@host.png or ping @ana, see @src/main.rs").is_empty());
        assert!(image_refs("@ alone and @").is_empty());
    }

    #[test]
    fn references_resolve_in_the_workspace() {
        let work = Path::new("/w");
        assert_eq!(resolve("a.png", work), Path::new("/w/a.png"));
        assert_eq!(resolve("/tmp/a.png", work), Path::new("/tmp/a.png"));
    }
}
