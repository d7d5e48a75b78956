//! The embeddable library: a custom tool registered through the builder is
//! offered to the model and executed; sessions list and reload; a session's
//! skills, tools and mode are listed and changed between turns.

use futures::StreamExt;
use openheim::config::ProviderConfig;
use openheim::config::{Config, ProviderKind};
use openheim::events::{ApprovalMode, Event, ModelSelected, StopReason};
use openheim::tools::{
    ToolContext, ToolDefinition, ToolError, ToolHandler, ToolKind, ToolOutput, async_trait,
};
use openheim::{Openheim, Runtime, Session, SessionOptions};
use openheim_e2e::install::{SKILL_A, SKILL_B};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec, last_tool_result};
use serde_json::json;

struct Reverse;

#[async_trait]
impl ToolHandler for Reverse {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "reverse".into(),
            description: "Reverse a string.".into(),
            input_schema_json:
                r#"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#
                    .into(),
            kind: ToolKind::Other as i32,
            read_only: true,
            source: String::new(),
        }
    }

    async fn execute(
        &self,
        _ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let text = args["text"].as_str().unwrap_or_default();
        Ok(ToolOutput::text(text.chars().rev().collect::<String>()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_tool_is_offered_and_executed() {
    let script = vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "reverse",
            json!({"text": "openheim"}),
        )]),
        Reply::dynamic(|req| {
            Reply::text(format!(
                "reversed: {}",
                last_tool_result(req).unwrap_or_default()
            ))
        }),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let provider = ProviderConfig {
        kind: Some(openheim::config::ProviderKind::OpenaiCompatible),
        api_base: Some(mock.base_url()),
        default_model: Some("mock-model".into()),
        ..ProviderConfig::default()
    };
    let openheim = Openheim::builder()
        .provider("mock", provider)
        .default_provider("mock")
        .work_dir(install.workspace())
        .data_dir(install.home())
        .tool(Reverse)
        .build()
        .unwrap();
    let options = SessionOptions {
        approval: ApprovalMode::Auto,
        ..Default::default()
    };
    let mut session = openheim.new_session(options).await.unwrap();
    let mut turn = session.prompt("reverse openheim").await.unwrap();
    let mut text = String::new();
    let mut stop = None;
    let mut started = None;
    while let Some(event) = turn.next().await {
        match event.unwrap().event.unwrap() {
            // A session on the default model hears which model that is.
            Event::Started(s) => started = Some((s.provider, s.model)),
            Event::TextDelta(t) => text.push_str(&t),
            Event::Ended(e) => {
                stop = Some(e.stop_reason());
                break;
            }
            Event::Error(e) => panic!("{}", e.message),
            _ => {}
        }
    }
    assert_eq!(stop, Some(StopReason::EndTurn));
    assert_eq!(started, Some(("mock".to_owned(), "mock-model".to_owned())));
    assert!(
        mock.tool_names(0).contains(&"reverse".to_owned()),
        "{:?}",
        mock.tool_names(0)
    );
    assert_eq!(text, "reversed: miehnepo");
    mock.assert_no_violations();

    // The session is listed and reloads with its conversation.
    let (sessions, _) = openheim.list_sessions(10, None).await.unwrap();
    assert_eq!(sessions[0].id, session.id());
    assert_eq!(sessions[0].title, "reverse openheim");
    let (_, messages) = openheim.load_session(session.id()).await.unwrap();
    assert_eq!(messages.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_requires_a_workspace() {
    let result = Openheim::builder().data_dir("/tmp").build();
    assert!(matches!(result, Err(openheim::Error::Missing("work_dir"))));
}

/// Runs one turn to its end; returns the models it announced.
async fn run_turn(session: &mut Session, prompt: &str) -> Vec<ModelSelected> {
    let mut turn = session.prompt(prompt).await.unwrap();
    let mut selected = Vec::new();
    while let Some(event) = turn.next().await {
        match event.unwrap().event.unwrap() {
            Event::ModelSelected(model) => selected.push(model),
            Event::Ended(e) => {
                assert_eq!(e.stop_reason(), StopReason::EndTurn);
                return selected;
            }
            Event::Error(e) => panic!("{}", e.message),
            _ => {}
        }
    }
    panic!("the turn ended without `ended`");
}

fn tool_names(tools: &[ToolDefinition]) -> Vec<String> {
    tools.iter().map(|t| t.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_tools_and_mode_of_a_session_change_between_turns() {
    let script = vec![Reply::text("one"), Reply::text("two"), Reply::text("three")];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let mut config = Config {
        default_provider: Some("mock".into()),
        work_dir: Some(install.workspace()),
        data_dir: Some(install.home()),
        ..Config::default()
    };
    let provider = ProviderConfig {
        kind: Some(ProviderKind::OpenaiCompatible),
        api_base: Some(mock.base_url()),
        default_model: Some("mock-model".into()),
        context_window: Some(64_000),
        ..ProviderConfig::default()
    };
    config.providers.insert("mock".into(), provider);
    let openheim = Openheim::from_runtime(Runtime::start(&config).unwrap());

    assert_eq!(openheim.skills().await.unwrap(), ["a", "b"]);
    let models = openheim
        .models()
        .await
        .unwrap()
        .expect("an in-process llm-proxy");
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!(
        (
            models[0].provider.as_str(),
            models[0].default_model.as_str()
        ),
        ("mock", "mock-model")
    );
    assert!(openheim.mcp_servers().await.unwrap().is_empty());

    let options = SessionOptions {
        approval: ApprovalMode::Auto,
        skills: vec!["a".into()],
        ..Default::default()
    };
    let mut session = openheim.new_session(options).await.unwrap();
    let selected = run_turn(&mut session, "first").await;
    assert_eq!(selected.len(), 1, "one LLM call, one announcement");
    assert_eq!(
        (selected[0].provider.as_str(), selected[0].model.as_str()),
        ("mock", "mock-model")
    );
    assert_eq!(selected[0].context_window, 64_000);
    assert!(!selected[0].is_fallback);
    let first = mock.system_prompt(0).unwrap();
    assert!(
        first.contains(SKILL_A) && !first.contains(SKILL_B),
        "{first}"
    );

    // Skills: replaced as a whole, deduplicated, applied from the next turn.
    session
        .set_skills(vec!["b".into(), "a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(session.info().skills, ["b", "a"]);
    run_turn(&mut session, "second").await;
    let second = mock.system_prompt(1).unwrap();
    let (b, a) = (second.find(SKILL_B).unwrap(), second.find(SKILL_A).unwrap());
    assert!(b < a, "skills out of order: {second}");

    // An unknown skill is refused with what exists, and changes nothing.
    let err = session
        .set_skills(vec!["a".into(), "nope".into()])
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("\"nope\"") && text.contains("available: a, b"),
        "{text}"
    );
    let (reloaded, _) = openheim.load_session(session.id()).await.unwrap();
    assert_eq!(reloaded.info().skills, ["b", "a"]);

    // Tools: exactly what the last turn offered the model.
    let tools = tool_names(&session.tools().await.unwrap());
    assert_eq!(tools, mock.tool_names(1));
    for expected in ["read_file", "write_file", "list_dir"] {
        assert!(
            tools.iter().any(|t| t == expected),
            "{expected} in {tools:?}"
        );
    }
    assert!(session.mcp_servers().await.unwrap().is_empty());

    // A read-only session lists (and offers) no writing tool.
    session
        .set_mode(ApprovalMode::Auto, Some(true))
        .await
        .unwrap();
    assert!(session.info().read_only);
    let tools = tool_names(&session.tools().await.unwrap());
    assert!(tools.iter().any(|t| t == "read_file"), "{tools:?}");
    assert!(!tools.iter().any(|t| t == "write_file"), "{tools:?}");
    run_turn(&mut session, "third").await;
    assert_eq!(tools, mock.tool_names(2));
    mock.assert_no_violations();
}
