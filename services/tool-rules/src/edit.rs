//! `edit_file`'s rule: `old_string` must occur exactly once unless
//! `replace_all` is set, so an edit never lands somewhere the model did not
//! mean; and the shape of its result (a summary line, then a unified diff).

use similar::TextDiff;

use crate::args::EditArgs;

/// Lines of context around each change in an edit's diff.
pub const DIFF_CONTEXT: usize = 3;

/// Why an edit is refused. The texts are written for the model: each says
/// what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditRefused {
    #[error("`old_string` is empty; use write_file to create or replace a whole file")]
    EmptyOldString,

    #[error("`old_string` and `new_string` are the same; nothing would change")]
    NothingChanges,

    #[error(
        "`old_string` was not found in {path:?}; it must match exactly, including whitespace and indentation (read_file shows the current text)"
    )]
    NotFound { path: String },

    #[error(
        "`old_string` occurs {count} times in {path:?}; include more surrounding lines to make it unique, or set replace_all to change every occurrence"
    )]
    Ambiguous { path: String, count: usize },
}

impl EditArgs {
    /// The edited `text` and the number of replacements, or why the edit
    /// is refused.
    pub fn apply(&self, text: &str) -> Result<(String, usize), EditRefused> {
        if self.old_string.is_empty() {
            return Err(EditRefused::EmptyOldString);
        }
        if self.old_string == self.new_string {
            return Err(EditRefused::NothingChanges);
        }
        let count = text.matches(self.old_string.as_str()).count();
        match (count, self.replace_all) {
            (0, _) => Err(EditRefused::NotFound {
                path: self.path.clone(),
            }),
            (1, _) | (_, true) => Ok((
                text.replace(self.old_string.as_str(), &self.new_string),
                count,
            )),
            (count, false) => Err(EditRefused::Ambiguous {
                path: self.path.clone(),
                count,
            }),
        }
    }
}

/// A unified diff of `path` (as shown to the model) from `old` to `new`.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(DIFF_CONTEXT)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

/// The result text of an edit of `shown` that made `count` replacements:
/// a summary line, then the diff.
pub fn result_text(shown: &str, count: usize, old: &str, new: &str) -> String {
    let plural = if count == 1 { "" } else { "s" };
    let diff = unified_diff(shown, old, new);
    format!("Edited {shown}: {count} replacement{plural}\n{diff}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(old: &str, new: &str, replace_all: bool) -> EditArgs {
        EditArgs {
            path: "f.txt".to_owned(),
            old_string: old.to_owned(),
            new_string: new.to_owned(),
            replace_all,
        }
    }

    #[test]
    fn a_unique_string_is_replaced() {
        let (text, count) = args("b", "B", false).apply("a\nb\nc\n").unwrap();
        assert_eq!((text.as_str(), count), ("a\nB\nc\n", 1));
    }

    #[test]
    fn ambiguity_and_absence_are_refused_with_advice() {
        let several = args("x", "y", false)
            .apply("x x x")
            .unwrap_err()
            .to_string();
        assert!(
            several.starts_with("`old_string` occurs 3 times in \"f.txt\""),
            "{several}"
        );
        assert!(several.contains("replace_all"), "{several}");
        let (all, count) = args("x", "y", true).apply("x x x").unwrap();
        assert_eq!((all.as_str(), count), ("y y y", 3));
        let missing = args("  x", "y", false).apply("x").unwrap_err();
        assert!(missing.to_string().contains("was not found"), "{missing}");
        assert_eq!(
            args("", "y", false).apply("x"),
            Err(EditRefused::EmptyOldString)
        );
        assert!(
            args("", "y", false)
                .apply("x")
                .unwrap_err()
                .to_string()
                .contains("write_file")
        );
        assert_eq!(
            args("x", "x", false).apply("x"),
            Err(EditRefused::NothingChanges)
        );
    }

    #[test]
    fn the_diff_is_unified_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n";
        assert_eq!(
            unified_diff("src/a.txt", old, new),
            "--- a/src/a.txt\n+++ b/src/a.txt\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn the_result_names_the_count_then_the_diff() {
        let text = result_text("a.txt", 2, "x\nx\n", "y\ny\n");
        assert!(
            text.starts_with("Edited a.txt: 2 replacements\n--- a/a.txt"),
            "{text}"
        );
        let one = result_text("a.txt", 1, "x\n", "y\n");
        assert!(one.starts_with("Edited a.txt: 1 replacement\n"), "{one}");
    }
}
