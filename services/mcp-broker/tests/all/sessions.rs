//! Per-session servers: attached for one session, invisible to others,
//! stopped when the session detaches.

use openheim_proto::mcp_broker::v1::{
    AttachSessionServersRequest, DetachSessionRequest, HttpTransport, ServerSpec, ServerState,
    StdioTransport, server_spec,
};
use serde_json::json;

use crate::support::{
    Client, WebServer, broker, call, http_server, statuses, tool_names, wait_connected,
};

fn http_spec(name: &str, url: &str) -> ServerSpec {
    ServerSpec {
        name: name.to_owned(),
        transport: Some(server_spec::Transport::Http(HttpTransport {
            url: url.to_owned(),
            headers: Default::default(),
        })),
    }
}

async fn attach(client: &Client, session_id: &str, servers: Vec<ServerSpec>) {
    let reply = client
        .clone()
        .attach_session_servers(AttachSessionServersRequest {
            session_id: session_id.to_owned(),
            servers,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        reply
            .servers
            .iter()
            .all(|s| s.session_id == session_id && s.state != ServerState::Unspecified as i32),
        "{:?}",
        reply.servers
    );
}

async fn detach(client: &Client, session_id: &str) {
    client
        .clone()
        .detach_session(DetachSessionRequest {
            session_id: session_id.to_owned(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_session_sees_global_servers_and_only_its_own() {
    let global = WebServer::start().await;
    let own = WebServer::start().await;
    let client = broker(vec![("shared", http_server(&global.url, &[]))]);
    attach(&client, "s1", vec![http_spec("mine", &own.url)]).await;
    wait_connected(&client, "s1", "mine").await;
    wait_connected(&client, "s1", "shared").await;

    let s1 = tool_names(&client, "s1").await;
    assert!(s1.contains(&"mine__echo".to_owned()), "{s1:?}");
    assert!(s1.contains(&"shared__echo".to_owned()), "{s1:?}");
    let s2 = tool_names(&client, "s2").await;
    assert!(!s2.iter().any(|n| n.starts_with("mine__")), "{s2:?}");
    assert!(s2.contains(&"shared__echo".to_owned()), "{s2:?}");

    let reply = call(&client, "s1", "mine__echo", json!({"text": "own"}), 0).await;
    assert_eq!(reply.output, "echo: own");
    let other = call(&client, "s2", "mine__echo", json!({"text": "own"}), 0).await;
    assert!(other.is_error, "another session cannot reach it");

    detach(&client, "s1").await;
    let names: Vec<String> = statuses(&client, "s1")
        .await
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["shared"]);
    let gone = call(&client, "s1", "mine__echo", json!({"text": "own"}), 0).await;
    assert!(gone.is_error);
}

#[tokio::test]
async fn a_session_server_named_like_a_global_one_gets_distinct_names() {
    let global = WebServer::start().await;
    let own = WebServer::start().await;
    let client = broker(vec![("web", http_server(&global.url, &[]))]);
    attach(&client, "s", vec![http_spec("web", &own.url)]).await;
    let all = async {
        loop {
            let states = statuses(&client, "s").await;
            if states
                .iter()
                .all(|s| s.state == ServerState::Connected as i32)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(crate::support::PATIENCE, all)
        .await
        .unwrap();
    let names = tool_names(&client, "s").await;
    let echoes: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("web__echo"))
        .collect();
    assert_eq!(echoes.len(), 2, "{names:?}");
    assert_eq!(
        echoes[0], "web__echo",
        "the global server keeps the plain name"
    );
    assert!(names.iter().all(|n| n.len() <= 64));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn detaching_kills_the_session_s_processes() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // Never answers `initialize`; the long limit keeps it alive until detach.
    let script = format!("echo $$ > {}; exec sleep 3600", pid_file.display());
    let mut config = crate::support::config(Vec::new());
    config.initialize_timeout = std::time::Duration::from_secs(3600);
    let client = crate::support::broker_with(config);
    let spec = ServerSpec {
        name: "sleepy".to_owned(),
        transport: Some(server_spec::Transport::Stdio(StdioTransport {
            command: "sh".to_owned(),
            args: vec!["-c".to_owned(), script],
            env: Default::default(),
            cwd: String::new(),
            ..Default::default()
        })),
    };
    attach(&client, "s", vec![spec]).await;
    let pid = crate::support::wait_for_pid_file(&pid_file).await;
    assert!(crate::support::is_alive(pid));
    detach(&client, "s").await;
    crate::support::wait_dead(pid).await;
}
