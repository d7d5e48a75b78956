//! Per-user workspaces on one `openheim serve` (docs/security.md,
//! "Workspaces"): Alice cannot read or write Bob's files through the fs
//! channel, the file tools, the shell (Landlock), a symlink the shell made,
//! or a stdio MCP server of her session. The same file checks run on the
//! distributed deployment from `users.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openheim_e2e::{Reply, ToolCallSpec};
use serde_json::{Value, json};

use super::support::{Framing, Server, WsClient};

pub(crate) const ALICE: &str = "tok-alice";
pub(crate) const BOB: &str = "tok-bob";
const BOBS_SECRET: &str = "bob's secret";

/// Two plain users; `[server]` lets clients start stdio MCP servers and
/// commands must be confined.
const CONFIG: &str = "[server]\nallow_client_stdio_mcp = true\n\
    [server.users.alice]\ntoken_env = \"ALICE_TOKEN\"\n\
    [server.users.bob]\ntoken_env = \"BOB_TOKEN\"\n\
    [server.projects.web]\npath = \".projects/web\"\nmembers = [\"alice\"]\n\
    [tools]\nsandbox = \"enforce\"\n";

fn call(id: &str, tool: &str, args: Value) -> ToolCallSpec {
    ToolCallSpec::new(tool, args).with_id(id)
}

/// Alice's turn: every way into Bob's directory the model has, then an
/// answer. `root` is the server's workspace root.
pub(crate) fn alices_attempts(root: &Path) -> Vec<Reply> {
    let absolute = root.join("bob/secret.txt").display().to_string();
    vec![
        Reply::tool_calls(vec![
            call("r-up", "read_file", json!({"path": "../bob/secret.txt"})),
            call("r-abs", "read_file", json!({"path": absolute})),
            call(
                "w-up",
                "write_file",
                json!({"path": "../bob/secret.txt", "content": "pwned"}),
            ),
            call(
                "e-up",
                "edit_file",
                json!({"path": "../bob/secret.txt", "old_string": "bob", "new_string": "alice"}),
            ),
        ]),
        // Landlock: the shell writes only in Alice's directory; the link
        // itself is hers to make.
        Reply::tool_calls(vec![call(
            "sh",
            "execute_command",
            json!({"command": format!("echo pwned > ../bob/secret.txt; echo pwned > ../bob/new.txt; \
                   ln -s ../bob link; cat ../bob/secret.txt {absolute}; ls -a ../bob; pwd")}),
        )]),
        Reply::tool_calls(vec![
            call("r-link", "read_file", json!({"path": "link/secret.txt"})),
            call(
                "w-link",
                "write_file",
                json!({"path": "link/secret.txt", "content": "pwned"}),
            ),
        ]),
        Reply::text("I could not get at Bob's files."),
    ]
}

/// An install whose workspace lies outside the temp directories, which
/// confined commands may always write to.
pub(crate) fn outside_temp(mock: &openheim_e2e::MockLlm) -> openheim_e2e::Install {
    openheim_e2e::Install::new_in(crate::e2e::scratch::outside_temp(), mock, "")
}

fn user_server_env() -> [(&'static str, &'static str); 2] {
    [("ALICE_TOKEN", ALICE), ("BOB_TOKEN", BOB)]
}

async fn ws_as(server: &Server, token: &str) -> WsClient {
    let url = server.ws_url(&format!("/ws?token={token}"));
    WsClient::connect(&url, &[], Framing::Envelope)
        .await
        .unwrap()
}

async fn acp_as(server: &Server, token: &str) -> WsClient {
    let url = server.ws_url(&format!("/acp?token={token}"));
    WsClient::connect(&url, &[], Framing::Bare).await.unwrap()
}

/// The tool results of the last request the provider got, by call id.
fn tool_results(server: &Server) -> BTreeMap<String, String> {
    let requests = server.mock.requests();
    let last = requests.last().expect("no provider request");
    last.messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            let text = match &m["content"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (
                m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                text,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cannot_reach_each_others_files() {
    let mock = openheim_e2e::MockLlm::start(Vec::new()).await;
    let install = outside_temp(&mock);
    let root = std::fs::canonicalize(install.workspace()).unwrap();
    for reply in alices_attempts(&root) {
        mock.push_reply(reply);
    }
    let server = Server::start_with(mock, install, CONFIG, &user_server_env()).await;
    files_are_kept_apart(&server, &root).await;
    mcp_servers_start_in_the_users_directory(&server, &root).await;
    only_members_work_in_a_project(&server, &root).await;
}

/// A project directory: Alice, a member, may work there; Bob may not.
async fn only_members_work_in_a_project(server: &Server, root: &Path) {
    let project = root.join(".projects/web");
    std::fs::create_dir_all(project.join("src")).unwrap();
    let new_session = |token: &'static str, cwd: PathBuf| async move {
        let mut acp = acp_as(server, token).await;
        acp.request("initialize", json!({"protocolVersion": 1}))
            .await;
        let answer = acp
            .request("session/new", json!({"cwd": cwd, "mcpServers": []}))
            .await;
        acp.close().await;
        answer
    };
    let alice = new_session(ALICE, project.join("src")).await;
    let session = alice["result"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("{alice}"));
    let (_, info) = server
        .get(&format!("/api/sessions/{session}"), Some(ALICE))
        .await;
    assert_eq!(
        info["session"]["work_dir"],
        project.join("src").display().to_string()
    );
    let bob = new_session(BOB, project.clone()).await;
    assert!(
        bob["error"]
            .to_string()
            .contains("outside this server's workspace"),
        "{bob}"
    );
}

/// Bob stores a file through his fs channel; Alice tries every way to it.
pub(crate) async fn files_are_kept_apart(server: &Server, root: &Path) {
    let bob_dir = root.join("bob");
    let mut bob = ws_as(server, BOB).await;
    let wrote = bob
        .fs(json!({"action": "write", "id": 1, "path": "secret.txt", "content": BOBS_SECRET}))
        .await;
    assert_eq!(wrote["type"], "write_success", "{wrote}");
    assert_eq!(read(&bob_dir.join("secret.txt")), BOBS_SECRET);
    assert_private(&bob_dir);

    // The fs channel: relative, absolute and listing.
    let mut alice = ws_as(server, ALICE).await;
    let absolute = bob_dir.join("secret.txt").display().to_string();
    for (id, request) in [
        ("up", json!({"action": "read", "path": "../bob/secret.txt"})),
        ("abs", json!({"action": "read", "path": absolute})),
        (
            "write",
            json!({"action": "write", "path": "../bob/secret.txt", "content": "pwned"}),
        ),
        ("list", json!({"action": "list", "path": "../bob"})),
        (
            "mv",
            json!({"action": "rename", "from": "../bob/secret.txt", "to": "mine.txt"}),
        ),
    ] {
        let mut request = request;
        request["id"] = json!(id);
        let reply = alice.fs(request).await;
        assert_eq!(reply["type"], "error", "{id}: {reply}");
        assert_eq!(reply["code"], "forbidden", "{id}: {reply}");
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("outside the workspace"),
            "{id}: {reply}"
        );
    }
    let own = alice
        .fs(json!({"action": "write", "id": 1, "path": "notes.txt", "content": "alice"}))
        .await;
    assert_eq!(own["type"], "write_success", "{own}");
    assert_eq!(read(&root.join("alice/notes.txt")), "alice");
    let listed = alice.fs(json!({"action": "list", "path": ""})).await;
    assert!(!listed.to_string().contains("secret.txt"), "{listed}");

    // A session in Bob's directory is refused; the root is her own.
    let mut acp = acp_as(server, ALICE).await;
    let init = acp
        .request("initialize", json!({"protocolVersion": 1}))
        .await;
    assert_eq!(init["result"]["protocolVersion"], 1, "{init}");
    let theirs = acp
        .request("session/new", json!({"cwd": bob_dir, "mcpServers": []}))
        .await;
    let refusal = theirs["error"].to_string();
    assert!(
        refusal.contains("outside this server's workspace"),
        "{theirs}"
    );
    let session = acp
        .request("session/new", json!({"cwd": root, "mcpServers": []}))
        .await;
    let session = session["result"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("{session}"))
        .to_owned();
    let (_, info) = server
        .get(&format!("/api/sessions/{session}"), Some(ALICE))
        .await;
    assert_eq!(
        info["session"]["work_dir"],
        root.join("alice").display().to_string(),
        "{info}"
    );

    // The tools, the shell and a symlink the shell made.
    let turn = acp.prompt(&session, "get bob's secret", "allow_once").await;
    assert_eq!(turn.stop_reason, "end_turn", "{turn:?}");
    let results = tool_results(server);
    for id in ["r-up", "r-abs", "w-up", "e-up", "r-link", "w-link"] {
        let result = results
            .get(id)
            .unwrap_or_else(|| panic!("no {id}: {results:?}"));
        assert!(result.contains("outside the workspace"), "{id}: {result}");
        assert!(!result.contains(BOBS_SECRET), "{id}: {result}");
    }
    let shell = &results["sh"];
    assert!(shell.contains("Permission denied"), "{shell}");
    // Landlock confines writes; Bob's directory is hidden from the shell's
    // mount namespace, so reads fail too.
    assert!(
        !shell.contains(BOBS_SECRET),
        "the shell read Bob's file: {shell}"
    );
    assert!(
        shell.contains(&root.join("alice").display().to_string()),
        "the shell runs in Alice's directory: {shell}"
    );
    assert!(
        std::fs::symlink_metadata(root.join("alice/link")).is_ok(),
        "the link was made"
    );
    assert_eq!(read(&bob_dir.join("secret.txt")), BOBS_SECRET);
    assert!(!bob_dir.join("new.txt").exists());
    acp.close().await;
    alice.close().await;
    bob.close().await;
}

/// A stdio MCP server of Alice's session starts in her directory and can
/// write nowhere else (Landlock).
async fn mcp_servers_start_in_the_users_directory(server: &Server, root: &Path) {
    let script = format!(
        "cat ../bob/secret.txt > seen.txt 2>&1; pwd > where.txt; echo pwned > ../bob/mcp.txt; exec {} stdio",
        openheim_e2e::bin_path("test-mcp-server").display()
    );
    let mut acp = acp_as(server, ALICE).await;
    acp.request("initialize", json!({"protocolVersion": 1}))
        .await;
    let servers =
        json!([{"name": "shell", "command": "/bin/sh", "args": ["-c", script], "env": []}]);
    let created = acp
        .request("session/new", json!({"cwd": root, "mcpServers": servers}))
        .await;
    assert!(created["result"]["sessionId"].is_string(), "{created}");
    let status = &created["result"]["_meta"]["openheim"]["mcpServers"][0];
    assert_ne!(status["state"], "failed", "{created}");
    let alice_dir = root.join("alice");
    let where_file = alice_dir.join("where.txt");
    tokio::time::timeout(Duration::from_secs(20), async {
        while std::fs::read_to_string(&where_file).map_or(true, |t| t.is_empty()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the MCP server did not start in Alice's directory");
    assert_eq!(read(&where_file).trim(), alice_dir.display().to_string());
    assert!(
        !root.join("bob/mcp.txt").exists(),
        "it wrote into Bob's directory"
    );
    assert!(!root.join("where.txt").exists());
    let seen = read(&alice_dir.join("seen.txt"));
    assert!(
        !seen.contains(BOBS_SECRET),
        "the MCP server read Bob's file: {seen}"
    );
    acp.close().await;
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
}
