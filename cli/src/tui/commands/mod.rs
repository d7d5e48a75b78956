//! Slash commands. [`COMMANDS`] is the one list of them: each entry has
//! the names it answers to, the help line, what Tab completes for its
//! argument, and the function that runs it. `/help`, parsing, completion
//! and the docs check all read this list.
//!
//! Adding a command is one entry here plus its function (an `impl App`
//! method in one of this module's files, or a new file beside them).

mod complete;
mod prompts;
mod session;
mod settings;
mod show;
mod skills;

use futures::future::LocalBoxFuture;

use super::app::{App, Flow};

pub(super) use complete::{CommandCompleter, Vocabulary};

/// What running a command returns: whether the UI goes on.
pub(super) type Run<'a> = LocalBoxFuture<'a, anyhow::Result<Flow>>;

/// One slash command.
pub(super) struct Spec {
    /// `/name`, as listed and completed.
    pub(super) name: &'static str,
    /// Other names it answers to (without completion).
    pub(super) aliases: &'static [&'static str],
    /// The arguments, as `/help` shows them (`[name]`).
    pub(super) args: &'static str,
    pub(super) help: &'static str,
    /// What Tab offers after the name.
    pub(super) completes: Completes,
    /// Runs it with the text after the name (trimmed; "" when none).
    pub(super) run: for<'a> fn(&'a mut App, &'a str) -> Run<'a>,
}

/// What Tab offers for a command's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Completes {
    Nothing,
    /// `provider/model` names.
    Models,
    Themes,
    /// `add`/`remove`, then a skill name.
    Skills,
    Words(&'static [&'static str]),
}

/// Every command, in help order.
pub(super) static COMMANDS: &[Spec] = &[
    Spec {
        name: "/help",
        aliases: &["/?"],
        args: "",
        help: "this list",
        completes: Completes::Nothing,
        run: |app, _| Box::pin(async move { app.help().map(|()| Flow::Continue) }),
    },
    Spec {
        name: "/model",
        aliases: &["/models"],
        args: "[name]",
        help: "show or switch the model (Tab completes)",
        completes: Completes::Models,
        run: |app, args| Box::pin(async move { app.model(optional(args)).await.map(go_on) }),
    },
    Spec {
        name: "/skills",
        aliases: &["/skill"],
        args: "[add|remove name]",
        help: "list skills, or change this session's",
        completes: Completes::Skills,
        run: |app, args| Box::pin(async move { app.skills(args).await.map(go_on) }),
    },
    Spec {
        name: "/sessions",
        aliases: &["/resume"],
        args: "[n|id]",
        help: "list sessions and resume one",
        completes: Completes::Nothing,
        run: |app, args| Box::pin(async move { app.sessions(optional(args)).await.map(go_on) }),
    },
    Spec {
        name: "/new",
        aliases: &[],
        args: "",
        help: "start a new session",
        completes: Completes::Nothing,
        run: |app, _| Box::pin(async move { app.start_over(false).await.map(go_on) }),
    },
    Spec {
        name: "/clear",
        aliases: &[],
        args: "",
        help: "clear the screen and start a new session",
        completes: Completes::Nothing,
        run: |app, _| Box::pin(async move { app.start_over(true).await.map(go_on) }),
    },
    Spec {
        name: "/tools",
        aliases: &[],
        args: "",
        help: "the tools the model is offered",
        completes: Completes::Nothing,
        run: |app, _| Box::pin(async move { app.tools().await.map(go_on) }),
    },
    Spec {
        name: "/mcp",
        aliases: &[],
        args: "",
        help: "MCP servers and their status",
        completes: Completes::Nothing,
        run: |app, _| Box::pin(async move { app.mcp().await.map(go_on) }),
    },
    Spec {
        name: "/theme",
        aliases: &[],
        args: "[name]",
        help: "show or switch the colour theme (saved)",
        completes: Completes::Themes,
        run: |app, args| Box::pin(async move { app.theme(optional(args)).map(go_on) }),
    },
    Spec {
        name: "/thinking",
        aliases: &["/think"],
        args: "[off|low|medium|high|N|default]",
        help: "show or set how hard the model reasons",
        completes: Completes::Words(&["default", "off", "low", "medium", "high"]),
        run: |app, args| Box::pin(async move { app.thinking(optional(args)).map(go_on) }),
    },
    Spec {
        name: "/compact",
        aliases: &[],
        args: "[focus]",
        help: "summarise the conversation to free the context",
        completes: Completes::Nothing,
        run: |app, args| Box::pin(app.compact(args.to_owned())),
    },
    Spec {
        name: "/usage",
        aliases: &["/cost"],
        args: "",
        help: "tokens used and context window fill",
        completes: Completes::Nothing,
        run: |app, _| Box::pin(async move { app.usage().map(go_on) }),
    },
    Spec {
        name: "/memory",
        aliases: &["/memories"],
        args: "[query|forget id]",
        help: "saved notes: list, search or forget",
        completes: Completes::Nothing,
        run: |app, args| Box::pin(async move { app.memory(args).await.map(go_on) }),
    },
    Spec {
        name: "/quit",
        aliases: &["/exit", "/q"],
        args: "",
        help: "exit (also Ctrl-D)",
        completes: Completes::Nothing,
        run: |_, _| Box::pin(async { Ok(Flow::Quit) }),
    },
];

/// The UI goes on after a command that did its work.
fn go_on((): ()) -> Flow {
    Flow::Continue
}

/// An optional argument: `None` when nothing follows the name.
fn optional(args: &str) -> Option<String> {
    (!args.is_empty()).then(|| args.to_owned())
}

/// The command named `name` (`/model`, or an alias).
pub(super) fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name == name || spec.aliases.contains(&name))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ParseError {
    #[error("unknown command {0}; /help lists the commands")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// The command a line runs and the text after its name (trimmed), or
/// `None` when the line is not a command (a prompt for the model).
pub(super) fn parse(line: &str) -> Option<Result<(&'static Spec, &str), ParseError>> {
    let line = line.trim();
    let rest = line.strip_prefix('/')?;
    // "/ etc" or "//x" are prompts that happen to start with a slash.
    if rest.is_empty() || rest.starts_with(['/', ' ']) {
        return None;
    }
    let (name, args) = match line.split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim()),
        None => (line, ""),
    };
    Some(match find(name) {
        Some(spec) => Ok((spec, args)),
        None => Err(ParseError::Unknown(name.to_owned())),
    })
}

#[cfg(test)]
mod tests;
