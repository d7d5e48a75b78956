//! Tab completion of command names and their arguments.

use std::sync::{Arc, Mutex};

use reedline::{Completer, CompletionResult, Span, Suggestion};

use super::{COMMANDS, Completes, find};

/// What the completer offers besides command names; updated as the
/// session changes (models from the configuration, skills on disk).
#[derive(Debug, Default, Clone)]
pub(in crate::tui) struct Vocabulary {
    pub(in crate::tui) models: Vec<String>,
    pub(in crate::tui) skills: Vec<String>,
    pub(in crate::tui) themes: Vec<String>,
    /// The session's MCP prompt commands (`/{server}:{prompt}`), once
    /// listed (`/mcp`, or after a turn).
    pub(in crate::tui) prompts: Vec<String>,
}

/// Tab completion for slash commands and their arguments.
#[derive(Clone)]
pub(in crate::tui) struct CommandCompleter {
    vocabulary: Arc<Mutex<Vocabulary>>,
}

impl CommandCompleter {
    pub(in crate::tui) fn new(vocabulary: Arc<Mutex<Vocabulary>>) -> Self {
        Self { vocabulary }
    }

    /// Completions for the text before the cursor: `(replace_from, values)`.
    pub(in crate::tui) fn candidates(&self, before: &str) -> (usize, Vec<String>) {
        if !before.starts_with('/') || before.contains('\n') {
            return (0, Vec::new());
        }
        let Some((command, arg)) = before.split_once(' ') else {
            let prompts = match self.vocabulary.lock() {
                Ok(v) => v.prompts.clone(),
                Err(_) => Vec::new(),
            };
            let names = COMMANDS
                .iter()
                .map(|spec| spec.name.to_owned())
                .chain(prompts)
                .filter(|name| name.starts_with(before))
                .collect();
            return (0, names);
        };
        let start = command.len() + 1;
        let completes = find(command).map_or(Completes::Nothing, |spec| spec.completes);
        let vocabulary = match self.vocabulary.lock() {
            Ok(v) => v.clone(),
            Err(_) => return (start, Vec::new()),
        };
        let pool: Vec<String> = match completes {
            Completes::Nothing => Vec::new(),
            Completes::Models => vocabulary.models,
            Completes::Themes => vocabulary.themes,
            Completes::Words(words) => words.iter().map(|w| (*w).to_owned()).collect(),
            Completes::Skills => match arg.split_once(' ') {
                None => vec!["add".into(), "remove".into()],
                Some((_, name_part)) => {
                    return (
                        before.len() - name_part.len(),
                        matching(&vocabulary.skills, name_part),
                    );
                }
            },
        };
        (start, matching(&pool, arg))
    }
}

fn matching(pool: &[String], prefix: &str) -> Vec<String> {
    pool.iter()
        .filter(|v| v.starts_with(prefix))
        .cloned()
        .collect()
}

impl Completer for CommandCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let before = line.get(..pos).unwrap_or(line);
        let (start, values) = self.candidates(before);
        let suggestions: Vec<Suggestion> = values
            .into_iter()
            .map(|value| {
                let description = COMMANDS
                    .iter()
                    .find(|spec| spec.name == value)
                    .map(|spec| spec.help.to_owned());
                Suggestion {
                    value,
                    description,
                    span: Span::new(start, pos),
                    append_whitespace: true,
                    ..Suggestion::default()
                }
            })
            .collect();
        CompletionResult::fresh(suggestions)
    }
}
