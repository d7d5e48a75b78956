//! The Redis session store with real processes (docs/deployment.md): two
//! `openheim-agent-loop` replicas over one Redis, with llm-proxy,
//! tool-executor and mcp-broker as processes and the mock LLM. A session
//! moves between replicas with its history and remembered approvals; a turn
//! on one replica makes the session busy on the other; a replica killed
//! mid-turn loses no stored message and blocks the session only until its
//! lease expires.

use std::time::{Duration, Instant};

use futures::StreamExt;
use openheim_e2e::{Install, MockLlm, RedisServer, Reply, ServiceProcess, ToolCallSpec};
use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::agent_loop_client::AgentLoopClient;
use openheim_proto::agent_loop::v1::{
    ApprovalMode, CreateSessionRequest, Decision, ListSessionsRequest, LoadSessionRequest,
    LoadSessionResponse, PermissionDecision, StartTurn, TurnErrorKind, TurnEvent, TurnInput,
    turn_event::Event, turn_input::Input,
};
use openheim_proto::common::v1::{ContentBlock, StopReason, content_block::Block};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The system prompt of replica B started by [`Replicas::start_apart`].
pub(crate) const REPLICA_B_IDENTITY: &str = "You are replica B.";

/// The peers (one each) and two agent-loop replicas sharing one Redis.
pub(crate) struct Replicas {
    pub a: ServiceProcess,
    pub b: ServiceProcess,
    _peers: Vec<ServiceProcess>,
}

impl Replicas {
    async fn start(
        install: &Install,
        mock: &MockLlm,
        redis: &RedisServer,
        lease_ttl_secs: u64,
    ) -> Self {
        Self::start_with(install, mock, redis, lease_ttl_secs, "").await
    }

    /// Like [`Replicas::start`], with `extra` (whole tables) added to the
    /// replicas' configuration.
    pub(crate) async fn start_with(
        install: &Install,
        mock: &MockLlm,
        redis: &RedisServer,
        lease_ttl_secs: u64,
        extra: &str,
    ) -> Self {
        Self::start_inner(install, mock, redis, lease_ttl_secs, extra, false).await
    }

    /// Like [`Replicas::start`], with B's identity ([`REPLICA_B_IDENTITY`]
    /// in a data directory of its own) telling its turns apart from A's in
    /// the system prompts the mock receives.
    pub(crate) async fn start_apart(
        install: &Install,
        mock: &MockLlm,
        redis: &RedisServer,
        lease_ttl_secs: u64,
    ) -> Self {
        Self::start_inner(install, mock, redis, lease_ttl_secs, "", true).await
    }

    async fn start_inner(
        install: &Install,
        mock: &MockLlm,
        redis: &RedisServer,
        lease_ttl_secs: u64,
        extra: &str,
        apart: bool,
    ) -> Self {
        let home = install.home();
        let workspace = install.workspace();
        let base = format!(
            "default_provider = \"mock\"\nwork_dir = \"{}\"\ndata_dir = \"{}\"\n\n[providers.mock]\nkind = \"openai_compatible\"\napi_base = \"{}\"\ndefault_model = \"mock-model\"\n",
            workspace.display(),
            home.display(),
            mock.base_url()
        );
        let peers_config = install.root.path().join("peers.toml");
        std::fs::write(&peers_config, &base).unwrap();
        let home = home.to_str().unwrap();
        let env = [
            ("OPENHEIM_CONFIG", peers_config.to_str().unwrap()),
            ("OPENHEIM_HOME", home),
        ];
        let llm = ServiceProcess::spawn("openheim-llm-proxy", &[], &env).await;
        let tools = ServiceProcess::spawn("openheim-tool-executor", &[], &env).await;
        let mcp = ServiceProcess::spawn("openheim-mcp-broker", &[], &env).await;
        let loop_config = install.root.path().join("agent-loop.toml");
        std::fs::write(
            &loop_config,
            format!(
                "{base}\n[store]\nurl = \"{}\"\nprefix = \"{}\"\nlease_ttl_secs = {lease_ttl_secs}\n\n[services]\nllm_proxy = \"{}\"\ntool_executor = \"{}\"\nmcp_broker = \"{}\"\n{extra}\n",
                redis.url(),
                redis.prefix(),
                llm.url(),
                tools.url(),
                mcp.url()
            ),
        )
        .unwrap();
        let env = [
            ("OPENHEIM_CONFIG", loop_config.to_str().unwrap()),
            ("OPENHEIM_HOME", home),
        ];
        let a = ServiceProcess::spawn("openheim-agent-loop", &[], &env).await;
        let b = if apart {
            let home_b = install.root.path().join("home-b");
            std::fs::create_dir_all(home_b.join("skills")).unwrap();
            std::fs::write(home_b.join("system.md"), REPLICA_B_IDENTITY).unwrap();
            for skill in ["a.md", "b.md"] {
                std::fs::copy(
                    install.home().join("skills").join(skill),
                    home_b.join("skills").join(skill),
                )
                .unwrap();
            }
            let config_b = install.root.path().join("agent-loop-b.toml");
            let text = std::fs::read_to_string(&loop_config).unwrap().replace(
                &format!("data_dir = \"{home}\""),
                &format!("data_dir = \"{}\"", home_b.display()),
            );
            std::fs::write(&config_b, text).unwrap();
            let env = [
                ("OPENHEIM_CONFIG", config_b.to_str().unwrap()),
                ("OPENHEIM_HOME", home_b.to_str().unwrap()),
            ];
            ServiceProcess::spawn("openheim-agent-loop", &[], &env).await
        } else {
            ServiceProcess::spawn("openheim-agent-loop", &[], &env).await
        };
        Self {
            a,
            b,
            _peers: vec![llm, tools, mcp],
        }
    }
}

impl Replicas {
    /// The tool-executor the replicas share.
    pub(crate) fn tool_executor(&self) -> &ServiceProcess {
        &self._peers[1]
    }
}

pub(crate) fn client(replica: &ServiceProcess) -> AgentLoopClient<GrpcChannel> {
    AgentLoopClient::new(openheim_proto::transport::remote(&replica.addr()).unwrap())
}

pub(crate) async fn new_session(replica: &ServiceProcess, approval: ApprovalMode) -> String {
    let request = CreateSessionRequest {
        approval_mode: approval as i32,
        ..Default::default()
    };
    client(replica)
        .create_session(request)
        .await
        .unwrap()
        .into_inner()
        .id
}

pub(crate) async fn load(replica: &ServiceProcess, session_id: &str) -> LoadSessionResponse {
    let request = LoadSessionRequest {
        caller: None,
        session_id: session_id.to_owned(),
        mcp_servers: vec![],
    };
    client(replica)
        .load_session(request)
        .await
        .unwrap()
        .into_inner()
}

pub(crate) struct TurnHandle {
    inputs: mpsc::Sender<TurnInput>,
    events: tonic::Streaming<TurnEvent>,
}

pub(crate) async fn start_turn(
    replica: &ServiceProcess,
    session_id: &str,
    text: &str,
) -> TurnHandle {
    let (inputs, rx) = mpsc::channel(8);
    let start = StartTurn {
        session_id: session_id.to_owned(),
        prompt: vec![ContentBlock {
            block: Some(Block::Text(text.to_owned())),
        }],
        client_capabilities: None,
        ..StartTurn::default()
    };
    inputs
        .send(TurnInput {
            input: Some(Input::Start(start)),
        })
        .await
        .unwrap();
    let events = client(replica)
        .turn(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    TurnHandle { inputs, events }
}

impl TurnHandle {
    pub(crate) async fn next(&mut self) -> Event {
        tokio::time::timeout(EVENT_TIMEOUT, self.events.next())
            .await
            .expect("no turn event within 30 s")
            .expect("turn stream ended early")
            .unwrap()
            .event
            .unwrap()
    }

    /// Events until the turn ends; returns them and the stop reason.
    pub(crate) async fn finish(&mut self) -> (Vec<Event>, StopReason) {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Event::Ended(ended) => return (seen, ended.stop_reason()),
                Event::Error(e) => panic!("turn failed: {}", e.message),
                other => seen.push(other),
            }
        }
    }
}

/// Whether a turn started now is refused because the session is busy;
/// otherwise the turn runs and is returned.
pub(crate) async fn busy_or_started(
    replica: &ServiceProcess,
    session_id: &str,
    text: &str,
) -> Option<TurnHandle> {
    let mut turn = start_turn(replica, session_id, text).await;
    match turn.next().await {
        Event::Error(e) if e.kind() == TurnErrorKind::SessionBusy => None,
        Event::Started(_) => Some(turn),
        other => panic!("expected busy or started, got {other:?}"),
    }
}

/// A Chat message's text, whether its content is a string or text parts.
fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn roles(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["role"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_move_between_replicas_with_history_and_approvals() {
    let write = |id: &str, path: &str, content: &str| {
        Reply::tool_calls(vec![
            ToolCallSpec::new("write_file", json!({"path": path, "content": content})).with_id(id),
        ])
    };
    let script = vec![
        write("w1", "a.txt", "1"),
        Reply::text("wrote a"),
        write("w2", "b.txt", "2"),
        Reply::text("wrote b"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let redis = RedisServer::start();
    let replicas = Replicas::start(&install, &mock, &redis, 30).await;

    // Created and first used on A; "always" allow the write there.
    let session = new_session(&replicas.a, ApprovalMode::Ask).await;
    let mut turn = start_turn(&replicas.a, &session, "write a").await;
    let request = loop {
        if let Event::PermissionRequest(r) = turn.next().await {
            break r;
        }
    };
    let answer = PermissionDecision {
        request_id: request.request_id,
        decision: Decision::AllowAlways as i32,
    };
    turn.inputs
        .send(TurnInput {
            input: Some(Input::Permission(answer)),
        })
        .await
        .unwrap();
    assert_eq!(turn.finish().await.1, StopReason::EndTurn);

    // B has the whole session, and lists it.
    let loaded = load(&replicas.b, &session).await;
    assert_eq!(loaded.messages.len(), 4, "{:?}", loaded.messages);
    let info = loaded.session.unwrap();
    assert_eq!((info.title.as_str(), info.message_count), ("write a", 4));
    let listed = client(&replicas.b)
        .list_sessions(ListSessionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.sessions.iter().any(|s| s.id == session),
        "{listed:?}"
    );

    // B continues it: the model sees every earlier message, and the
    // "always" answer given on A holds on B (no question).
    let (events, stop) = start_turn(&replicas.b, &session, "write b")
        .await
        .finish()
        .await;
    assert_eq!(stop, StopReason::EndTurn);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::PermissionRequest(_))),
        "B asked again: {events:?}"
    );
    assert_eq!(
        std::fs::read_to_string(install.workspace().join("b.txt")).unwrap(),
        "2"
    );
    let seen_by_b = mock.request(2);
    let messages = seen_by_b.messages();
    assert_eq!(
        roles(messages),
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    assert_eq!(text_of(&messages[1]), "write a");
    assert_eq!(messages[3]["tool_call_id"], "w1");
    assert_eq!(text_of(&messages[4]), "wrote a");
    assert_eq!(text_of(&messages[5]), "write b");
    assert_eq!(load(&replicas.a, &session).await.messages.len(), 8);
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_replica_killed_mid_turn_loses_nothing_and_frees_the_session_after_the_lease_ttl() {
    // Short, so the scenario is quick; renewed every second while A lives.
    const LEASE_TTL: Duration = Duration::from_secs(3);
    let slow =
        Reply::text("a long and slow answer that is never finished ".repeat(10)).chunk_delay_ms(50);
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("read_file", json!({"path": "f.txt"})).with_id("r1"),
        ]),
        slow,
        Reply::text("recovered"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    std::fs::write(install.workspace().join("f.txt"), "file contents").unwrap();
    let redis = RedisServer::start();
    let mut replicas = Replicas::start(&install, &mock, &redis, LEASE_TTL.as_secs()).await;
    let session = new_session(&replicas.a, ApprovalMode::Auto).await;

    // A runs a turn: a tool round, then a slowly streamed answer.
    let mut turn_on_a = start_turn(&replicas.a, &session, "read it, then talk").await;
    loop {
        if let Event::TextDelta(_) = turn_on_a.next().await {
            break;
        }
    }
    // Meanwhile the session is busy for B.
    assert!(
        busy_or_started(&replicas.b, &session, "me too")
            .await
            .is_none(),
        "B ran a turn while A's was running"
    );

    // A dies mid-answer.
    replicas.a.kill().await;
    let killed = Instant::now();
    drop(turn_on_a);

    // Every message A had stored is there; the unfinished answer is not.
    let loaded = load(&replicas.b, &session).await;
    let stored: Vec<i32> = loaded.messages.iter().map(|m| m.role).collect();
    assert_eq!(stored.len(), 3, "{:?}", loaded.messages);
    let result = loaded.messages[2]
        .content
        .iter()
        .find_map(|b| match &b.block {
            Some(Block::ToolResult(r)) => Some(r),
            _ => None,
        });
    let result = result.expect("the tool result is stored");
    assert_eq!(result.tool_call_id, "r1");
    assert!(result.content.contains("file contents"), "{result:?}");

    // The dead replica's lease still holds the session...
    assert!(
        busy_or_started(&replicas.b, &session, "still busy?")
            .await
            .is_none(),
        "the lease vanished with its holder"
    );
    // ...until its TTL runs out; then B runs a turn on it.
    let mut turn_on_b = tokio::time::timeout(LEASE_TTL + Duration::from_secs(10), async {
        loop {
            if let Some(turn) = busy_or_started(&replicas.b, &session, "are you there?").await {
                return turn;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the session stayed busy long after the lease TTL");
    let waited = killed.elapsed();
    assert!(
        waited <= LEASE_TTL + Duration::from_secs(2),
        "freed only after {waited:?}"
    );
    let (events, stop) = turn_on_b.finish().await;
    assert_eq!(stop, StopReason::EndTurn);
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "recovered");
    // The model sees the history A stored, then B's prompt.
    let last = mock.request(mock.request_count() - 1);
    let messages = last.messages();
    assert_eq!(
        roles(messages),
        ["system", "user", "assistant", "tool", "user"]
    );
    assert_eq!(text_of(&messages[1]), "read it, then talk");
    assert_eq!(text_of(&messages[4]), "are you there?");
    assert_eq!(load(&replicas.b, &session).await.messages.len(), 5);
    mock.assert_no_violations();
}
