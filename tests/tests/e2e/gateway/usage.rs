//! Usage and cost of a multi-call turn (docs/automation.md, "Costs"): the
//! ACP `usage_update`s, the REST session metadata and `openheim sessions`
//! add up exactly to the mock's usage times the configured prices; the
//! totals carry over into the session's next turn.

use openheim_e2e::{Reply, ToolCallSpec};
use serde_json::{Value, json};

use super::support::{Framing, Server};

/// USD per million tokens for the mock's model.
const PRICES: &str = "[pricing.\"mock/mock-model\"]\ninput = 2.0\noutput = 8.0\ncache_read = 0.5\n";

/// (prompt, completion, cached) of each model call.
const USAGE: [(u64, u64, u64); 3] = [(900, 30, 800), (1000, 12, 900), (400, 7, 0)];

fn cost((prompt, completion, cached): (u64, u64, u64)) -> u64 {
    (prompt - cached) * 2_000_000 + completion * 8_000_000 + cached * 500_000
}

fn total(calls: &[(u64, u64, u64)]) -> (u64, u64, u64, u64) {
    calls.iter().fold((0, 0, 0, 0), |t, &c| {
        (t.0 + c.0, t.1 + c.1, t.2 + c.2, t.3 + cost(c))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_cost_add_up_in_acp_rest_and_the_cli() {
    let [a, b, c] = USAGE;
    let script = vec![
        Reply::tool_calls(vec![ToolCallSpec::new("list_dir", json!({"path": "."}))])
            .with_usage(a.0, a.1, a.2),
        Reply::text("Listed.").with_usage(b.0, b.1, b.2),
        Reply::text("Again.").with_usage(c.0, c.1, c.2),
    ];
    let server = Server::start(script, PRICES).await;
    let mut client = server.connect("/acp", Framing::Bare).await;
    let session = client.open_session(&server.install.workspace()).await;
    let turn = client
        .prompt(&session, "list the files", "allow_once")
        .await;
    assert_eq!(turn.stop_reason, "end_turn", "{turn:?}");

    // One usage_update per model call, with the session's running totals.
    let updates: Vec<&Value> = turn
        .updates
        .iter()
        .filter(|u| u["sessionUpdate"] == "usage_update")
        .collect();
    assert_eq!(updates.len(), 2, "{:#?}", turn.updates);
    let (input, output, cached, pico) = total(&USAGE[..2]);
    let last = updates[1];
    assert_eq!(last["used"], b.0 + b.1);
    let meta = &last["_meta"]["openheim"]["usage"];
    assert_eq!(meta["inputTokens"], input);
    assert_eq!(meta["outputTokens"], output);
    assert_eq!(meta["cacheReadTokens"], cached);
    assert_eq!(meta["costPicoUsd"], pico);
    assert_eq!(last["cost"]["currency"], "USD");
    assert_eq!(last["cost"]["amount"].as_f64(), Some(pico as f64 / 1e12));
    assert_eq!(
        updates[0]["_meta"]["openheim"]["usage"]["costPicoUsd"],
        cost(a)
    );

    // The next turn starts from the stored totals.
    let again = client.prompt(&session, "again", "allow_once").await;
    let update = again
        .updates
        .iter()
        .rfind(|u| u["sessionUpdate"] == "usage_update")
        .unwrap();
    let (input, output, cached, pico) = total(&USAGE);
    assert_eq!(update["_meta"]["openheim"]["usage"]["costPicoUsd"], pico);
    client.close().await;

    // REST: the session's metadata has the totals of every call.
    let (status, body) = server.get(&format!("/api/sessions/{session}"), None).await;
    assert_eq!(status, 200, "{body}");
    let info = &body["session"];
    assert_eq!(info["llm_calls"], 3, "{info}");
    assert_eq!(
        info["usage"],
        json!({
            "input_tokens": input,
            "output_tokens": output,
            "cache_read_tokens": cached,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "cost_pico_usd": pico,
        })
    );
    let (_, listed) = server.get("/api/sessions", None).await;
    assert_eq!(listed["sessions"][0]["usage"]["cost_pico_usd"], pico);

    // `openheim sessions` lists the same totals.
    let output = server.install.openheim(&["sessions", "--json"]).await;
    assert!(output.status.success());
    let sessions: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sessions[0]["id"], session.as_str());
    assert_eq!(sessions[0]["usage"]["cost_pico_usd"], pico);
    let lines = server.install.openheim(&["sessions"]).await;
    let text = String::from_utf8_lossy(&lines.stdout);
    let dollars = openheim_config::pricing::format_usd(pico);
    assert!(text.contains(&dollars), "{dollars} missing: {text}");
}
