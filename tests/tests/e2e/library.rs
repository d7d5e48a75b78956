//! The embeddable library: a custom tool registered through the builder is
//! offered to the model and executed; sessions list and reload.

use futures::StreamExt;
use openheim::config::ProviderConfig;
use openheim::events::{ApprovalMode, Event, StopReason};
use openheim::tools::{
    ToolContext, ToolDefinition, ToolError, ToolHandler, ToolKind, ToolOutput, async_trait,
};
use openheim::{Openheim, SessionOptions};
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
    while let Some(event) = turn.next().await {
        match event.unwrap().event.unwrap() {
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
