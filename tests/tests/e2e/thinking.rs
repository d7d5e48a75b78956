//! Reasoning settings reach each provider in its own spelling, thinking
//! streams back, and Anthropic's signed thinking comes back in the tool
//! loop (the mock refuses a follow-up without it).

use openheim_e2e::install::{history, session_id, stderr};
use openheim_e2e::{Reply, ToolCallSpec};
use serde_json::{Value, json};

use super::providers::{Kind, install};

/// Runs one prompt with `thinking` configured for the provider: the body
/// of the first request the mock received.
async fn first_request(kind: Kind, model: &str, thinking: &str) -> Value {
    let mock = kind.mock(vec![Reply::text("ok")]).await;
    let install = install(kind, &mock);
    let config = install.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "default_model = \"mock-model\"",
        &format!("default_model = \"{model}\""),
    );
    std::fs::write(&config, format!("{text}thinking = {thinking}\n")).unwrap();
    let output = install.openheim(&["run", "think"]).await;
    assert!(output.status.success(), "{kind:?}: {}", stderr(&output));
    mock.assert_no_violations();
    mock.request(0).body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_is_asked_for_reasoning_in_its_own_way() {
    let chat = first_request(Kind::OpenAiChat, "o4-mini", "\"high\"").await;
    assert_eq!(chat["reasoning_effort"], "high");
    let compatible = first_request(Kind::Compatible, "qwen3", "\"low\"").await;
    assert_eq!(compatible["reasoning_effort"], "low");

    let responses = first_request(Kind::OpenAiResponses, "gpt-5", "\"medium\"").await;
    assert_eq!(
        responses["reasoning"],
        json!({"effort": "medium", "summary": "auto"})
    );
    assert_eq!(responses["include"], json!(["reasoning.encrypted_content"]));

    let budget = first_request(Kind::Anthropic, "claude-sonnet-4-5", "20000").await;
    assert_eq!(
        budget["thinking"],
        json!({"type": "enabled", "budget_tokens": 20000})
    );
    assert!(budget["max_tokens"].as_u64().unwrap() > 20000, "{budget}");
    let adaptive = first_request(Kind::Anthropic, "claude-opus-4-7", "\"high\"").await;
    assert_eq!(adaptive["thinking"], json!({"type": "adaptive"}));
    assert_eq!(adaptive["output_config"], json!({"effort": "high"}));

    let gemini_budget = first_request(Kind::Gemini, "gemini-2.5-pro", "\"medium\"").await;
    assert_eq!(
        gemini_budget["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );
    let gemini_level = first_request(Kind::Gemini, "gemini-3-pro", "\"low\"").await;
    assert_eq!(
        gemini_level["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "low", "includeThoughts": true})
    );

    // Off (the default) sends nothing a model without reasoning would refuse.
    let off = first_request(Kind::OpenAiChat, "gpt-4o", "\"off\"").await;
    assert!(off.get("reasoning_effort").is_none(), "{off}");
    let off = first_request(Kind::Anthropic, "claude-sonnet-4-5", "\"off\"").await;
    assert!(off.get("thinking").is_none(), "{off}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_signed_thinking_is_replayed_in_the_tool_loop() {
    let script = vec![
        Reply::tool_calls(vec![ToolCallSpec::new("list_dir", json!({"path": "."}))])
            .with_thinking("I should look around first."),
        Reply::text("Done looking."),
    ];
    let mock = Kind::Anthropic.mock(script).await;
    let install = install(Kind::Anthropic, &mock);
    let config = install.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}thinking = \"low\"\n")).unwrap();
    let output = install.openheim(&["run", "--verbose", "look around"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    // The mock refuses a follow-up that lacks the signed block.
    mock.assert_no_violations();
    let follow_up = mock.request(1).body;
    let replayed = &follow_up["messages"][1]["content"][0];
    assert_eq!(replayed["type"], "thinking", "{follow_up}");
    assert_eq!(replayed["thinking"], "I should look around first.");
    // The thinking is stored with its signature, so a resumed session
    // replays it too.
    let records = history(&install.history_file(&session_id(&output)));
    let stored = records
        .iter()
        .any(|r| r.to_string().contains("EqQBmockSignature"));
    assert!(stored, "{records:?}");
}
