//! What a web page, a remote client or a flood of half-open connections can
//! do to `openheim serve` (docs/security.md): DNS rebinding, client-supplied
//! stdio MCP servers, slow and idle connections, blank tokens, and the close
//! codes of protocol violations.

use std::time::Duration;

use openheim_e2e::install::stderr;
use openheim_e2e::{Install, MockLlm};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::support::{Framing, Server, WsClient};

/// GET `path` with exactly these `Host` and `Origin` headers.
async fn get_as(server: &Server, path: &str, host: &str, origin: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .get(server.url(path))
        .header("host", host);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_host_name_reaches_neither_rest_nor_sockets() {
    let server = Server::start(Vec::new(), "[server]\nallowed_hosts = [\"openheim.test\"]").await;
    let port = server.process.addr().rsplit(':').next().unwrap().to_owned();
    let evil_host = format!("evil.example:{port}");
    let evil_origin = format!("http://evil.example:{port}");
    // The attack: a page on evil.example, its name rebound to 127.0.0.1.
    let (status, body) = get_as(&server, "/api/config", &evil_host, Some(&evil_origin)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("host_not_allowed"), "{body}");
    let (status, _) = get_as(&server, "/api/sessions", &evil_host, None).await;
    assert_eq!(status, 403);
    let headers = [
        ("host", evil_host.as_str()),
        ("origin", evil_origin.as_str()),
    ];
    match WsClient::connect(&server.ws_url("/ws"), &headers, Framing::Envelope).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
    // A right host does not make a foreign origin acceptable.
    let local = format!("127.0.0.1:{port}");
    let (status, body) = get_as(&server, "/api/config", &local, Some(&evil_origin)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("origin_not_allowed"), "{body}");
    // What the gateway answers to: loopback names on its port, configured
    // names, and the page it serves itself.
    let localhost = format!("localhost:{port}");
    let own = format!("http://localhost:{port}");
    assert_eq!(
        get_as(&server, "/api/config", &localhost, Some(&own))
            .await
            .0,
        200
    );
    assert_eq!(get_as(&server, "/api/config", &local, None).await.0, 200);
    let configured = Some("https://openheim.test");
    assert_eq!(
        get_as(&server, "/api/config", "openheim.test", configured)
            .await
            .0,
        200
    );
    // Probes are answered whatever the name (they reveal nothing).
    assert_eq!(get_as(&server, "/healthz", &evil_host, None).await.0, 200);
}

/// Opens a connection from `source` (a loopback address) to the server.
async fn connect_from(source: [u8; 4], server: &Server) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    socket
        .connect(server.process.addr().parse().unwrap())
        .await
        .unwrap()
}

/// Whether the server closed `stream` within `within` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0_u8; 1024];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    });
    read.await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_idle_connections_are_closed_and_cannot_starve_others() {
    let limits =
        "[server]\nheader_timeout_secs = 1\nidle_timeout_secs = 2\nmax_pending_per_ip = 20";
    let server = Server::start(Vec::new(), limits).await;
    // An attacker at 127.0.0.2 opens many connections and never finishes a
    // request.
    let mut attack = Vec::new();
    for _ in 0..60 {
        let mut stream = connect_from([127, 0, 0, 2], &server).await;
        let _ = stream
            .write_all(b"GET /api/config HTTP/1.1\r\nHost: 127")
            .await;
        attack.push(stream);
    }
    // Beyond the per-address limit, connections are closed at once.
    let mut over = 0;
    for stream in attack.iter_mut().skip(20) {
        over += usize::from(closed_within(stream, Duration::from_millis(500)).await);
    }
    assert_eq!(over, 40, "connections over the per-address limit stay open");
    // Everyone else is served meanwhile.
    let started = std::time::Instant::now();
    assert_eq!(server.get("/healthz", None).await.0, 200);
    assert_eq!(server.get("/api/config", None).await.0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The pending ones are cut off after the header timeout.
    for stream in attack.iter_mut().take(20) {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "a half-sent request stayed open"
        );
    }
    // A connection that sends nothing at all, likewise.
    let mut silent = connect_from([127, 0, 0, 3], &server).await;
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    // A finished request's connection is closed once idle.
    let mut idle = connect_from([127, 0, 0, 4], &server).await;
    let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    idle.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0_u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let quiet = std::time::Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(6)).await,
        "an idle connection stayed open"
    );
    assert!(
        quiet.elapsed() >= Duration::from_millis(1500),
        "closed before the idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_token_is_refused_at_start_up() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    let output = install
        .openheim_with_env(
            &["serve", "--host", "0.0.0.0", "--port", "0"],
            &[("OPENHEIM_SERVER__AUTH_TOKENS", " ")],
        )
        .await;
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(error.contains("server.auth_tokens[0]"), "{error}");
    assert!(error.contains("must not be blank"), "{error}");
}

/// The close code the server answers `frame` (raw bytes, after the
/// handshake) with on `/acp`.
async fn close_code_after(server: &Server, frame: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(server.process.addr()).await.unwrap();
    let handshake = format!(
        "GET /acp HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.process.addr()
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut byte = [0_u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        response.push(byte[0]);
    }
    assert!(
        response.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    stream.write_all(frame).await.unwrap();
    // The server's frames: skip to its close frame.
    let read = async {
        loop {
            let mut head = [0_u8; 2];
            stream.read_exact(&mut head).await?;
            let len = usize::from(head[1] & 0x7f);
            let mut payload = vec![0_u8; len];
            stream.read_exact(&mut payload).await?;
            if head[0] & 0x0f == 0x8 {
                return Ok::<_, std::io::Error>(match payload.len() {
                    0 | 1 => 1005,
                    _ => u16::from_be_bytes([payload[0], payload[1]]),
                });
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("no close frame")
        .unwrap_or(1006)
}

/// A masked client frame with first byte `head` and `payload`.
fn frame(head: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1_u8, 2, 3, 4];
    let mut bytes = vec![head, 0x80 | u8::try_from(payload.len()).unwrap()];
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_the_codes_of_rfc_6455() {
    let server = Server::start(Vec::new(), "").await;
    // RSV1 set without an extension that defines it.
    assert_eq!(close_code_after(&server, &frame(0xC1, b"{}")).await, 1002);
    // An unknown opcode.
    assert_eq!(close_code_after(&server, &frame(0x83, b"x")).await, 1002);
    // A text frame that is not UTF-8.
    assert_eq!(
        close_code_after(&server, &frame(0x81, &[0xff, 0xfe, 0x41])).await,
        1007
    );
}

/// `session/new` over `/acp` with a stdio MCP server that would write
/// `marker` outside the workspace and record its environment.
async fn new_session_with_stdio_server(
    server: &Server,
    outside: &std::path::Path,
) -> serde_json::Value {
    let workspace = server.install.workspace();
    let script = format!(
        "touch {}/escaped; env > env.txt; touch inside.txt; exec {} stdio",
        outside.display(),
        openheim_e2e::bin_path("test-mcp-server").display()
    );
    let mut client = server.connect("/acp", Framing::Bare).await;
    let init = client
        .request("initialize", json!({"protocolVersion": 1}))
        .await;
    assert_eq!(init["result"]["protocolVersion"], 1, "{init}");
    let servers =
        json!([{"name": "shell", "command": "/bin/sh", "args": ["-c", script], "env": []}]);
    let created = client
        .request(
            "session/new",
            json!({"cwd": workspace, "mcpServers": servers}),
        )
        .await;
    assert!(created["result"]["sessionId"].is_string(), "{created}");
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_client_cannot_start_processes_through_mcp_servers() {
    let server = Server::start(Vec::new(), "[tools]\nsandbox = \"enforce\"").await;
    let outside = tempfile::tempdir().unwrap();
    let created = new_session_with_stdio_server(&server, outside.path()).await;
    let status = &created["result"]["_meta"]["openheim"]["mcpServers"][0];
    assert_eq!(status["state"], "failed", "{created}");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("allow_client_stdio_mcp"),
        "{created}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !server.install.workspace().join("inside.txt").exists(),
        "the command ran"
    );
    assert!(!outside.path().join("escaped").exists(), "the command ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_client_stdio_server_is_confined_like_the_shell() {
    let secrets = [
        ("OPENAI_API_KEY", "canary-mcp-91c2"),
        ("GITHUB_TOKEN", "canary-mcp-7d10"),
    ];
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    let extra = "[server]\nallow_client_stdio_mcp = true\n[tools]\nsandbox = \"enforce\"";
    let server = Server::start_with(mock, install, extra, &secrets).await;
    // Outside the workspace and the temp directories.
    let outside = crate::e2e::scratch::outside_temp();
    let created = new_session_with_stdio_server(&server, outside.path()).await;
    let status = &created["result"]["_meta"]["openheim"]["mcpServers"][0];
    assert_ne!(status["state"], "failed", "{created}");
    let workspace = server.install.workspace();
    let env_file = workspace.join("env.txt");
    tokio::time::timeout(Duration::from_secs(20), async {
        while !workspace.join("inside.txt").exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the server did not start in the workspace");
    assert!(
        !outside.path().join("escaped").exists(),
        "it wrote outside the workspace"
    );
    let env = std::fs::read_to_string(env_file).unwrap();
    for (name, value) in secrets {
        assert!(!env.contains(value), "{name} reached the MCP server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_shell_no_stdio_server_starts_even_when_allowed() {
    let extra = "allow_shell = false\n[server]\nallow_client_stdio_mcp = true";
    let server = Server::start(Vec::new(), extra).await;
    let outside = tempfile::tempdir().unwrap();
    let created = new_session_with_stdio_server(&server, outside.path()).await;
    let status = &created["result"]["_meta"]["openheim"]["mcpServers"][0];
    if status["state"] == "failed" {
        assert!(
            status["error"].as_str().unwrap().contains("allow_shell"),
            "{created}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !server.install.workspace().join("inside.txt").exists(),
        "{created}"
    );
    assert!(!outside.path().join("escaped").exists(), "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_statuses_never_show_a_key_in_their_url() {
    let secret = "s3cr3t-in-an-mcp-url-77a0";
    let extra = format!("[mcp_servers.remote]\nurl = \"http://127.0.0.1:1/mcp?key={secret}\"");
    let server = Server::start(Vec::new(), &extra).await;
    let failed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (_, body) = server.get("/api/mcp-servers", None).await;
            if body.to_string().contains("failed") {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server never failed");
    assert!(!failed.to_string().contains(secret), "{failed}");
    let (_, config) = server.get("/api/config", None).await;
    assert!(!config.to_string().contains(secret), "{config}");
    assert!(!server.process.stderr_tail().contains(secret));
}
