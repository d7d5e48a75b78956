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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_signed_blocks_and_redacted_thinking_come_back_in_order() {
    let script = vec![
        Reply::tool_calls(vec![ToolCallSpec::new("list_dir", json!({"path": "."}))])
            .with_thinking("First I look. Then I decide.")
            .with_split_thinking(),
        Reply::text("Looked."),
        Reply::text("Still fine."),
    ];
    let mock = Kind::Anthropic.mock(script).await;
    let install = install(Kind::Anthropic, &mock);
    let config = install.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}thinking = \"low\"\n")).unwrap();
    let output = install.openheim(&["run", "look"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    // The mock refuses a follow-up that lacks any of the three blocks, or
    // has them out of order or changed.
    mock.assert_no_violations();
    let follow_up = mock.request(1).body;
    let blocks = follow_up["messages"][1]["content"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["thinking", "redacted_thinking", "thinking", "tool_use"],
        "{follow_up}"
    );
    assert_eq!(blocks[1]["data"], "EmwKAhgBmockRedacted1");
    // Stored as three blocks: a resumed session replays them too.
    let id = session_id(&output);
    let resumed = install.openheim(&["run", "--resume", &id, "again"]).await;
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    mock.assert_no_violations();
    let replayed = mock.request(2).body["messages"][1]["content"].clone();
    // Thinking blocks carry no cache markers, so they compare exactly.
    assert_eq!(replayed.as_array().unwrap()[..3], blocks[..3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_setting_overrides_the_configuration_and_verbose_shows_thinking() {
    let script = vec![
        Reply::text("Answer one.").with_thinking("Deep thought one."),
        Reply::text("Answer two.").with_thinking("Deep thought two."),
    ];
    let mock = Kind::Anthropic.mock(script).await;
    let install = install(Kind::Anthropic, &mock);
    // Configured off; the run asks for a budget.
    let output = install
        .openheim(&["run", "--thinking", "3000", "--verbose", "think"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        mock.request(0).body["thinking"],
        json!({"type": "enabled", "budget_tokens": 3000})
    );
    let err = stderr(&output);
    assert!(err.contains("thinking: Deep thought one."), "{err}");
    assert!(!openheim_e2e::install::stdout(&output).contains("Deep thought"));
    // Without the flags: the configuration (off), and no thinking shown.
    let id = session_id(&output);
    let plain = install.openheim(&["run", "--resume", &id, "again"]).await;
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert!(mock.request(1).body.get("thinking").is_none());
    assert!(
        !stderr(&plain).contains("Deep thought two"),
        "{}",
        stderr(&plain)
    );
    // A setting that is not one is refused before anything runs.
    let bad = install.openheim(&["run", "--thinking", "lots", "x"]).await;
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("not a thinking setting"),
        "{}",
        stderr(&bad)
    );
    mock.assert_no_violations();
}
