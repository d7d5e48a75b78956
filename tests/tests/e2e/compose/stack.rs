//! The running compose stack as the scenarios see it: its addresses, its
//! containers (driven with the `podman` CLI) and the fixtures' control
//! ports.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e::gateway::support::{Framing, WsClient};

/// How long the stack may take to be ready again after a container restart.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The five openheim services, by compose service name.
pub const SERVICES: [&str; 5] = [
    "gateway",
    "agent-loop",
    "llm-proxy",
    "tool-executor",
    "mcp-broker",
];

pub struct Stack {
    /// `http://127.0.0.1:PORT` of the gateway.
    pub gateway: String,
    pub token: String,
    llm_control: String,
    otlp_control: String,
    project: String,
    http: reqwest::Client,
}

/// Runs `podman args…`; its stdout, trimmed. Panics when it fails.
fn podman<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let output = Command::new("podman")
        .args(args)
        .output()
        .expect("podman runs");
    assert!(
        output.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: these scenarios run under `make compose-e2e`")
    })
}

impl Stack {
    pub fn from_env() -> Self {
        Self {
            gateway: var("COMPOSE_E2E_GATEWAY"),
            token: var("COMPOSE_E2E_TOKEN"),
            llm_control: var("COMPOSE_E2E_LLM"),
            otlp_control: var("COMPOSE_E2E_OTLP"),
            project: var("COMPOSE_E2E_PROJECT"),
            http: reqwest::Client::new(),
        }
    }

    /// The container of compose service `service` (podman-compose names
    /// them `<project>_<service>_1`).
    pub fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    /// Runs `podman args…`; its stdout, trimmed. Panics when it fails.
    pub fn podman(&self, args: &[&str]) -> String {
        podman(args)
    }

    /// `podman args…` on a blocking thread, for commands that take a while
    /// while the scenario keeps sending requests.
    pub fn podman_in_background(&self, args: &[&str]) -> tokio::task::JoinHandle<String> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || podman(&args))
    }

    /// When `service`'s container last started (changes on every restart).
    pub fn started_at(&self, service: &str) -> String {
        self.podman(&[
            "inspect",
            "--format",
            "{{.State.StartedAt}}",
            &self.container(service),
        ])
    }

    /// Waits until the gateway's `/readyz` answers 200 (every backend
    /// reachable); how long that took.
    pub async fn wait_ready(&self) -> Duration {
        let start = Instant::now();
        let url = format!("{}/readyz", self.gateway);
        loop {
            let ok = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "the stack was not ready within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A `/ws` socket with the bearer token.
    pub async fn connect(&self) -> WsClient {
        let url = format!("{}/ws", self.gateway.replacen("http", "ws", 1));
        let auth = format!("Bearer {}", self.token);
        WsClient::connect(&url, &[("authorization", &auth)], Framing::Envelope)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
    }

    /// `GET path` on the gateway with the token: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.gateway))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The last user text of every completion request the mock received.
    pub async fn llm_requests(&self) -> Vec<String> {
        let url = format!("{}/requests", self.llm_control);
        let list: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["last_user_text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until the mock received a request whose last user text is
    /// `text`.
    pub async fn wait_for_llm_request(&self, text: &str) {
        let start = Instant::now();
        while !self.llm_requests().await.iter().any(|t| t == text) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the model never saw {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The protocol violations the mock saw.
    pub async fn llm_violations(&self) -> Vec<Value> {
        let url = format!("{}/violations", self.llm_control);
        let list: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array().cloned().unwrap_or_default()
    }

    /// Every span the OTLP receiver has.
    pub async fn spans(&self) -> Vec<Value> {
        let url = format!("{}/spans", self.otlp_control);
        let list: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array().cloned().unwrap_or_default()
    }
}

/// The text of the messages of a stored session (`GET /api/sessions/{id}`),
/// one string per message: `role: text…`.
pub fn transcript(session: &Value) -> Vec<String> {
    session["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages: {session}"))
        .iter()
        .map(|m| {
            let parts: Vec<String> = m["content"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| match c["type"].as_str() {
                    Some("text") => c["text"].as_str().unwrap_or_default().to_owned(),
                    Some("tool_call") => format!("call {}", c["name"].as_str().unwrap_or("")),
                    Some("tool_result") => "result".to_owned(),
                    _ => String::new(),
                })
                .collect();
            format!("{}: {}", m["role"].as_str().unwrap_or("?"), parts.join(" "))
        })
        .collect()
}
