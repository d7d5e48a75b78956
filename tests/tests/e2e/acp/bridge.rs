//! `openheim acp --connect` (the stdio bridge, docs/acp.md "Connecting an
//! editor to a remote server") between the official TypeScript SDK client
//! (`tests/acp-sdk/bridge.mjs`) and `openheim serve` with a bearer token:
//! requests of the server crossing back to the client, a dropped
//! connection (cut by a TCP proxy) with the session resumed, and the
//! errors for a refused token and an unreachable server.

use std::process::Stdio;
use std::time::Duration;

use openheim_e2e::{Reply, ToolCallSpec, bin_path};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::lifecycle::sdk_entry;
use super::support::TIMEOUT;
use crate::e2e::gateway::support::Server;

const TOKEN_VAR: &str = "BRIDGE_TEST_TOKEN";
const TOKEN: &str = "bridge-secret-1";

fn auth() -> String {
    format!("[server]\nauth_tokens = [\"{TOKEN}\"]\n")
}

fn script_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/acp-sdk/bridge.mjs")
}

/// The next observation of the script, by name (others are kept out).
async fn next_observation(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    what: &str,
) -> Value {
    loop {
        let line = tokio::time::timeout(TIMEOUT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {what:?} from the SDK script in time"))
            .unwrap()
            .unwrap_or_else(|| panic!("the SDK script ended before {what:?}"));
        if let Ok(value) = serde_json::from_str::<Value>(&line)
            && value["what"] == what
        {
            return value;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_relays_the_typescript_sdk_to_a_server_and_resumes_after_a_drop() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new(
                "write_file",
                json!({"path": "hello.txt", "content": "hello across the bridge\n"}),
            )
            .with_id("w1"),
        ]),
        Reply::text("I wrote hello.txt."),
        // The turn in flight when the connection is cut.
        Reply::text("too late").with_delay_ms(5000),
        Reply::text("Still here, same session."),
    ];
    let server = Server::start(script, &auth()).await;
    let workspace = server.install.workspace();
    let mut node = tokio::process::Command::new("node")
        .arg(script_path())
        .arg(sdk_entry())
        .arg(bin_path("openheim"))
        .arg(&workspace)
        .arg(server.process.addr())
        .arg(TOKEN_VAR)
        .current_dir(&workspace)
        .env(TOKEN_VAR, TOKEN)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node could not be started");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();

    assert_eq!(
        next_observation(&mut lines, "initialized").await["agent"],
        "openheim"
    );
    let first = next_observation(&mut lines, "first").await;
    assert_eq!(first["stopReason"], "end_turn", "{first}");
    assert_eq!(first["text"], "I wrote hello.txt.", "{first}");
    // The server's requests crossed the bridge back to the SDK client.
    let asked = first["asked"].to_string();
    assert!(asked.contains("session/request_permission"), "{first}");
    assert!(asked.contains("fs/write_text_file"), "{first}");
    assert_eq!(
        std::fs::read_to_string(workspace.join("hello.txt")).unwrap(),
        "hello across the bridge\n"
    );

    next_observation(&mut lines, "prompt_sent").await;
    // Cut once the slow turn reached the model: the prompt is in flight.
    let reached = async {
        while server.mock.request_count() < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(TIMEOUT, reached)
        .await
        .expect("the second prompt never reached the model");
    stdin.write_all(b"cut\n").await.unwrap();

    let in_flight = &next_observation(&mut lines, "in_flight").await["outcome"];
    assert_eq!(in_flight["code"], -32603, "{in_flight}");
    let message = in_flight["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("session/prompt was in flight when the connection to ws://127.0.0.1:"),
        "{in_flight}"
    );
    assert_eq!(in_flight["data"]["retryable"], true, "{in_flight}");

    let after = next_observation(&mut lines, "after").await;
    assert_eq!(
        after["outcome"]["answered"]["stopReason"], "end_turn",
        "{after}"
    );
    assert_eq!(after["text"], "Still here, same session.", "{after}");
    assert!(after["connections"].as_u64().unwrap() >= 2, "{after}");
    // The model saw the same conversation: the session was resumed, not a new one.
    let last = server.mock.request(server.mock.request_count() - 1);
    let history = serde_json::to_string(last.messages()).unwrap();
    assert!(history.contains("write hello.txt"), "{history}");
    assert!(history.contains("are you still there?"), "{history}");

    let exit = next_observation(&mut lines, "bridge_exit").await;
    assert_eq!(exit["code"], 0, "{exit}");
    let stderr = exit["stderr"].as_str().unwrap_or_default();
    assert!(stderr.contains("dropped"), "{stderr}");
    assert!(stderr.contains("1 session(s) resumed"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token was printed: {stderr}");
    let _ = node.wait().await;
}

/// Starts the bridge to `url` with `token` in the variable, sends
/// `initialize`, and returns its answer and (after stdin closes) stderr.
async fn initialize_through_bridge(url: &str, token: &str) -> (Value, String, i32) {
    initialize_through_bridge_with(url, token, &[]).await
}

async fn initialize_through_bridge_with(
    url: &str,
    token: &str,
    env: &[(&str, &std::path::Path)],
) -> (Value, String, i32) {
    let mut command = tokio::process::Command::new(bin_path("openheim"));
    for (name, value) in env {
        command.env(name, value);
    }
    let mut bridge = command
        .args(["acp", "--connect", url, "--token-env", TOKEN_VAR])
        .env(TOKEN_VAR, token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = bridge.stdin.take().unwrap();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": 1, "clientCapabilities": {}}});
    stdin
        .write_all(format!("{request}\n").as_bytes())
        .await
        .unwrap();
    let mut lines = BufReader::new(bridge.stdout.take().unwrap()).lines();
    let answer = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("no answer from the bridge")
        .unwrap()
        .expect("the bridge closed stdout");
    drop(stdin);
    let mut stderr = String::new();
    let mut err = bridge.stderr.take().unwrap();
    tokio::time::timeout(TIMEOUT, err.read_to_string(&mut stderr))
        .await
        .expect("the bridge did not exit")
        .unwrap();
    let status = bridge.wait().await.unwrap();
    (
        serde_json::from_str(&answer).unwrap(),
        stderr,
        status.code().unwrap_or(-1),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_says_when_the_token_is_refused_or_the_server_unreachable() {
    let server = Server::start(Vec::new(), &auth()).await;
    let url = server.ws_url("/acp");
    let (answer, stderr, code) = initialize_through_bridge(&url, "not-the-token").await;
    let expected = format!("the server refused the token in ${TOKEN_VAR}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&expected), "{answer}");
    assert!(message.contains("HTTP 401"), "{answer}");
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["error"]["data"]["retryable"], false, "{answer}");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("not-the-token"), "{stderr}");
    assert_eq!(code, 0, "{stderr}");

    // The right token gets the server's own answer.
    let (answer, stderr, _) = initialize_through_bridge(&url, TOKEN).await;
    assert_eq!(
        answer["result"]["agentInfo"]["name"], "openheim",
        "{answer}\n{stderr}"
    );

    // A port nothing listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/acp");
    let (answer, stderr, _) = initialize_through_bridge(&url, TOKEN).await;
    let expected = format!("cannot reach {url}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&expected), "{answer}");
    assert!(message.contains("refused"), "{answer}");
    assert_eq!(answer["error"]["data"]["retryable"], true, "{answer}");
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_refuses_clear_text_to_other_hosts_and_a_missing_token() {
    let run = |args: &[&str]| {
        std::process::Command::new(bin_path("openheim"))
            .args(args)
            .env_remove(TOKEN_VAR)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let plain = run(&["acp", "--connect", "ws://openheim.example.com/acp"]);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(plain.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ws:// would send the token and the conversation in clear text to openheim.example.com: use wss://"), "{stderr}");
    let unset = run(&[
        "acp",
        "--connect",
        "wss://openheim.example.com/acp",
        "--token-env",
        TOKEN_VAR,
    ]);
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert_eq!(unset.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--token-env {TOKEN_VAR}: ${TOKEN_VAR} is not set or is empty"
        )),
        "{stderr}"
    );
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl could not be started (apt-get install openssl)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A test CA and a certificate for `localhost`/127.0.0.1 signed by it:
/// (ca.pem, leaf.pem, leaf.key) in `dir`.
fn test_certificates(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=openheim test CA",
    ]);
    openssl(dir, &ca);
    let mut leaf = vec!["req"];
    leaf.extend(ec);
    leaf.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &leaf);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_speaks_tls_with_the_trusted_roots_and_says_when_a_certificate_is_not() {
    let server = Server::start(Vec::new(), &auth()).await;
    let certs = tempfile::tempdir().unwrap();
    test_certificates(certs.path());
    let mut terminator = tokio::process::Command::new("node")
        .arg(script_path().with_file_name("tls-terminator.mjs"))
        .arg(certs.path().join("leaf.pem"))
        .arg(certs.path().join("leaf.key"))
        .arg(server.process.addr())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node could not be started");
    let mut lines = BufReader::new(terminator.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let port = ready.strip_prefix("listening on ").unwrap().to_owned();
    let url = format!("wss://localhost:{port}/acp");

    // The test CA is trusted when it is the system's roots (SSL_CERT_FILE).
    let ca = certs.path().join("ca.pem");
    let (answer, stderr, _) =
        initialize_through_bridge_with(&url, TOKEN, &[("SSL_CERT_FILE", &ca)]).await;
    assert_eq!(
        answer["result"]["agentInfo"]["name"], "openheim",
        "{answer}\n{stderr}"
    );

    // Another set of roots does not trust it.
    let leaf_only = certs.path().join("leaf.pem");
    let (answer, stderr, _) =
        initialize_through_bridge_with(&url, TOKEN, &[("SSL_CERT_FILE", &leaf_only)]).await;
    let expected = format!("TLS with {url} failed: ");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&expected), "{answer}");
    assert!(message.contains("certificate"), "{answer}");
    assert!(stderr.contains(&expected), "{stderr}");
    let _ = terminator.start_kill();
}
