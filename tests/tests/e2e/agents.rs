//! Sub-agents with the real binaries (docs/agents.md): a parent turn of
//! `openheim run` delegates two tasks in one reply to two profiles (one
//! read-only, from a file; one from the configuration); both children run
//! at once (their LLM requests overlap in time), each uses tools, and the
//! parent receives both answers in call order; the child sessions are
//! stored, linked to the parent and shown by the REST API of a later
//! `openheim serve`. The depth limit, an unknown profile and the per-turn
//! cap are tool errors naming the reason and the valid profiles.

use std::time::Instant;

use openheim_e2e::install::{Install, history, session_id, stderr, stdout};
use openheim_e2e::{MockLlm, Reply, ToolCallSpec};
use serde_json::{Value, json};

use super::gateway::support::Server;

const PARENT_PROMPT: &str = "build it and check the notes";
const BUILDER_IDENTITY: &str = "You are Builder: you make files with shell commands.";
const REVIEWER_FILE: &str = "+++\ndescription = \"Reads notes, changes nothing\"\nread_only = true\ntools = [\"read_file\", \"list_dir\", \"execute_command\"]\nmax_iterations = 4\n+++\n\nYou are Reviewer: you read notes and report what they say.\n";

fn agents_config() -> String {
    format!("[agents.builder]\ndescription = \"Makes files\"\nprompt = \"{BUILDER_IDENTITY}\"\n")
}

fn system_prompt(body: &Value) -> String {
    body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn first_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .find(|m| m["role"] == "user")
        .map(|m| match &m["content"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The tool results of a request, in message order, as (call id, text).
fn tool_results(body: &Value) -> Vec<(String, String)> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            let text = match &m["content"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (m["tool_call_id"].as_str().unwrap_or("").to_owned(), text)
        })
        .collect()
}

fn tool_names(body: &Value) -> Vec<String> {
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    tools
        .iter()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Parent,
    Builder,
    Reviewer,
    General,
}

fn who(body: &Value) -> Who {
    let system = system_prompt(body);
    if system.contains("You are Builder") {
        Who::Builder
    } else if system.contains("You are Reviewer") {
        Who::Reviewer
    } else if first_user_text(body).contains(PARENT_PROMPT)
        || first_user_text(body).contains("plan")
    {
        Who::Parent
    } else {
        Who::General
    }
}

/// Answers every request by who sent it and how far it got.
fn router() -> Reply {
    Reply::dynamic(|body| {
        let results = tool_results(body);
        match (who(body), results.len()) {
            (Who::Parent, 0) => Reply::tool_calls(vec![
                ToolCallSpec::new(
                    "delegate_task",
                    json!({"task": "Create built.txt", "agent": "builder"}),
                )
                .with_id("d1"),
                ToolCallSpec::new(
                    "delegate_task",
                    json!({"task": "What do the notes say?", "agent": "reviewer"}),
                )
                .with_id("d2"),
            ]),
            (Who::Parent, _) => {
                let answers: Vec<String> = results
                    .iter()
                    .map(|(id, text)| format!("{id}={text}"))
                    .collect();
                Reply::text(format!("Both done: {}", answers.join(" | ")))
            }
            (Who::Builder, 0) => Reply::tool_calls(vec![
                ToolCallSpec::new(
                    "execute_command",
                    json!({"command": "sleep 1 && echo built > built.txt && echo made-it"}),
                )
                .with_id("b1"),
            ]),
            (Who::Builder, _) => Reply::text(format!(
                "Built built.txt ({}).",
                results[0].1.trim().lines().last().unwrap_or_default()
            )),
            (Who::Reviewer, 0) => Reply::tool_calls(vec![
                ToolCallSpec::new("read_file", json!({"path": "notes.txt"})).with_id("r1"),
            ])
            .with_delay_ms(500),
            (Who::Reviewer, _) => Reply::text(format!(
                "The notes say: {}",
                results[0].1.trim().lines().last().unwrap_or_default()
            ))
            .with_delay_ms(500),
            (Who::General, _) => Reply::text("General answer."),
        }
    })
}

fn install_with_profiles(mock: &MockLlm, extra: &str) -> Install {
    let install = Install::new(mock, &format!("{extra}\n{}", agents_config()));
    std::fs::create_dir_all(install.home().join("agents")).unwrap();
    std::fs::write(install.home().join("agents/reviewer.md"), REVIEWER_FILE).unwrap();
    std::fs::write(install.workspace().join("notes.txt"), "ship on friday\n").unwrap();
    install
}

/// The interval between the first and the last request of `who`.
fn span_of(mock: &MockLlm, of: Who) -> (Instant, Instant) {
    let times: Vec<Instant> = mock
        .requests()
        .iter()
        .filter(|r| who(&r.body) == of)
        .map(|r| r.received_at)
        .collect();
    assert!(times.len() >= 2, "{of:?} made {} request(s)", times.len());
    (times[0], times[times.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_profiles_run_concurrently_and_answer_in_call_order_in_linked_sessions() {
    let mock = MockLlm::start((0..6).map(|_| router()).collect()).await;
    let install = install_with_profiles(&mock, "");
    let output = install.openheim(&["run", PARENT_PROMPT]).await;
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    mock.assert_no_violations();

    // The parent was offered the tool, listing both profiles.
    let parent = mock.request(0).body;
    let tools = parent["tools"].as_array().unwrap();
    let delegate = tools
        .iter()
        .find(|t| t["function"]["name"] == "delegate_task")
        .expect("delegate_task offered");
    let description = delegate["function"]["description"].as_str().unwrap();
    assert!(
        description.contains("builder: Makes files")
            && description.contains("reviewer: Reads notes, changes nothing"),
        "{description}"
    );

    // Each child ran with its profile: identity, tools, depth limit.
    let requests = mock.requests();
    let reviewer = requests
        .iter()
        .find(|r| who(&r.body) == Who::Reviewer)
        .unwrap();
    assert_eq!(tool_names(&reviewer.body), ["read_file", "list_dir"]);
    let builder = requests
        .iter()
        .find(|r| who(&r.body) == Who::Builder)
        .unwrap();
    let builder_tools = tool_names(&builder.body);
    assert!(builder_tools.contains(&"execute_command".to_owned()));
    assert!(!builder_tools.contains(&"delegate_task".to_owned()));

    // Both ran at once: their request intervals overlap by the reviewer's
    // whole run, while the builder's command sleeps.
    let (b_start, b_end) = span_of(&mock, Who::Builder);
    let (r_start, r_end) = span_of(&mock, Who::Reviewer);
    let overlap = b_end
        .min(r_end)
        .saturating_duration_since(b_start.max(r_start));
    assert!(
        overlap.as_millis() >= 300,
        "children overlapped {overlap:?} only (builder {:?}, reviewer {:?})",
        b_end - b_start,
        r_end - r_start
    );
    assert_eq!(
        std::fs::read_to_string(install.workspace().join("built.txt")).unwrap(),
        "built\n"
    );

    // The parent got both answers, in call order, and answered.
    let last = mock.requests().last().unwrap().body.clone();
    assert_eq!(who(&last), Who::Parent);
    let results = tool_results(&last);
    assert_eq!(
        results,
        [
            ("d1".to_owned(), "Built built.txt (made-it).".to_owned()),
            ("d2".to_owned(), "The notes say: ship on friday".to_owned()),
        ]
    );
    assert!(
        stdout(&output).contains(
            "Both done: d1=Built built.txt (made-it). | d2=The notes say: ship on friday"
        ),
        "{}",
        stdout(&output)
    );
    // The children's tool lines, prefixed with their agents' names.
    assert!(err.contains("[builder] ▸ sleep 1 && echo built"), "{err}");
    assert!(err.contains("[reviewer] ▸ read_file notes.txt"), "{err}");
    assert!(err.contains("[reviewer] ✓ read_file notes.txt"), "{err}");

    // Stored and linked: the parent's log names its children, each child's
    // header names its parent and profile.
    let parent_id = session_id(&output);
    let records = history(&install.history_file(&parent_id));
    let mut children: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r["type"] == "child")
        .map(|r| {
            (
                r["tool_call_id"].as_str().unwrap().to_owned(),
                r["agent"].as_str().unwrap().to_owned(),
                r["session_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    children.sort();
    assert_eq!(children.len(), 2, "{records:?}");
    assert_eq!(
        (children[0].0.as_str(), children[0].1.as_str()),
        ("d1", "builder")
    );
    assert_eq!(
        (children[1].0.as_str(), children[1].1.as_str()),
        ("d2", "reviewer")
    );
    let reviewer_log = history(&install.history_file(&children[1].2));
    assert_eq!(reviewer_log[0]["parent"]["session_id"], parent_id);
    assert_eq!(reviewer_log[0]["parent"]["tool_call_id"], "d2");
    assert_eq!(reviewer_log[0]["agent"]["name"], "reviewer");
    assert_eq!(reviewer_log[0]["read_only"], true);
    assert_eq!(reviewer_log[0]["depth"], 1);

    // A later process (a restart) shows them over REST.
    let server = Server::start_with(mock, install, "", &[]).await;
    let (status, one) = server
        .get(&format!("/api/sessions/{parent_id}"), None)
        .await;
    assert_eq!(status, 200, "{one}");
    let mut listed: Vec<(String, String)> = one["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["tool_call_id"].as_str().unwrap().to_owned(),
                c["agent"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("d1".to_owned(), "builder".to_owned()),
            ("d2".to_owned(), "reviewer".to_owned())
        ]
    );
    let (status, child) = server
        .get(&format!("/api/sessions/{}", children[0].2), None)
        .await;
    assert_eq!(status, 200, "{child}");
    assert_eq!(child["session"]["parent"]["session_id"], parent_id);
    assert_eq!(child["session"]["agent"], "builder");
    assert_eq!(child["session"]["depth"], 1);
    let messages = child["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"][0]["text"], "Create built.txt");
    assert_eq!(messages[1]["content"][0]["name"], "execute_command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_depth_limit_an_unknown_profile_and_the_cap_are_tool_errors_with_reasons() {
    let mock = MockLlm::start((0..4).map(|_| router_for_limits()).collect()).await;
    let install = install_with_profiles(&mock, "[agents]\nmax_children = 1\n");
    let output = install.openheim(&["run", "plan the work"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();

    let last = mock.requests().last().unwrap().body.clone();
    let results = tool_results(&last);
    let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["g1", "c1", "c2"]);
    assert_eq!(
        results[0].1,
        "Unknown agent profile \"ghost\". Valid profiles: builder, reviewer (or omit `agent` for a general-purpose sub-agent)."
    );
    // One of the two concurrent children got the only slot; the other the cap.
    let capped: Vec<&String> = results[1..]
        .iter()
        .map(|(_, text)| text)
        .filter(|text| text.starts_with("Sub-agent limit reached"))
        .collect();
    assert_eq!(capped.len(), 1, "{results:?}");
    assert!(
        capped[0].contains("agents.max_children = 1"),
        "{}",
        capped[0]
    );
    // The child that ran could not delegate further, and was told why.
    let child_saw = results[1..]
        .iter()
        .find(|(_, text)| !text.starts_with("Sub-agent limit reached"))
        .unwrap();
    assert!(
        child_saw.1.starts_with(
            "delegate_task is not available: this session is a sub-agent at depth 1 and agents.max_depth is 1"
        ) && child_saw.1.contains("Valid profiles: builder, reviewer"),
        "{}",
        child_saw.1
    );
}

/// The general-purpose child of the limits test: it delegates once, then
/// answers with the tool result it got.
fn router_for_limits() -> Reply {
    Reply::dynamic(|body| match (who(body), tool_results(body).len()) {
        (Who::Parent, 0) => Reply::tool_calls(vec![
            ToolCallSpec::new("delegate_task", json!({"task": "x", "agent": "ghost"}))
                .with_id("g1"),
            ToolCallSpec::new("delegate_task", json!({"task": "try to delegate"})).with_id("c1"),
            ToolCallSpec::new("delegate_task", json!({"task": "try to delegate"})).with_id("c2"),
        ]),
        (Who::Parent, _) => Reply::text("Understood."),
        (_, 0) => Reply::tool_calls(vec![
            ToolCallSpec::new("delegate_task", json!({"task": "deeper"})).with_id("n1"),
        ]),
        (_, _) => Reply::text(tool_results(body)[0].1.clone()),
    })
}

/// Through the library: the child's tool calls arrive as `child` events of
/// the parent's turn, and the child's usage is added to the turn's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_childs_activity_is_reported_and_its_usage_added_to_the_turn() {
    use futures::StreamExt;
    use openheim::events::child_activity::Activity;
    use openheim::events::{ApprovalMode, Event};
    use openheim::{Openheim, SessionOptions};

    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("delegate_task", json!({"task": "look around"})).with_id("d1"),
        ])
        .with_usage(100, 10, 0),
        Reply::tool_calls(vec![
            ToolCallSpec::new("list_dir", json!({"path": "."})).with_id("l1"),
        ])
        .with_usage(1000, 100, 0),
        Reply::text("Nothing much.").with_usage(1000, 100, 0),
        Reply::text("The child says: nothing much.").with_usage(100, 10, 0),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let provider = openheim::config::ProviderConfig {
        kind: Some(openheim::config::ProviderKind::OpenaiCompatible),
        api_base: Some(mock.base_url()),
        default_model: Some("mock-model".into()),
        ..Default::default()
    };
    let openheim = Openheim::builder()
        .provider("mock", provider)
        .default_provider("mock")
        .work_dir(install.workspace())
        .data_dir(install.home())
        .build()
        .unwrap();
    let options = SessionOptions {
        approval: ApprovalMode::Auto,
        ..Default::default()
    };
    let mut session = openheim.new_session(options).await.unwrap();
    let mut turn = session.prompt("what is here?").await.unwrap();
    let mut activity = Vec::new();
    let mut usage = None;
    while let Some(event) = turn.next().await {
        match event.unwrap().event.unwrap() {
            Event::Child(child) => {
                assert_eq!(
                    (child.tool_call_id.as_str(), child.agent.as_str()),
                    ("d1", "agent")
                );
                activity.push(match child.activity.unwrap() {
                    Activity::ToolCall(call) => format!("started {}", call.title),
                    Activity::ToolCallUpdate(update) => format!("{:?}", update.status()),
                });
            }
            Event::Ended(ended) => {
                usage = ended.usage;
                break;
            }
            Event::Error(e) => panic!("{}", e.message),
            _ => {}
        }
    }
    assert_eq!(activity, ["started list_dir .", "Completed"]);
    let usage = usage.expect("usage");
    assert_eq!((usage.input_tokens, usage.output_tokens), (2200, 220));
    mock.assert_no_violations();
}

/// In a deployment: a replica whose `services.agent_loop` names another
/// replica creates and runs its sub-agents there, through the same RPCs;
/// the child's session lives in the shared Redis, linked to its parent,
/// and any replica shows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_runs_its_sub_agent_on_the_replica_its_agent_loop_address_names() {
    use openheim_e2e::{RedisServer, ServiceProcess};
    use openheim_proto::agent_loop::v1::{ApprovalMode, LoadSessionRequest};

    use super::redis_store::{Replicas, client, new_session, start_turn};

    const PARENT_IDENTITY: &str = "You are the parent on replica C.";
    let route = || {
        Reply::dynamic(|body| {
            let system = system_prompt(body);
            let results = tool_results(body);
            match (system.contains(PARENT_IDENTITY), results.first()) {
                (true, None) => Reply::tool_calls(vec![
                    ToolCallSpec::new("delegate_task", json!({"task": "count to three"}))
                        .with_id("d1"),
                ]),
                (true, Some((_, answer))) => Reply::text(format!("Parent heard: {answer}")),
                (false, _) => Reply::text("one, two, three"),
            }
        })
    };
    let mock = MockLlm::start((0..3).map(|_| route()).collect()).await;
    let install = Install::new(&mock, "");
    let redis = RedisServer::start();
    let replicas = Replicas::start_with(&install, &mock, &redis, 30, "").await;
    // Replica C: its own data directory (identity), children sent to B.
    let c_home = install.root.path().join("c-home");
    std::fs::create_dir_all(&c_home).unwrap();
    std::fs::write(c_home.join("system.md"), PARENT_IDENTITY).unwrap();
    let loop_config = install.root.path().join("agent-loop.toml");
    let env = [
        ("OPENHEIM_CONFIG", loop_config.to_str().unwrap()),
        ("OPENHEIM_HOME", c_home.to_str().unwrap()),
        ("OPENHEIM_DATA_DIR", c_home.to_str().unwrap()),
        ("OPENHEIM_SERVICES__AGENT_LOOP", &replicas.b.url()),
    ];
    let c = ServiceProcess::spawn("openheim-agent-loop", &[], &env).await;

    let parent = new_session(&c, ApprovalMode::Auto).await;
    let mut turn = start_turn(&c, &parent, "delegate the counting").await;
    let (_, stop) = turn.finish().await;
    assert_eq!(stop, openheim_proto::common::v1::StopReason::EndTurn);
    mock.assert_no_violations();
    // The child's prompt was assembled by B (the shared home's identity),
    // the parent's by C.
    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    let child_system = system_prompt(&requests[1].body);
    assert!(
        child_system.contains(openheim_e2e::install::IDENTITY)
            && !child_system.contains(PARENT_IDENTITY),
        "{child_system}"
    );
    assert_eq!(
        tool_results(&requests[2].body),
        [("d1".to_owned(), "one, two, three".to_owned())]
    );

    // Replica A, which took no part, shows the link both ways from Redis.
    let load = |id: &str| LoadSessionRequest {
        caller: None,
        session_id: id.to_owned(),
        mcp_servers: vec![],
    };
    let loaded = client(&replicas.a)
        .load_session(load(&parent))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(loaded.children.len(), 1, "{:?}", loaded.children);
    assert_eq!(loaded.children[0].tool_call_id, "d1");
    let child = client(&replicas.a)
        .load_session(load(&loaded.children[0].session_id))
        .await
        .unwrap()
        .into_inner();
    let info = child.session.unwrap();
    assert_eq!(info.parent.unwrap().session_id, parent);
    assert_eq!(info.depth, 1);
    assert_eq!(child.messages.len(), 2);
}

/// A profile's `max_iterations` bounds its child's turn, not the parent's:
/// a child that never stops calling tools gets exactly that many model
/// calls, and the parent hears that it reached its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profiles_max_iterations_bounds_its_child() {
    const LOOPER: &str = "+++\ndescription = \"Lists forever\"\nmax_iterations = 2\n+++\n\nYou are Looper: you list the directory again and again.\n";
    let looper = |body: &Value| system_prompt(body).contains("You are Looper");
    let mock = MockLlm::start(
        (0..8)
            .map(|_| {
                Reply::dynamic(move |body| {
                    let results = tool_results(body);
                    match (looper(body), results.len()) {
                        (true, n) => Reply::tool_calls(vec![
                            ToolCallSpec::new("list_dir", json!({"path": "."}))
                                .with_id(format!("l{n}")),
                        ]),
                        (false, 0) => Reply::tool_calls(vec![
                            ToolCallSpec::new(
                                "delegate_task",
                                json!({"task": "list it", "agent": "looper"}),
                            )
                            .with_id("d1"),
                        ]),
                        (false, _) => Reply::text(format!("Child said: {}", results[0].1)),
                    }
                })
            })
            .collect(),
    )
    .await;
    let install = install_with_profiles(&mock, "max_iterations = 6\n");
    std::fs::write(install.home().join("agents/looper.md"), LOOPER).unwrap();
    let output = install.openheim(&["run", "plan the listing"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();

    let child_calls = mock.requests().iter().filter(|r| looper(&r.body)).count();
    assert_eq!(child_calls, 2, "the profile's limit, not the configured 6");
    assert!(
        stdout(&output).contains("(The sub-agent reached its iteration limit before finishing.)"),
        "{}",
        stdout(&output)
    );
}
