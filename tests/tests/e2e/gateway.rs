//! `openheim serve` over real sockets: full ACP turns on `/ws` and `/acp`,
//! the fs channel (round trips, escapes, a watch seeing the agent's write),
//! the REST API (documented shapes, no secrets, pagination), auth and
//! origins, and a socket closed mid-turn cancelling its turn.

mod hooks;
mod security;
pub mod support;
mod usage;
mod users;
mod workspaces;

use std::time::Duration;

use openheim_e2e::procs::{marked_sleep, wait_for_process, wait_until_none};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};
use serde_json::{Value, json};

use support::{Framing, Server, TIMEOUT, WsClient};

fn write_call(id: &str, path: &str, content: &str) -> Reply {
    let args = json!({"path": path, "content": content});
    Reply::tool_calls(vec![ToolCallSpec::new("write_file", args).with_id(id)])
}

/// The ACP turn both endpoints must run the same way: a tool call that asks
/// for permission, streamed text, `end_turn`.
async fn full_turn(client: &mut WsClient, server: &Server) {
    let workspace = server.install.workspace();
    let session = client.open_session(&workspace).await;
    let turn = client.prompt(&session, "write a note", "allow_once").await;
    assert_eq!(turn.stop_reason, "end_turn", "{turn:?}");
    assert_eq!(turn.text(), "Writing it. Done.");
    assert_eq!(turn.permissions.len(), 1);
    assert_eq!(turn.permissions[0]["toolCall"]["toolCallId"], "w1");
    assert_eq!(turn.statuses("w1"), ["pending", "in_progress", "completed"]);
    let call = turn
        .updates
        .iter()
        .find(|u| u["sessionUpdate"] == "tool_call")
        .unwrap();
    assert_eq!(call["kind"], "edit");
    assert_eq!(
        call["rawInput"],
        json!({"path": "made.txt", "content": "hello"})
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("made.txt")).unwrap(),
        "hello"
    );
}

fn turn_script() -> Vec<Reply> {
    vec![
        write_call("w1", "made.txt", "hello").with_text("Writing it. "),
        Reply::text("Done."),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_acp_turn_on_ws_while_a_watch_sees_the_agents_write() {
    let server = Server::start(turn_script(), "").await;
    let mut client = server.connect("/ws", Framing::Envelope).await;
    let watching = client
        .fs(json!({"action": "watch", "id": "w", "path": "", "recursive": true}))
        .await;
    assert_eq!(watching, json!({"type": "watching", "id": "w", "path": ""}));

    full_turn(&mut client, &server).await;
    let event = loop {
        let event = client.next_fs().await;
        assert_eq!(event["type"], "fs_event", "{event}");
        if event["paths"] == json!(["made.txt"]) {
            break event;
        }
    };
    assert!(
        ["create", "modify"].contains(&event["kind"].as_str().unwrap()),
        "{event}"
    );
    let done = client
        .fs(json!({"action": "unwatch", "id": 2, "path": ""}))
        .await;
    assert_eq!(done, json!({"type": "unwatched", "id": 2, "path": ""}));
    client.close().await;
    server.mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_acp_turn_on_acp() {
    let server = Server::start(turn_script(), "").await;
    let mut client = server.connect("/acp", Framing::Bare).await;
    full_turn(&mut client, &server).await;
    // Malformed messages are answered, the connection goes on.
    client.send_text("{not json".to_owned()).await;
    let error = client.next_agent().await;
    assert_eq!(error["error"]["code"], -32700, "{error}");
    let listed = client.request("session/list", json!({})).await;
    assert_eq!(listed["result"]["sessions"].as_array().unwrap().len(), 1);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_operations_round_trip() {
    let server = Server::start(Vec::new(), "").await;
    let workspace = server.install.workspace();
    let mut c = server.connect("/ws", Framing::Envelope).await;

    let made = c
        .fs(json!({"action": "mkdir", "id": 1, "path": "docs/sub"}))
        .await;
    assert_eq!(
        made,
        json!({"type": "mkdir_success", "id": 1, "path": "docs/sub"})
    );
    let wrote = c
        .fs(json!({"action": "write", "id": 2, "path": "docs/a.txt", "content": "héllo"}))
        .await;
    assert_eq!(
        wrote,
        json!({"type": "write_success", "id": 2, "path": "docs/a.txt"})
    );
    let listed = c
        .fs(json!({"action": "list", "id": 3, "path": "docs", "recursive": true}))
        .await;
    assert_eq!(listed["type"], "file_list");
    assert_eq!(listed["truncated"], false);
    let entries: Vec<(&str, &str, bool)> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (path, name) = (e["path"].as_str().unwrap(), e["name"].as_str().unwrap());
            (path, name, e["is_dir"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(
        entries,
        [("docs/a.txt", "a.txt", false), ("docs/sub", "sub", true)]
    );
    let file = &listed["entries"][0];
    assert_eq!(file["size"], 6);
    assert!(file["modified"].as_i64().unwrap() > 0);
    let read = c
        .fs(json!({"action": "read", "id": 4, "path": "docs/a.txt"}))
        .await;
    assert_eq!(
        read,
        json!({"type": "file_content", "id": 4, "path": "docs/a.txt", "content": "héllo",
               "encoding": "utf-8", "is_binary": false, "truncated": false, "size": 6})
    );
    let renamed = c
        .fs(json!({"action": "rename", "id": 5, "from": "docs/a.txt", "to": "b.txt"}))
        .await;
    assert_eq!(
        renamed,
        json!({"type": "rename_success", "id": 5, "from": "docs/a.txt", "to": "b.txt"})
    );
    let deleted = c
        .fs(json!({"action": "delete", "id": 6, "path": "docs", "recursive": true}))
        .await;
    assert_eq!(
        deleted,
        json!({"type": "delete_success", "id": 6, "path": "docs"})
    );
    assert!(!workspace.join("docs").exists());
    assert_eq!(
        std::fs::read_to_string(workspace.join("b.txt")).unwrap(),
        "héllo"
    );

    // Binary content comes back as base64, byte for byte.
    std::fs::write(workspace.join("bin.dat"), b"\x00\x01\xfe\xff").unwrap();
    let binary = c.fs(json!({"action": "read", "path": "bin.dat"})).await;
    assert_eq!(
        (
            binary["encoding"].as_str(),
            binary["content"].as_str(),
            binary["is_binary"].as_bool()
        ),
        (Some("base64"), Some("AAH+/w=="), Some(true))
    );
    assert!(binary.get("id").is_none());
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_escapes_are_refused_with_the_request_id() {
    let server = Server::start(Vec::new(), "").await;
    let workspace = server.install.workspace();
    let outside = server.install.root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(&outside, workspace.join("link")).unwrap();
    std::fs::write(workspace.join("b.txt"), "b").unwrap();
    let mut c = server.connect("/ws", Framing::Envelope).await;
    for (id, request) in [
        (
            "up",
            json!({"action": "read", "path": "../outside/secret.txt"}),
        ),
        ("link", json!({"action": "read", "path": "link/secret.txt"})),
        (
            "write-link",
            json!({"action": "write", "path": "link/new.txt", "content": "x"}),
        ),
        ("abs", json!({"action": "list", "path": "/etc"})),
        (
            "mv",
            json!({"action": "rename", "from": "b.txt", "to": "../b.txt"}),
        ),
    ] {
        let mut request = request;
        request["id"] = json!(id);
        let reply = c.fs(request).await;
        assert_eq!(reply["type"], "error", "{id}: {reply}");
        assert_eq!(reply["id"], id);
        assert_eq!(reply["code"], "forbidden", "{id}: {reply}");
        assert!(!reply["message"].as_str().unwrap().is_empty());
    }
    assert!(!outside.join("new.txt").exists());
    let missing = c
        .fs(json!({"action": "read", "id": 7, "path": "nope.txt"}))
        .await;
    assert_eq!(
        (missing["code"].as_str(), missing["id"].as_i64()),
        (Some("not_found"), Some(7))
    );
    let unknown = c.fs(json!({"action": "chmod", "id": 8})).await;
    assert_eq!(
        (unknown["code"].as_str(), unknown["id"].as_i64()),
        (Some("invalid_request"), Some(8))
    );
    c.send_text("not an envelope".to_owned()).await;
    assert_eq!(c.next_fs().await["code"], "invalid_frame");
    c.close().await;
}

/// Three sessions, the first with a tool call, made by `openheim run`.
async fn three_sessions(install: &Install) -> Vec<String> {
    std::fs::write(install.workspace().join("f.txt"), "hi").unwrap();
    let mut ids = Vec::new();
    for prompt in ["read f.txt", "two", "three"] {
        let output = install.openheim(&["run", prompt]).await;
        assert!(
            output.status.success(),
            "{}",
            openheim_e2e::install::stderr(&output)
        );
        ids.push(openheim_e2e::install::session_id(&output));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_routes_answer_documented_json_without_secrets() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    let env = [
        ("OPENHEIM_PROVIDERS__MOCK__ENV_VAR", "MOCK_KEY"),
        ("MOCK_KEY", "sk-ENV-KEY-456"),
    ];
    let server = Server::start_with(mock, install, "default_skills = [\"a\"]", &env).await;

    let (status, config) = server.get("/api/config", None).await;
    assert_eq!(status, 200);
    let text = config.to_string();
    assert!(!text.contains("sk-ENV-KEY-456"), "{text}");
    assert_eq!(config["providers"]["mock"]["api_key"], "[redacted]");
    assert_eq!(config["providers"]["mock"]["env_var"], "MOCK_KEY");
    assert_eq!(config["default_skills"], json!(["a"]));
    assert!(config["sandbox"]["confinement"].is_string(), "{config}");

    let (status, models) = server.get("/api/models", None).await;
    assert_eq!(status, 200);
    assert_eq!(models["default_provider"], "mock");
    assert_eq!(models["providers"][0]["default_model"], "mock-model");
    let (_, skills) = server.get("/api/skills", None).await;
    assert_eq!(
        skills,
        json!({"default_skills": ["a"], "available": ["a", "b"]})
    );
    let (_, tools) = server.get("/api/tools", None).await;
    let read = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "read_file")
        .unwrap();
    assert_eq!(
        (read["kind"].as_str(), read["source"].as_str()),
        (Some("read"), Some("builtin"))
    );
    assert_eq!(read["input_schema"]["type"], "object");
    let (status, servers) = server.get("/api/mcp-servers", None).await;
    assert_eq!((status, servers), (200, json!({"servers": []})));

    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_newest_first_in_pages_with_their_tool_calls() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("read_file", json!({"path": "f.txt"})).with_id("r1"),
        ]),
        Reply::text("It says hi."),
        Reply::text("Two."),
        Reply::text("Three."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    support::write_config(&install, &mock, "");
    let ids = three_sessions(&install).await;
    let server = Server::start_with(mock, install, "", &[]).await;

    // Newest first, two pages.
    let (status, first) = server.get("/api/sessions?limit=2", None).await;
    assert_eq!(status, 200);
    let page: Vec<&str> = first["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[2].as_str(), ids[1].as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = server
        .get(&format!("/api/sessions?limit=2&cursor={cursor}"), None)
        .await;
    assert_eq!(second["sessions"][0]["id"], ids[0]);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(second["sessions"][0]["title"], "read f.txt");
    assert_eq!(second["sessions"][0]["approval_mode"], "auto");
    // Sessions on the default model name the model that serves them.
    assert_eq!(second["sessions"][0]["model"], "mock/mock-model");

    let (status, one) = server.get(&format!("/api/sessions/{}", ids[0]), None).await;
    assert_eq!(status, 200);
    assert_eq!(one["session"]["id"], ids[0]);
    assert_eq!(one["session"]["model"], "mock/mock-model");
    let messages = one["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
    assert_eq!(
        messages[1]["content"][0],
        json!({"type": "tool_call", "id": "r1", "name": "read_file", "arguments": {"path": "f.txt"}})
    );
    assert_eq!(messages[2]["content"][0]["tool_call_id"], "r1");

    for malformed in ["/api/sessions/bad%20id!", "/api/sessions/not-a-uuid"] {
        let (status, bad) = server.get(malformed, None).await;
        assert_eq!(
            (status, bad["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{malformed}"
        );
    }
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, missing) = server.get(&format!("/api/sessions/{unknown}"), None).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = server.get("/api/sessions?limit=x", None).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_key_never_shows_in_the_config() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    let key = "sk-CONFIG-KEY-123";
    let server = Server::start_with(
        mock,
        install,
        "",
        &[("OPENHEIM_PROVIDERS__MOCK__API_KEY", key)],
    )
    .await;
    let (status, config) = server.get("/api/config", None).await;
    assert_eq!(status, 200);
    assert!(!config.to_string().contains(key));
    assert_eq!(config["providers"]["mock"]["api_key"], "[redacted]");
}

const AUTH: &str = "[server]\nauth_tokens = [\"tok-one\", \"tok-two\"]\nallowed_origins = [\"https://app.example\"]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_origins_guard_rest_and_sockets() {
    let server = Server::start(Vec::new(), AUTH).await;
    let (status, body) = server.get("/api/sessions", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(server.get("/api/sessions", Some("tok-three")).await.0, 401);
    assert_eq!(server.get("/api/sessions", Some("tok-two")).await.0, 200);
    assert_eq!(server.get("/api/sessions?token=tok-one", None).await.0, 200);
    assert_eq!(server.get("/healthz", None).await.0, 200);

    let refused = |result: Result<WsClient, _>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    };
    let ws = server.ws_url("/ws");
    assert_eq!(
        refused(WsClient::connect(&ws, &[], Framing::Envelope).await),
        401
    );
    let wrong = format!("{ws}?token=nope");
    assert_eq!(
        refused(WsClient::connect(&wrong, &[], Framing::Envelope).await),
        401
    );
    let good = format!("{ws}?token=tok-one");
    let evil = [("origin", "https://evil.example")];
    assert_eq!(
        refused(WsClient::connect(&good, &evil, Framing::Envelope).await),
        403
    );
    let app = [("origin", "https://app.example")];
    let mut client = WsClient::connect(&good, &app, Framing::Envelope)
        .await
        .unwrap();
    let listed = client.fs(json!({"action": "list", "id": 1})).await;
    assert_eq!(listed["type"], "file_list");
    let bearer = [("authorization", "Bearer tok-two")];
    let acp = server.ws_url("/acp");
    let mut client = WsClient::connect(&acp, &bearer, Framing::Bare)
        .await
        .unwrap();
    let init = client
        .request("initialize", json!({"protocolVersion": 1}))
        .await;
    assert_eq!(init["result"]["agentInfo"]["name"], "openheim");
}

/// A note written by `openheim run` in the server's install.
async fn remember_with_run(server: &Server, text: &str) {
    let args = json!({"text": text, "tags": ["ops"]});
    server
        .mock
        .push_reply(Reply::tool_calls(vec![ToolCallSpec::new("remember", args)]));
    server.mock.push_reply(Reply::text("Noted."));
    let output = server.install.openheim(&["run", "remember this"]).await;
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_listed_searched_and_forgotten_over_rest_behind_the_tokens() {
    let extra = format!(
        "{AUTH}
[memory]
enabled = true
"
    );
    let server = Server::start(Vec::new(), &extra).await;
    remember_with_run(
        &server,
        "Restart the worker with systemctl restart ledgerly-worker.",
    )
    .await;
    remember_with_run(&server, "The on-call handover is on Mondays at 10:00.").await;
    let token = Some("tok-one");
    assert_eq!(server.get("/api/memory", None).await.0, 401);
    assert_eq!(server.delete("/api/memory/0123456789ab", None).await.0, 401);

    let (status, listed) = server.get("/api/memory", token).await;
    assert_eq!(status, 200, "{listed}");
    let notes = listed["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2, "{listed}");
    assert_eq!(
        notes[0]["text"],
        "The on-call handover is on Mondays at 10:00."
    );
    assert_eq!(notes[0]["scope"], "project");
    assert_eq!(notes[0]["tags"], json!(["ops"]));
    assert_eq!(
        listed["project"],
        server.install.workspace().display().to_string()
    );
    assert!(notes[0]["id"].as_str().unwrap().len() == 12, "{listed}");
    assert_eq!(listed["next_cursor"], Value::Null);

    let (status, found) = server
        .get("/api/memory?query=restart%20worker", token)
        .await;
    assert_eq!(status, 200, "{found}");
    let hits = found["notes"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{found}");
    assert!(hits[0]["score"].as_f64().unwrap() > 0.0, "{found}");
    let id = hits[0]["id"].as_str().unwrap().to_owned();

    let (status, page) = server.get("/api/memory?limit=1", token).await;
    assert_eq!((status, page["notes"].as_array().unwrap().len()), (200, 1));
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = server
        .get(&format!("/api/memory?limit=1&cursor={cursor}"), token)
        .await;
    assert_eq!(rest["notes"][0]["id"], id, "{rest}");

    let (status, deleted) = server.delete(&format!("/api/memory/{id}"), token).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["note"]["id"], id.as_str());
    let (status, again) = server.delete(&format!("/api/memory/{id}"), token).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{again}"
    );
    let (_, found) = server.get("/api/memory?query=restart", token).await;
    assert_eq!(found["notes"], json!([]));
    assert_eq!(server.get("/api/memory?limit=0", token).await.0, 400);
    let (_, config) = server.get("/api/config", token).await;
    assert_eq!(config["memory"]["enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_keeps_memory_off_unless_configured() {
    let server = Server::start(Vec::new(), "").await;
    let (status, body) = server.get("/api/memory", None).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("memory.enabled"), "{message}");
    let (_, tools) = server.get("/api/config", None).await;
    assert_eq!(tools["memory"]["enabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_bind_without_tokens_refuses_to_start() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    let output = install
        .openheim(&["serve", "--host", "0.0.0.0", "--port", "0"])
        .await;
    assert!(!output.status.success());
    let stderr = openheim_e2e::install::stderr(&output);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("server.auth_tokens"), "{stderr}");
    assert!(openheim_e2e::install::stdout(&output).is_empty());
}

/// The first tool result stored in `session`, polled over REST until
/// there is one.
async fn first_tool_result(server: &Server, session: &str) -> Value {
    let path = format!("/api/sessions/{session}");
    let found = tokio::time::timeout(TIMEOUT, async {
        loop {
            let (_, body) = server.get(&path, None).await;
            let messages = body["messages"].as_array().cloned().unwrap_or_default();
            if let Some(tool) = messages.iter().find(|m| m["role"] == "tool") {
                return tool["content"][0].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    found.await.expect("no tool result was recorded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_socket_mid_turn_cancels_the_turn() {
    let (command, marker) = marked_sleep(30);
    let script = vec![Reply::tool_calls(vec![
        ToolCallSpec::new("execute_command", json!({ "command": command })).with_id("slow"),
    ])];
    let server = Server::start(script, "").await;
    let workspace = server.install.workspace();
    let mut client = server.connect("/ws", Framing::Envelope).await;
    let session = client.open_session(&workspace).await;
    let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": "go"}]});
    client.send_request("session/prompt", params).await;
    loop {
        let message = client.next_agent().await;
        if message["method"] == "session/request_permission" {
            let answer = support::permission_answer(&message, "allow_once");
            client.send_agent(answer).await;
            break;
        }
    }
    wait_for_process(&marker, TIMEOUT).await;
    client.close().await;

    // The cancellation is recorded: the call has its result, the session
    // is free for the next turn.
    let result = first_tool_result(&server, &session).await;
    assert_eq!(result["tool_call_id"], "slow");
    assert_eq!(result["content"], "Cancelled by user.");
    wait_until_none(&marker, TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_turn_finish_then_closes_and_exits() {
    let script = vec![Reply::text("Finished in time.").with_delay_ms(1500)];
    let server = Server::start(script, "").await;
    let workspace = server.install.workspace();
    let mut busy = server.connect("/ws", Framing::Envelope).await;
    let mut idle = server.connect("/acp", Framing::Bare).await;
    let session = busy.open_session(&workspace).await;
    let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": "hi"}]});
    let id = busy.send_request("session/prompt", params).await;
    tokio::time::timeout(TIMEOUT, async {
        while server.mock.request_count() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the turn did not reach the model");
    let pid = nix::unistd::Pid::from_raw(server.process.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();

    // The idle socket is closed at once; the busy one after its answer.
    let close = idle.next_frame().await.unwrap_err();
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    let mut text = String::new();
    loop {
        let message = busy.next_agent().await;
        if message["id"] == id {
            assert_eq!(message["result"]["stopReason"], "end_turn", "{message}");
            break;
        }
        if let Some(chunk) = message["params"]["update"]["content"]["text"].as_str() {
            text.push_str(chunk);
        }
    }
    assert_eq!(text, "Finished in time.");
    let close = busy.next_frame().await.unwrap_err();
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    let stat = format!("/proc/{pid}/stat");
    let exited = tokio::time::timeout(TIMEOUT, async {
        loop {
            match std::fs::read_to_string(&stat) {
                Ok(s) if !s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return,
            }
        }
    });
    assert!(exited.await.is_ok(), "the server did not exit");
}

/// Sessions streaming a turn at once, next to a client that floods the fs
/// channel and never reads its replies.
const CONCURRENT_SESSIONS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_stream_at_once_and_a_client_that_never_reads_blocks_none() {
    let answer = "Hello from the mock, streamed in several small chunks for every session.";
    let script = (0..CONCURRENT_SESSIONS)
        .map(|_| Reply::text(answer))
        .collect();
    let server = Server::start(script, "").await;
    let workspace = server.install.workspace();
    for i in 0..2000 {
        std::fs::write(workspace.join(format!("file-{i:04}.txt")), "x").unwrap();
    }
    let mut stuck = server.connect("/ws", Framing::Envelope).await;
    for i in 0..300 {
        stuck.send_fs(json!({"action": "list", "id": i})).await;
    }
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT_SESSIONS {
        let mut client = server.connect("/ws", Framing::Envelope).await;
        let workspace = workspace.clone();
        clients.spawn(async move {
            let session = client.open_session(&workspace).await;
            let turn = client.prompt(&session, "hi", "allow_once").await;
            client.close().await;
            let text = turn.text();
            (turn.stop_reason, text)
        });
    }
    let all = tokio::time::timeout(TIMEOUT, clients.join_all())
        .await
        .expect("the sessions did not finish in time");
    assert_eq!(all.len(), CONCURRENT_SESSIONS);
    for (stop, text) in all {
        assert_eq!((stop.as_str(), text.as_str()), ("end_turn", answer));
    }
    drop(stuck);
    server.mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_gateway_serves_a_remote_agent_loop() {
    let mock = MockLlm::start(turn_script()).await;
    let install = Install::new(&mock, "");
    let cluster = install.start_cluster(&mock, "").await;
    // The cluster's CLI config names only the agent-loop.
    let config = install.home().join("config.toml");
    let home = install.home();
    let env = [
        ("OPENHEIM_CONFIG", config.to_str().unwrap()),
        ("OPENHEIM_HOME", home.to_str().unwrap()),
        ("RUST_LOG", "warn"),
    ];
    let process = openheim_e2e::ServiceProcess::spawn("openheim-gateway", &[], &env).await;
    let server = Server {
        mock,
        install,
        process,
    };
    let mut client = server.connect("/acp", Framing::Bare).await;
    full_turn(&mut client, &server).await;
    let (status, sessions) = server.get("/api/sessions", None).await;
    assert_eq!(status, 200);
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);
    // Skills come from the agent-loop, wherever it runs.
    let (status, skills) = server.get("/api/skills", None).await;
    assert_eq!(status, 200);
    assert_eq!(skills["available"], json!(["a", "b"]), "{skills}");
    let (status, body) = server.get("/api/tools", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("backend_not_configured"))
    );
    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!(
        (status, ready),
        (
            200,
            json!({"status": "ready", "backends": {"agent-loop": "ok"}})
        )
    );

    // `--health`, the containers' healthchecks: ready, then not once the
    // agent-loop is gone.
    let agent_loop = cluster.addr("openheim-agent-loop").unwrap();
    let gateway = server.process.addr();
    assert_eq!(health("openheim-gateway", &gateway), (true, String::new()));
    assert_eq!(
        health("openheim-agent-loop", &agent_loop),
        (true, String::new())
    );
    drop(cluster);
    let (ready, why) = health("openheim-gateway", &gateway);
    assert!(!ready && why.contains("503"), "{why}");
    let (ready, why) = health("openheim-agent-loop", &agent_loop);
    assert!(!ready && why.starts_with("not ready"), "{why}");
}

/// `BIN --health --listen ADDR`: whether it exited 0, and its stderr.
fn health(bin: &str, addr: &str) -> (bool, String) {
    let output = std::process::Command::new(openheim_e2e::bin_path(bin))
        .args(["--health", "--listen", addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    (output.status.success(), stderr)
}
