use std::sync::{Arc, Mutex};

use super::show::MemoryAction;
use super::skills::SkillsAction;
use super::*;

/// The name of the command a line runs, and its arguments.
fn parsed(line: &str) -> Option<Result<(&'static str, &str), ParseError>> {
    parse(line).map(|r| r.map(|(spec, args)| (spec.name, args)))
}

#[test]
fn commands_parse_with_and_without_arguments() {
    assert_eq!(parsed("/help"), Some(Ok(("/help", ""))));
    assert_eq!(parsed("  /model  "), Some(Ok(("/model", ""))));
    assert_eq!(
        parsed("/model mock/big-model"),
        Some(Ok(("/model", "mock/big-model")))
    );
    assert_eq!(parsed("/sessions 2"), Some(Ok(("/sessions", "2"))));
    assert_eq!(parsed("/exit"), Some(Ok(("/quit", ""))));
    assert_eq!(parsed("/think high"), Some(Ok(("/thinking", "high"))));
    assert_eq!(
        parsed("/compact  the failing test "),
        Some(Ok(("/compact", "the failing test")))
    );
    assert_eq!(
        parsed("/memory staging  port"),
        Some(Ok(("/memory", "staging  port")))
    );
}

#[test]
fn arguments_of_skills_and_memory_parse_or_say_the_usage() {
    assert_eq!(SkillsAction::parse(""), Ok(SkillsAction::List));
    assert_eq!(
        SkillsAction::parse("add rust"),
        Ok(SkillsAction::Add("rust".into()))
    );
    assert_eq!(
        SkillsAction::parse("remove rust"),
        Ok(SkillsAction::Remove("rust".into()))
    );
    assert_eq!(
        SkillsAction::parse("frobnicate").map_err(|e| e.to_string()),
        Err("usage: /skills [add NAME | remove NAME]".to_owned())
    );
    assert_eq!(MemoryAction::parse(""), Ok(MemoryAction::List));
    assert_eq!(
        MemoryAction::parse("staging  port"),
        Ok(MemoryAction::Search("staging  port".into()))
    );
    assert_eq!(
        MemoryAction::parse("forget 3f9a1c0b7d2e"),
        Ok(MemoryAction::Forget("3f9a1c0b7d2e".into()))
    );
    assert_eq!(
        MemoryAction::parse("forget"),
        Err(ParseError::Usage("/memory [QUERY | forget ID]"))
    );
}

#[test]
fn prompts_are_not_commands() {
    assert!(parse("explain /etc/hosts").is_none());
    assert!(parse("/ is the root").is_none());
    assert!(parse("//comment").is_none());
    assert!(parse("").is_none());
    assert_eq!(
        parsed("/bogus x").map(|r| r.map_err(|e| e.to_string())),
        Some(Err(
            "unknown command /bogus; /help lists the commands".to_owned()
        ))
    );
}

#[test]
fn completion_offers_commands_then_arguments() {
    let vocabulary = Arc::new(Mutex::new(Vocabulary {
        models: vec!["mock/small".into(), "mock/large".into(), "other/x".into()],
        skills: vec!["rust".into(), "review".into()],
        themes: vec!["green".into(), "blue".into()],
        prompts: vec!["/everything:args-prompt".into(), "/docs:summary".into()],
    }));
    let completer = CommandCompleter::new(vocabulary);
    assert_eq!(completer.candidates("/mo"), (0, vec!["/model".into()]));
    assert_eq!(
        completer.candidates("/ev"),
        (0, vec!["/everything:args-prompt".into()])
    );
    assert_eq!(
        completer.candidates("/model mock/"),
        (7, vec!["mock/small".into(), "mock/large".into()])
    );
    assert_eq!(completer.candidates("/theme b"), (7, vec!["blue".into()]));
    assert_eq!(
        completer.candidates("/thinking h"),
        (10, vec!["high".into()])
    );
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
fn every_command_is_documented_parses_and_has_its_own_names() {
    let page = include_str!("../../../../docs/tui.md");
    let mut names = Vec::new();
    for spec in COMMANDS {
        assert!(!spec.help.is_empty(), "{}", spec.name);
        assert!(
            matches!(parse(spec.name), Some(Ok((found, ""))) if found.name == spec.name),
            "{}",
            spec.name
        );
        assert!(
            page.contains(&format!("| `{}", spec.name)),
            "docs/tui.md has no row for {}",
            spec.name
        );
        names.push(spec.name);
        names.extend(spec.aliases);
    }
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "a name is used twice");
}
