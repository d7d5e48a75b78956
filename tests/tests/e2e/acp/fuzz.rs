//! `openheim acp` against bad input, line by line: thousands of malformed
//! and random JSON-RPC lines, unknown methods and sessions, and a client
//! that closes stdin in the middle of a turn.

use serde_json::{Value, json};

use std::time::Duration;

use openheim_e2e::procs::{marked_sleep, wait_for_process, wait_until_none};

use super::support::{RawAgent, calls_and_results};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};

/// xorshift64*: deterministic, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const METHODS: &[&str] = &[
    "initialize",
    "session/new",
    "session/load",
    "session/list",
    "session/prompt",
    "session/cancel",
    "session/set_model",
    "session/set_config_option",
    "session/set_mode",
    "fs/read_text_file",
    "authenticate",
    "$/cancel_request",
    "no/such/method",
    "",
];

fn random_scalar(rng: &mut Rng) -> Value {
    match rng.below(7) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from(rng.below(1000) as u32) / 7.0),
        4 => json!("x".repeat(rng.below(40) as usize)),
        5 => json!(["a", 1, null]),
        _ => json!({"sessionId": "s-1", "cwd": "relative/dir", "prompt": "not a list"}),
    }
}

fn random_params(rng: &mut Rng) -> Value {
    let keys = [
        "sessionId",
        "cwd",
        "prompt",
        "protocolVersion",
        "cursor",
        "mcpServers",
        "configId",
        "value",
        "_meta",
    ];
    let mut object = serde_json::Map::new();
    for _ in 0..rng.below(5) {
        object.insert(rng.pick(&keys).to_owned(), random_scalar(rng));
    }
    Value::Object(object)
}

fn random_message(rng: &mut Rng) -> Value {
    let id = match rng.below(5) {
        0 => json!(rng.below(100_000)),
        1 => json!(format!("id-{}", rng.below(1000))),
        2 => json!(null),
        3 => json!({"weird": true}),
        _ => json!(-1.5),
    };
    match rng.below(4) {
        0 => {
            json!({"jsonrpc": "2.0", "id": id, "method": rng.pick(METHODS), "params": random_params(rng)})
        }
        1 => json!({"jsonrpc": "2.0", "method": rng.pick(METHODS), "params": random_params(rng)}),
        2 => json!({"jsonrpc": "2.0", "id": id, "result": random_scalar(rng)}),
        _ => json!({"jsonrpc": "1.0", "id": id, "error": {"code": "x"}, "method": 7}),
    }
}

/// One malformed or random line (never containing a newline).
fn fuzz_line(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        // Random bytes, invalid UTF-8 included.
        0 => (0..rng.below(200))
            .map(|_| match rng.below(256) as u8 {
                b'\n' => b' ',
                byte => byte,
            })
            .collect(),
        // Valid JSON-RPC cut short.
        1 => {
            let text = random_message(rng).to_string();
            let cut = rng.below(text.len() as u64) as usize;
            text.as_bytes()[..cut].to_vec()
        }
        2 | 3 => random_message(rng).to_string().into_bytes(),
        4 => random_scalar(rng).to_string().into_bytes(),
        // Batches are not part of ACP.
        5 => {
            let batch: Vec<Value> = (0..rng.below(4)).map(|_| random_message(rng)).collect();
            Value::Array(batch).to_string().into_bytes()
        }
        // Nesting deeper than any parser's recursion limit.
        6 => {
            let depth = 50 + rng.below(400) as usize;
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }
        _ => b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_malformed_lines_never_bring_the_agent_down() {
    let mock = MockLlm::start(vec![]).await;
    let install = Install::new(&mock, "");
    let mut agent = RawAgent::spawn(&install);
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    // Before initialization, then after it.
    for _ in 0..2500 {
        agent.send_line(&fuzz_line(&mut rng)).await;
    }
    let init = json!({"protocolVersion": 1, "clientCapabilities": {}});
    let answer = agent
        .request(json!("init-1"), "initialize", init.clone())
        .await;
    assert_eq!(
        answer["result"]["agentInfo"]["name"], "openheim",
        "{answer}"
    );
    for _ in 0..2500 {
        agent.send_line(&fuzz_line(&mut rng)).await;
    }
    let answer = agent
        .request(json!("list-1"), "session/list", json!({}))
        .await;
    assert!(answer["result"]["sessions"].is_array(), "{answer}");
    let answer = agent.request(json!("init-2"), "initialize", init).await;
    assert_eq!(answer["result"]["protocolVersion"], 1, "{answer}");
    agent.close_stdin();
    assert_eq!(agent.process.exit_code().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_and_sessions_get_standard_errors() {
    let mock = MockLlm::start(vec![]).await;
    let install = Install::new(&mock, "");
    let mut agent = RawAgent::spawn(&install);
    let init = json!({"protocolVersion": 1});
    agent.request(json!(1), "initialize", init).await;
    let answer = agent.request(json!(2), "openheim/nothing", json!({})).await;
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    let prompt =
        json!({"sessionId": "no-such-session", "prompt": [{"type": "text", "text": "hi"}]});
    let answer = agent.request(json!(3), "session/prompt", prompt).await;
    assert_eq!(answer["error"]["code"], -32002, "{answer}");
    let load =
        json!({"sessionId": "no-such-session", "cwd": install.workspace(), "mcpServers": []});
    let answer = agent.request(json!(4), "session/load", load).await;
    assert_eq!(answer["error"]["code"], -32002, "{answer}");
    let answer = agent
        .request(json!(5), "session/new", json!({"cwd": 42}))
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    agent.close_stdin();
    assert_eq!(agent.process.exit_code().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdin_mid_turn_cancels_it_and_exits_cleanly() {
    let (command, marker) = marked_sleep(30);
    let script = vec![Reply::tool_calls(vec![
        ToolCallSpec::new("execute_command", json!({ "command": command })).with_id("slow"),
    ])];
    let mock = MockLlm::start(script).await;
    // Nobody answers permission questions in this test: the shell may run.
    let install = Install::new(&mock, "[permissions]\nexecute = \"auto\"");
    let mut agent = RawAgent::spawn(&install);
    agent
        .request(json!(1), "initialize", json!({"protocolVersion": 1}))
        .await;
    let new = json!({"cwd": install.workspace(), "mcpServers": []});
    let created = agent.request(json!(2), "session/new", new).await;
    let session = created["result"]["sessionId"].as_str().unwrap().to_owned();
    let prompt = json!({"jsonrpc": "2.0", "id": 3, "method": "session/prompt",
        "params": {"sessionId": session, "prompt": [{"type": "text", "text": "slow"}]}});
    agent.send(prompt).await;
    wait_for_process(&marker, Duration::from_secs(20)).await;
    agent.close_stdin();
    assert_eq!(agent.process.exit_code().await, 0);
    wait_until_none(&marker, Duration::from_secs(10)).await;
    let (calls, results) = calls_and_results(&install.history_file(&session));
    assert_eq!(calls, ["slow"]);
    assert_eq!(
        results,
        [("slow".to_owned(), "Cancelled by user.".to_owned())]
    );
}
