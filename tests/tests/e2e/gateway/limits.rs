//! Per-user limits and the audit trail of a shared server
//! (docs/security.md, "Limits" and "Audit"): a user over their
//! concurrent-turn limit or token budget gets the documented JSON-RPC error
//! on `/acp` and `/ws`, no request for the refused turn reaches the
//! provider, and other users' turns run; REST answers 429 with
//! `Retry-After` over the requests-per-minute limit. Once on one
//! `openheim serve`, once on the distributed deployment (a gateway in
//! front of two agent-loop replicas counting in one Redis).

use std::path::Path;

use openheim_e2e::{Install, MockLlm, Reply, ServiceProcess, ToolCallSpec};
use serde_json::{Value, json};

use super::support::{Framing, Server, WsClient, permission_answer};

const ALICE: &str = "tok-alice-7f3a";
const BOB: &str = "tok-bob-91c2";
const CAROL: &str = "tok-carol-55e0";
/// Text of Alice's refused prompt: must never reach the audit trail.
const SECRET_PROMPT: &str = "the launch code is 0000";

/// Everyone: one turn at a time. Alice: one token a day (her first turn
/// spends it). Carol: three requests a minute.
const LIMITS: &str = "[server.limits]\nconcurrent_turns = 1\n\
    [server.users.alice.limits]\ntokens_per_day = 1\n\
    [server.users.carol.limits]\nrequests_per_minute = 3\n";
const TOKENS: &str = "[server.users.alice]\ntoken_env = \"ALICE_TOKEN\"\n\
    [server.users.bob]\ntoken_env = \"BOB_TOKEN\"\n\
    [server.users.carol]\ntoken_env = \"CAROL_TOKEN\"\n";

/// Alice's first turn; Bob's turn that waits on a permission question,
/// then ends; Bob's turn after it; Carol's turn, which delegates to a
/// sub-agent (whose turn runs in Carol's one slot).
fn script() -> Vec<Reply> {
    let write = json!({"path": "bob.txt", "content": "bob was here"});
    let delegate = json!({"task": "say hello"});
    vec![
        Reply::text("Hello, Alice."),
        Reply::tool_calls(vec![ToolCallSpec::new("write_file", write).with_id("w1")]),
        Reply::text("Written."),
        Reply::text("Bob again."),
        Reply::tool_calls(vec![
            ToolCallSpec::new("delegate_task", delegate).with_id("d1"),
        ]),
        Reply::text("Hello from the sub-agent."),
        Reply::text("Hello, Carol."),
    ]
}

/// The mock's requests once every scripted turn ran (a refused one would
/// leave the script short).
const ALL_REQUESTS: usize = 7;

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ALICE_TOKEN", ALICE),
        ("BOB_TOKEN", BOB),
        ("CAROL_TOKEN", CAROL),
        ("RUST_LOG", "warn,audit=info"),
    ]
}

async fn connect(server: &Server, path: &str, token: &str, framing: Framing) -> WsClient {
    let url = server.ws_url(&format!("{path}?token={token}"));
    WsClient::connect(&url, &[], framing).await.unwrap()
}

/// The JSON-RPC error of a refused prompt: code -32029, the limit, and a
/// wait in whole seconds.
fn assert_limit_error(answer: &Value, limit: &str) -> u64 {
    let error = &answer["error"];
    assert_eq!(error["code"], -32029, "{answer}");
    assert_eq!(error["data"]["limit"], limit, "{answer}");
    assert_eq!(error["data"]["retryable"], true, "{answer}");
    let wait = error["data"]["retryAfter"].as_u64().unwrap_or(0);
    assert!(wait >= 1, "{answer}");
    wait
}

fn prompt(session: &str, text: &str) -> Value {
    json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]})
}

/// Bob (on `/ws`) starts a turn that waits on a permission question: his
/// client, the prompt's request id and the question.
async fn bob_holds_a_turn(server: &Server, workspace: &Path) -> (WsClient, u64, Value) {
    let mut bob = connect(server, "/ws", BOB, Framing::Envelope).await;
    let session = bob.open_session(workspace).await;
    let first = bob
        .send_request("session/prompt", prompt(&session, "write it"))
        .await;
    let question = loop {
        let message = bob.next_agent().await;
        if message["method"] == "session/request_permission" {
            break message;
        }
    };
    (bob, first, question)
}

/// The response to request `id`, skipping the messages before it.
async fn answer_to(client: &mut WsClient, id: u64) -> Value {
    loop {
        let message = client.next_agent().await;
        if message["id"] == id {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_over_their_limits_are_refused_before_any_llm_call() {
    let mock = MockLlm::start(script()).await;
    let install = Install::new(&mock, "");
    let server = Server::start_with(mock, install, &format!("{TOKENS}{LIMITS}"), &env()).await;
    over_the_limits(&server, &server.process).await;

    // Carol: past three requests in a minute (her socket was one), 429
    // with Retry-After and the documented body; the others' requests are
    // unaffected. At most four requests after a new minute starts.
    let mut refused = None;
    for _ in 0..8 {
        let response = reqwest::Client::new()
            .get(server.url("/api/sessions"))
            .bearer_auth(CAROL)
            .send()
            .await
            .unwrap();
        if response.status().as_u16() != 200 {
            refused = Some(response);
            break;
        }
    }
    let response = refused.expect("never refused");
    assert_eq!(response.status().as_u16(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "limit_exceeded", "{body}");
    assert_eq!(server.get("/api/sessions", Some(BOB)).await.0, 200);

    // A failed login is recorded too, without the token it tried.
    assert_eq!(
        server.get("/api/sessions", Some("tok-wrong-1234")).await.0,
        401
    );
    let audit = audit_lines(&server.process);
    assert!(
        audit
            .iter()
            .any(|l| l.contains("what=\"login\"") && l.contains("result=\"failed\"")),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("requests_per_minute") && l.contains("who=\"carol\"")),
        "{audit:#?}"
    );
    let all = server.process.stderr_tail();
    for secret in [
        ALICE,
        BOB,
        CAROL,
        "tok-wrong-1234",
        SECRET_PROMPT,
        "bob was here",
    ] {
        assert!(
            !all.contains(secret),
            "{secret:?} in the server's output:\n{all}"
        );
    }
}

/// The audit records a process wrote (its recent stderr, colours
/// removed).
fn audit_lines(process: &ServiceProcess) -> Vec<String> {
    process
        .stderr_tail()
        .lines()
        .map(without_colours)
        .filter(|l| l.contains(" audit ") && l.contains("what=\""))
        .collect()
}

/// `line` without ANSI escape sequences (`ESC [ … letter`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Alice spends her budget and is refused; Bob holds his one turn and is
/// refused a second; Carol's turn runs meanwhile; Bob's next turn runs
/// once his first ended. `agent_loop` is the process whose stderr holds
/// the agent loop's audit records.
async fn over_the_limits(server: &Server, agent_loop: &ServiceProcess) {
    let workspace = server.install.workspace();
    let mut alice = connect(server, "/acp", ALICE, Framing::Bare).await;
    let a = alice.open_session(&workspace).await;
    assert_eq!(
        alice.prompt(&a, "hi", "allow_once").await.stop_reason,
        "end_turn"
    );
    assert_eq!(server.mock.requests().len(), 1);

    // Over her token budget: refused, and the provider hears nothing.
    let refused = alice
        .request("session/prompt", prompt(&a, SECRET_PROMPT))
        .await;
    let wait = assert_limit_error(&refused, "tokens_per_day");
    assert!(wait <= 24 * 3600, "until the next UTC day: {wait}");
    assert_eq!(
        server.mock.requests().len(),
        1,
        "no LLM call for a refused turn"
    );

    // Bob (on /ws) holds a turn open on a permission question.
    let (mut bob, first, question) = bob_holds_a_turn(server, &workspace).await;
    assert_eq!(server.mock.requests().len(), 2);
    let b2 = new_session(&mut bob, &workspace).await;
    let refused = bob.request("session/prompt", prompt(&b2, "and this")).await;
    assert_limit_error(&refused, "concurrent_turns");
    assert_eq!(
        server.mock.requests().len(),
        2,
        "no LLM call for a refused turn"
    );

    // Carol is not limited by Alice's budget or Bob's turn.
    let mut carol = connect(server, "/acp", CAROL, Framing::Bare).await;
    let c = carol.open_session(&workspace).await;
    // The mock answers in script order: Bob's two replies come first.
    bob.send_agent(permission_answer(&question, "allow_once"))
        .await;
    let ended = answer_to(&mut bob, first).await;
    assert_eq!(ended["result"]["stopReason"], "end_turn", "{ended}");
    // His turn ended: the slot is free again.
    assert_eq!(
        bob.prompt(&b2, "again", "allow_once").await.stop_reason,
        "end_turn"
    );
    assert_eq!(
        carol.prompt(&c, "hi", "allow_once").await.stop_reason,
        "end_turn"
    );
    assert_eq!(
        server.mock.requests().len(),
        ALL_REQUESTS,
        "the sub-agent ran"
    );

    // The audit trail names who, what and the outcome, never the prompt.
    let audit = audit_lines(agent_loop);
    let has = |what: &str, needle: &str| {
        audit
            .iter()
            .any(|l| l.contains(&format!("what=\"{what}\"")) && l.contains(needle))
    };
    assert!(has("limit.exceeded", "tokens_per_day"), "{audit:#?}");
    assert!(has("limit.exceeded", "concurrent_turns"), "{audit:#?}");
    assert!(has("session.create", "who=\"bob\""), "{audit:#?}");
    assert!(has("permission", "write_file by"), "{audit:#?}");
    assert!(has("tool.call", "write_file"), "{audit:#?}");
    assert!(
        !audit.iter().any(|l| l.contains(SECRET_PROMPT)),
        "{audit:#?}"
    );
    alice.close().await;
    bob.close().await;
    carol.close().await;
}

async fn new_session(client: &mut WsClient, cwd: &std::path::Path) -> String {
    let new = client
        .request("session/new", json!({"cwd": cwd, "mcpServers": []}))
        .await;
    new["result"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {new}"))
        .to_owned()
}

/// The same on the distributed deployment: the agent-loop replicas count
/// turns and tokens in their shared Redis, so Bob's second turn is refused
/// on whichever replica it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_counts_through_redis() {
    let mock = MockLlm::start(script()).await;
    let install = Install::new(&mock, "");
    let redis = openheim_e2e::RedisServer::start();
    // The replicas know users by name only (the gateway holds the tokens).
    let replicas =
        crate::e2e::redis_store::Replicas::start_with(&install, &mock, &redis, 10, LIMITS).await;
    let config = install.root.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "default_provider = \"mock\"\nwork_dir = \"{}\"\n\n[providers.mock]\nkind = \"openai_compatible\"\napi_base = \"{}\"\ndefault_model = \"mock-model\"\n\n[store]\nurl = \"{}\"\nprefix = \"{}\"\n\n[services]\nagent_loop = \"{}, {}\"\n{TOKENS}{LIMITS}",
            install.workspace().display(),
            mock.base_url(),
            redis.url(),
            redis.prefix(),
            replicas.a.addr(),
            replicas.b.addr()
        ),
    )
    .unwrap();
    let home = install.home();
    let mut vars = vec![
        ("OPENHEIM_CONFIG", config.to_str().unwrap()),
        ("OPENHEIM_HOME", home.to_str().unwrap()),
    ];
    vars.extend(env());
    let process = ServiceProcess::spawn("openheim-gateway", &[], &vars).await;
    let server = Server {
        mock,
        install,
        process,
    };
    over_the_limits_distributed(&server, &replicas).await;
}

/// [`over_the_limits`] with the audit records spread over two replicas.
async fn over_the_limits_distributed(
    server: &Server,
    replicas: &crate::e2e::redis_store::Replicas,
) {
    let workspace = server.install.workspace();
    let mut alice = connect(server, "/acp", ALICE, Framing::Bare).await;
    let a = alice.open_session(&workspace).await;
    // Each prompt goes to the next replica: the refusals below come from
    // replicas that did not run the turn being counted.
    for _ in 0..2 {
        let answer = alice.request("session/prompt", prompt(&a, "hi")).await;
        if answer["error"].is_null() {
            assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");
        } else {
            assert_limit_error(&answer, "tokens_per_day");
        }
    }
    assert_eq!(
        server.mock.requests().len(),
        1,
        "one turn ran, one was refused"
    );

    let (mut bob, first, question) = bob_holds_a_turn(server, &workspace).await;
    let b2 = new_session(&mut bob, &workspace).await;
    for _ in 0..2 {
        let refused = bob.request("session/prompt", prompt(&b2, "and this")).await;
        assert_limit_error(&refused, "concurrent_turns");
    }
    assert_eq!(
        server.mock.requests().len(),
        2,
        "no LLM call for refused turns"
    );
    bob.send_agent(permission_answer(&question, "allow_once"))
        .await;
    answer_to(&mut bob, first).await;
    assert_eq!(
        bob.prompt(&b2, "again", "allow_once").await.stop_reason,
        "end_turn"
    );
    let mut carol = connect(server, "/acp", CAROL, Framing::Bare).await;
    let c = carol.open_session(&workspace).await;
    assert_eq!(
        carol.prompt(&c, "hi", "allow_once").await.stop_reason,
        "end_turn"
    );
    assert_eq!(
        server.mock.requests().len(),
        ALL_REQUESTS,
        "the sub-agent ran"
    );
    let refusals = [&replicas.a, &replicas.b]
        .iter()
        .flat_map(|r| audit_lines(r))
        .filter(|l| l.contains("limit.exceeded"))
        .count();
    assert!(refusals >= 3, "three refusals recorded");
    alice.close().await;
    bob.close().await;
    carol.close().await;
}
