//! Embedding openheim with a custom tool: `cargo run -p openheim --example custom_tool`.
//!
//! Needs a provider: set `OPENAI_API_KEY` (or change the provider below to a
//! local OpenAI-compatible server such as Ollama).

// An example program prints its answer.
#![allow(clippy::print_stdout)]

use futures::StreamExt;
use openheim::config::{ProviderConfig, Secret};
use openheim::events::{ApprovalMode, Event};
use openheim::tools::{
    ToolContext, ToolDefinition, ToolError, ToolHandler, ToolKind, ToolOutput, async_trait,
    parse_args,
};
use openheim::{Openheim, SessionOptions};

/// Counts the words of a file in the workspace.
struct WordCount;

#[derive(serde::Deserialize)]
struct Args {
    path: String,
}

#[async_trait]
impl ToolHandler for WordCount {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "word_count".into(),
            description: "Count the words of a workspace file.".into(),
            input_schema_json:
                r#"{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}"#
                    .into(),
            kind: ToolKind::Read as i32,
            read_only: true,
            source: String::new(),
        }
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args("word_count", args)?;
        // Every path goes through the workspace sandbox.
        let path = ctx
            .workspace
            .resolve(&args.path, openheim::tools::Access::Read)?;
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| ToolError::Failed(format!("cannot read {}: {e}", args.path)))?;
        Ok(ToolOutput::text(format!(
            "{} words",
            text.split_whitespace().count()
        )))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = std::env::temp_dir().join("openheim-example");
    std::fs::create_dir_all(&home)?;
    std::fs::write(home.join("system.md"), "You are concise.")?;
    let provider = ProviderConfig {
        default_model: Some("gpt-4o-mini".into()),
        api_key: std::env::var("OPENAI_API_KEY").ok().map(Secret::new),
        ..ProviderConfig::default()
    };
    let openheim = Openheim::builder()
        .provider("openai", provider)
        .default_provider("openai")
        .work_dir(std::env::current_dir()?)
        .data_dir(&home)
        .tool(WordCount)
        .build()?;
    let options = SessionOptions {
        approval: ApprovalMode::Auto,
        ..SessionOptions::default()
    };
    let mut session = openheim.new_session(options).await?;
    let mut turn = session.prompt("How many words are in README.md?").await?;
    while let Some(event) = turn.next().await {
        match event?.event {
            Some(Event::TextDelta(text)) => print!("{text}"),
            Some(Event::Ended(_)) => break,
            Some(Event::Error(e)) => return Err(e.message.into()),
            _ => {}
        }
    }
    println!();
    Ok(())
}
