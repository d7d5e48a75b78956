//! Slash commands: parsing what the user typed, the help text, and tab
//! completion of command names and their arguments.

use std::sync::{Arc, Mutex};

use reedline::{Completer, CompletionResult, Span, Suggestion};

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    /// Show the model, or switch to the named one.
    Model(Option<String>),
    /// List skills, or add/remove one for this session.
    Skills(SkillsAction),
    /// List sessions and pick one to resume; with an argument, resume it
    /// (a number from the list or an id).
    Sessions(Option<String>),
    New,
    Clear,
    Tools,
    Mcp,
    /// Show themes, or switch (and persist) one.
    Theme(Option<String>),
    /// Show or set how hard the model reasons in this session.
    Thinking(Option<String>),
    /// Summarise the conversation so far; the text is what to focus on.
    Compact(String),
    /// Long-term memory: list, search or forget notes.
    Memory(MemoryAction),
    Usage,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryAction {
    /// This project's and the user's notes, newest first.
    List,
    /// The notes most relevant to the words.
    Search(String),
    Forget(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkillsAction {
    List,
    Add(String),
    Remove(String),
}

/// Every command with a one-line description, in help order.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("/help", "", "this list"),
    (
        "/model",
        "[name]",
        "show or switch the model (Tab completes)",
    ),
    (
        "/skills",
        "[add|remove name]",
        "list skills, or change this session's",
    ),
    ("/sessions", "[n|id]", "list sessions and resume one"),
    ("/new", "", "start a new session"),
    ("/clear", "", "clear the screen and start a new session"),
    ("/tools", "", "the tools the model is offered"),
    ("/mcp", "", "MCP servers and their status"),
    (
        "/theme",
        "[name]",
        "show or switch the colour theme (saved)",
    ),
    (
        "/thinking",
        "[off|low|medium|high|N|default]",
        "show or set how hard the model reasons",
    ),
    (
        "/compact",
        "[focus]",
        "summarise the conversation to free the context",
    ),
    ("/usage", "", "tokens used and context window fill"),
    (
        "/memory",
        "[query|forget id]",
        "saved notes: list, search or forget",
    ),
    ("/quit", "", "exit (also Ctrl-D)"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown command {0}; /help lists the commands")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// `None` when the line is not a command (a prompt for the model).
pub fn parse(line: &str) -> Option<Result<Command, ParseError>> {
    let line = line.trim();
    let rest = line.strip_prefix('/')?;
    // "/ etc" or "//x" are prompts that happen to start with a slash.
    if rest.is_empty() || rest.starts_with(['/', ' ']) {
        return None;
    }
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim()),
        None => (rest, ""),
    };
    let arg = (!args.is_empty()).then(|| args.to_owned());
    let command = match name {
        "help" | "?" => Ok(Command::Help),
        "model" | "models" => Ok(Command::Model(arg)),
        "skills" | "skill" => parse_skills(args).map(Command::Skills),
        "sessions" | "resume" => Ok(Command::Sessions(arg)),
        "new" => Ok(Command::New),
        "clear" => Ok(Command::Clear),
        "tools" => Ok(Command::Tools),
        "mcp" => Ok(Command::Mcp),
        "theme" => Ok(Command::Theme(arg)),
        "thinking" | "think" => Ok(Command::Thinking(arg)),
        "compact" => Ok(Command::Compact(args.to_owned())),
        "memory" | "memories" => parse_memory(args).map(Command::Memory),
        "usage" | "cost" => Ok(Command::Usage),
        "quit" | "exit" | "q" => Ok(Command::Quit),
        _ => Err(ParseError::Unknown(format!("/{name}"))),
    };
    Some(command)
}

fn parse_memory(args: &str) -> Result<MemoryAction, ParseError> {
    const USAGE: &str = "/memory [QUERY | forget ID]";
    let mut words = args.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (None, _, _) => Ok(MemoryAction::List),
        (Some("forget" | "rm"), Some(id), None) => Ok(MemoryAction::Forget(id.to_owned())),
        (Some("forget" | "rm"), _, _) => Err(ParseError::Usage(USAGE)),
        _ => Ok(MemoryAction::Search(args.to_owned())),
    }
}

fn parse_skills(args: &str) -> Result<SkillsAction, ParseError> {
    const USAGE: &str = "/skills [add NAME | remove NAME]";
    let mut words = args.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (None, _, _) => Ok(SkillsAction::List),
        (Some("add"), Some(name), None) => Ok(SkillsAction::Add(name.to_owned())),
        (Some("remove" | "rm"), Some(name), None) => Ok(SkillsAction::Remove(name.to_owned())),
        _ => Err(ParseError::Usage(USAGE)),
    }
}

/// What the completer offers besides command names; updated as the
/// session changes (models from the configuration, skills on disk).
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    pub models: Vec<String>,
    pub skills: Vec<String>,
    pub themes: Vec<String>,
}

/// Tab completion for slash commands and their arguments.
#[derive(Clone)]
pub struct CommandCompleter {
    vocabulary: Arc<Mutex<Vocabulary>>,
}

impl CommandCompleter {
    pub fn new(vocabulary: Arc<Mutex<Vocabulary>>) -> Self {
        Self { vocabulary }
    }

    /// Completions for the text before the cursor: `(replace_from, values)`.
    pub fn candidates(&self, before: &str) -> (usize, Vec<String>) {
        if !before.starts_with('/') || before.contains('\n') {
            return (0, Vec::new());
        }
        let Some((command, arg)) = before.split_once(' ') else {
            let names = COMMANDS
                .iter()
                .map(|(name, _, _)| *name)
                .filter(|name| name.starts_with(before))
                .map(str::to_owned)
                .collect();
            return (0, names);
        };
        let start = command.len() + 1;
        let vocabulary = match self.vocabulary.lock() {
            Ok(v) => v.clone(),
            Err(_) => return (start, Vec::new()),
        };
        let pool: Vec<String> = match command {
            "/model" => vocabulary.models,
            "/theme" => vocabulary.themes,
            "/thinking" => ["default", "off", "low", "medium", "high"]
                .map(str::to_owned)
                .to_vec(),
            "/skills" => match arg.split_once(' ') {
                None => vec!["add".into(), "remove".into()],
                Some((_, name_part)) => {
                    return (
                        before.len() - name_part.len(),
                        matching(&vocabulary.skills, name_part),
                    );
                }
            },
            _ => Vec::new(),
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
                    .find(|(name, _, _)| *name == value)
                    .map(|(_, _, d)| (*d).to_owned());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_and_without_arguments() {
        assert_eq!(parse("/help"), Some(Ok(Command::Help)));
        assert_eq!(parse("  /model  "), Some(Ok(Command::Model(None))));
        assert_eq!(
            parse("/model mock/big-model"),
            Some(Ok(Command::Model(Some("mock/big-model".into()))))
        );
        assert_eq!(
            parse("/skills add rust"),
            Some(Ok(Command::Skills(SkillsAction::Add("rust".into()))))
        );
        assert_eq!(
            parse("/skills remove rust"),
            Some(Ok(Command::Skills(SkillsAction::Remove("rust".into()))))
        );
        assert_eq!(
            parse("/skills frobnicate"),
            Some(Err(ParseError::Usage("/skills [add NAME | remove NAME]")))
        );
        assert_eq!(
            parse("/sessions 2"),
            Some(Ok(Command::Sessions(Some("2".into()))))
        );
        assert_eq!(parse("/exit"), Some(Ok(Command::Quit)));
        assert_eq!(
            parse("/theme blue"),
            Some(Ok(Command::Theme(Some("blue".into()))))
        );
        assert_eq!(
            parse("/thinking high"),
            Some(Ok(Command::Thinking(Some("high".into()))))
        );
        assert_eq!(parse("/compact"), Some(Ok(Command::Compact(String::new()))));
        assert_eq!(
            parse("/compact  the failing test "),
            Some(Ok(Command::Compact("the failing test".into())))
        );
        assert_eq!(
            parse("/memory"),
            Some(Ok(Command::Memory(MemoryAction::List)))
        );
        assert_eq!(
            parse("/memory staging  port"),
            Some(Ok(Command::Memory(MemoryAction::Search(
                "staging  port".into()
            ))))
        );
        assert_eq!(
            parse("/memory forget 3f9a1c0b7d2e"),
            Some(Ok(Command::Memory(MemoryAction::Forget(
                "3f9a1c0b7d2e".into()
            ))))
        );
        assert_eq!(
            parse("/memory forget"),
            Some(Err(ParseError::Usage("/memory [QUERY | forget ID]")))
        );
    }

    #[test]
    fn prompts_are_not_commands() {
        assert_eq!(parse("explain /etc/hosts"), None);
        assert_eq!(parse("/ is the root"), None);
        assert_eq!(parse("//comment"), None);
        assert_eq!(parse(""), None);
        assert!(matches!(parse("/bogus x"), Some(Err(ParseError::Unknown(c))) if c == "/bogus"));
    }

    #[test]
    fn completion_offers_commands_then_arguments() {
        let vocabulary = Arc::new(Mutex::new(Vocabulary {
            models: vec!["mock/small".into(), "mock/large".into(), "other/x".into()],
            skills: vec!["rust".into(), "review".into()],
            themes: vec!["green".into(), "blue".into()],
        }));
        let completer = CommandCompleter::new(vocabulary);
        assert_eq!(completer.candidates("/mo"), (0, vec!["/model".into()]));
        assert_eq!(
            completer.candidates("/model mock/"),
            (7, vec!["mock/small".into(), "mock/large".into()])
        );
        assert_eq!(completer.candidates("/theme b"), (7, vec!["blue".into()]));
        assert_eq!(
            completer.candidates("/skills "),
            (8, vec!["add".into(), "remove".into()])
        );
        assert_eq!(
            completer.candidates("/skills add r"),
            (12, vec!["rust".into(), "review".into()])
        );
        assert_eq!(completer.candidates("hello /mo"), (0, vec![]));
    }

    #[test]
    fn every_command_is_documented_and_parses() {
        for (name, _, description) in COMMANDS {
            assert!(!description.is_empty());
            assert!(matches!(parse(name), Some(Ok(_))), "{name}");
        }
    }
}
