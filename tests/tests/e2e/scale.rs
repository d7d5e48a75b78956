//! Horizontal scale and faults with real processes: two agent-loop replicas
//! over one real Redis, a standalone gateway in front of both, the mock LLM.
//! Turns are spread over the replicas; a replica killed mid-turn leaves its
//! session usable on the other within seconds, and the client is told when
//! to retry; a Redis outage during a turn loses no reply and keeps the
//! session locked no longer than the turn.

use std::time::{Duration, Instant};

use openheim_e2e::{Install, MockLlm, RedisServer, Reply, ServiceProcess};
use openheim_proto::agent_loop::v1::ApprovalMode;
use openheim_proto::agent_loop::v1::turn_event::Event;
use openheim_proto::common::v1::StopReason;
use serde_json::{Value, json};

use super::gateway::support::{Framing, Server, WsClient};
use super::redis_store::{
    REPLICA_B_IDENTITY, Replicas, busy_or_started, load, new_session, start_turn,
};

/// A slowly streamed answer: about 3 s of chunks.
fn slow_answer() -> Reply {
    Reply::text("a long and slow answer, streamed in many small pieces ".repeat(12))
        .chunk_delay_ms(50)
}

/// A gateway process in front of both replicas (`services.agent_loop`
/// lists them), as a [`Server`] the gateway test support drives.
async fn gateway(install: Install, mock: MockLlm, replicas: &Replicas) -> Server {
    let config = install.root.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "default_provider = \"mock\"\nwork_dir = \"{}\"\n\n[providers.mock]\nkind = \"openai_compatible\"\napi_base = \"{}\"\ndefault_model = \"mock-model\"\n\n[services]\nagent_loop = \"{}, {}\"\n",
            install.workspace().display(),
            mock.base_url(),
            replicas.a.addr(),
            replicas.b.addr()
        ),
    )
    .unwrap();
    let home = install.home();
    let env = [
        ("OPENHEIM_CONFIG", config.to_str().unwrap()),
        ("OPENHEIM_HOME", home.to_str().unwrap()),
        ("RUST_LOG", "warn"),
    ];
    let process = ServiceProcess::spawn("openheim-gateway", &[], &env).await;
    Server {
        mock,
        install,
        process,
    }
}

/// Sends one prompt and reads until its answer: the text streamed and the
/// answer (a result or an error object).
async fn prompt(client: &mut WsClient, session: &str, text: &str) -> (String, Value) {
    let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]});
    let id = client.send_request("session/prompt", params).await;
    let mut streamed = String::new();
    loop {
        let message = client.next_agent().await;
        if message["method"] == "session/update" {
            let update = &message["params"]["update"];
            if update["sessionUpdate"] == "agent_message_chunk" {
                streamed.push_str(update["content"]["text"].as_str().unwrap_or_default());
            }
        } else if message["id"] == id && message.get("method").is_none() {
            return (streamed, message);
        }
    }
}

/// Which replica served LLM request `i`, by the system prompt it sent.
fn served_by_b(mock: &MockLlm, i: usize) -> bool {
    mock.system_prompt(i)
        .is_some_and(|prompt| prompt.contains(REPLICA_B_IDENTITY))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_through_one_gateway_are_spread_over_both_replicas() {
    const TURNS: usize = 8;
    let mock = MockLlm::start(
        (0..TURNS)
            .map(|i| Reply::text(format!("answer {i}")))
            .collect(),
    )
    .await;
    let install = Install::new(&mock, "");
    let redis = RedisServer::start();
    let replicas = Replicas::start_apart(&install, &mock, &redis, 10).await;
    let server = gateway(install, mock, &replicas).await;
    let mut client = server.connect("/acp", Framing::Bare).await;
    let session = client.open_session(&server.install.workspace()).await;
    for i in 0..TURNS {
        let (text, answer) = prompt(&mut client, &session, &format!("question {i}")).await;
        assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");
        assert_eq!(text, format!("answer {i}"));
    }
    let on_b = (0..TURNS).filter(|&i| served_by_b(&server.mock, i)).count();
    assert!(
        (2..=TURNS - 2).contains(&on_b),
        "{on_b} of {TURNS} turns ran on replica B"
    );
    server.mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_turn_leaves_the_session_usable_on_the_other_within_seconds() {
    const LEASE_TTL: Duration = Duration::from_secs(3);
    let mock = MockLlm::start(vec![slow_answer(), Reply::text("recovered")]).await;
    let install = Install::new(&mock, "");
    let redis = RedisServer::start();
    let mut replicas = Replicas::start_apart(&install, &mock, &redis, LEASE_TTL.as_secs()).await;
    let server = gateway(install, mock, &replicas).await;
    let mut client = server.connect("/acp", Framing::Bare).await;
    let session = client.open_session(&server.install.workspace()).await;

    let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": "talk"}]});
    let id = client.send_request("session/prompt", params).await;
    // The reply has started streaming: kill (SIGKILL) the replica running it.
    loop {
        let message = client.next_agent().await;
        if message["params"]["update"]["sessionUpdate"] == "agent_message_chunk" {
            break;
        }
    }
    if served_by_b(&server.mock, 0) {
        replicas.b.kill().await;
    } else {
        replicas.a.kill().await;
    }
    let killed = Instant::now();
    let lost = loop {
        let message = client.next_agent().await;
        if message["id"] == id && message.get("method").is_none() {
            break message;
        }
    };
    let error = &lost["error"];
    assert_eq!(error["data"]["retryable"], true, "{lost}");
    let text = error["message"].as_str().unwrap();
    assert!(text.contains("send the prompt again"), "{text}");

    // The client retries as told; a refusal says how long to wait.
    let mut refusals = Vec::new();
    let answer = loop {
        let (streamed, answer) = prompt(&mut client, &session, "are you there?").await;
        if answer.get("result").is_some() {
            break (streamed, answer);
        }
        let wait = answer["error"]["data"]["retryAfterMs"].as_u64();
        let wait = wait.unwrap_or_else(|| panic!("a refusal without a wait: {answer}"));
        assert!(wait <= LEASE_TTL.as_millis() as u64, "{answer}");
        refusals.push(answer["error"]["message"].clone());
        assert!(killed.elapsed() < Duration::from_secs(15), "{refusals:?}");
        tokio::time::sleep(Duration::from_millis(wait.clamp(50, 500))).await;
    };
    let usable_after = killed.elapsed();
    assert!(
        usable_after <= LEASE_TTL + Duration::from_secs(2),
        "usable again only after {usable_after:?}: {refusals:?}"
    );
    assert_eq!(answer.0, "recovered");
    assert_eq!(answer.1["result"]["stopReason"], "end_turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_during_a_turn_loses_no_reply_and_leaves_the_session_free() {
    let mock = MockLlm::start(vec![slow_answer(), Reply::text("next")]).await;
    let install = Install::new(&mock, "");
    let mut redis = RedisServer::start_durable();
    let replicas = Replicas::start_with(&install, &mock, &redis, 10, "").await;
    let session = new_session(&replicas.a, ApprovalMode::Auto).await;

    let mut turn = start_turn(&replicas.a, &session, "talk").await;
    loop {
        if let Event::TextDelta(_) = turn.next().await {
            break;
        }
    }
    // Redis goes away while the reply streams, and is back 3 s later
    // (after the reply has ended and wants to be stored).
    redis.stop();
    let redis = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(4));
        redis.restart();
        redis
    });
    let (events, stop) = turn.finish().await;
    let back = Instant::now();
    let _redis = redis.await.unwrap();
    assert_eq!(stop, StopReason::EndTurn);
    assert!(events.iter().any(|e| matches!(e, Event::TextDelta(_))));

    // The reply is stored, and the session is free at once, on either
    // replica.
    let loaded = load(&replicas.b, &session).await;
    assert_eq!(loaded.messages.len(), 2, "{:?}", loaded.messages);
    let mut next = busy_or_started(&replicas.b, &session, "and now?")
        .await
        .expect("the session stayed locked after the turn ended");
    assert!(back.elapsed() < Duration::from_secs(2));
    assert_eq!(next.finish().await.1, StopReason::EndTurn);
    assert_eq!(load(&replicas.a, &session).await.messages.len(), 4);
}
