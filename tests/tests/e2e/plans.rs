//! The `update_plan` tool (docs/plans.md): the model's task plan reaches
//! `run --json` as `plan.updated`, `run --verbose` as a checklist, and ACP
//! clients as `plan` updates, live, on `session/load` and on
//! `session/resume` (the official TypeScript SDK drives the ACP part).

use std::path::PathBuf;

use openheim_e2e::install::{Install, stderr, stdout};
use openheim_e2e::json_schema::assert_lines_valid;
use openheim_e2e::{MockLlm, Reply, ToolCallSpec, last_tool_result};
use serde_json::{Value, json};

use super::acp::lifecycle::{observed, run_sdk_script};

fn plan_call(id: &str) -> Reply {
    Reply::tool_calls(vec![
        ToolCallSpec::new(
            "update_plan",
            json!({"entries": [
                {"content": "Read the code", "status": "completed", "priority": "high"},
                {"content": "Write the fix", "status": "in_progress"},
                {"content": "Run the tests", "status": "pending", "priority": "low"}
            ]}),
        )
        .with_id(id),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_json_and_verbose_show_the_plan_and_the_model_hears_back() {
    let mock = MockLlm::start(vec![
        plan_call("p1"),
        Reply::text("Planned."),
        Reply::tool_calls(vec![
            ToolCallSpec::new("update_plan", json!({"entries": [{"content": ""}]})).with_id("p2"),
        ]),
        Reply::text("Oops."),
    ])
    .await;
    let install = Install::new(&mock, "");

    let output = install.openheim(&["run", "fix the bug", "--json"]).await;
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/run-events.schema.json");
    assert_lines_valid(&schema, &out);
    let plans: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "plan.updated")
        .collect();
    assert_eq!(plans.len(), 1, "{out}");
    assert_eq!(
        plans[0]["entries"],
        json!([
            {"content": "Read the code", "status": "completed", "priority": "high"},
            {"content": "Write the fix", "status": "in_progress", "priority": "medium"},
            {"content": "Run the tests", "status": "pending", "priority": "low"}
        ])
    );
    let told = last_tool_result(&mock.request(1).body).unwrap();
    assert!(told.contains("Plan updated (3 steps, 1 done)"), "{told}");

    // A malformed plan is refused to the model, and nothing is shown.
    let output = install.openheim(&["run", "again", "--verbose"]).await;
    let err = stderr(&output);
    assert!(!err.lines().any(|l| l.starts_with("plan:")), "{err}");
    let told = last_tool_result(&mock.request(3).body).unwrap();
    assert!(
        told.contains("entry 1 needs a non-empty `content`"),
        "{told}"
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_verbose_prints_the_plan_as_a_checklist() {
    let mock = MockLlm::start(vec![plan_call("p1"), Reply::text("Planned.")]).await;
    let install = Install::new(&mock, "");
    let output = install.openheim(&["run", "fix the bug", "--verbose"]).await;
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    for line in [
        "plan: 3 steps, 1 done",
        "  [x] Read the code (!)",
        "  [>] Write the fix",
        "  [ ] Run the tests",
    ] {
        assert!(err.contains(line), "{line:?} missing from:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acp_clients_get_the_plan_live_on_load_and_on_resume() {
    let mock = MockLlm::start(vec![plan_call("p1"), Reply::text("Planned.")]).await;
    let install = Install::new(&mock, "");
    let seen = run_sdk_script(&install, "plan.mjs").await;
    let expected = json!([
        {"content": "Read the code", "status": "completed", "priority": "high"},
        {"content": "Write the fix", "status": "in_progress", "priority": "medium"},
        {"content": "Run the tests", "status": "pending", "priority": "low"}
    ]);
    for moment in ["live", "resumed", "loaded"] {
        let plans = observed(&seen, moment)["plans"].as_array().unwrap().clone();
        assert_eq!(plans.len(), 1, "{moment}: {plans:?}");
        assert_eq!(plans[0], expected, "{moment}");
    }
    // On load the plan comes where the call was: after its tool call.
    let kinds = observed(&seen, "loaded")["kinds"]
        .as_array()
        .unwrap()
        .clone();
    let at = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
    assert!(at("tool_call") < at("plan"), "{kinds:?}");
}
