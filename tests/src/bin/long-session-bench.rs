//! Long-session benchmark: one `openheim acp` process (stdio, release
//! build) holds one session for N turns (default 1,000) against the
//! zero-latency mock provider. Every 100 turns it prints the process's RSS,
//! the stored history's size and the median and p90 wall time of the last
//! 100 turns, as a markdown table. Each turn adds about 0.7 KB of history
//! (a short prompt, a ~600-character answer), as a chat would.
//!
//! `cargo run --release -p openheim-e2e --bin long-session-bench [TURNS]`
//! after `cargo build --release --workspace --bins` (`make bench` does).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use openheim_e2e::{Install, MockLlm, Reply, bin_path};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const STEP: usize = 100;

struct Agent {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Agent {
    fn spawn(install: &Install) -> Self {
        let mut child = Command::new(bin_path("openheim"))
            .arg("acp")
            .current_dir(install.workspace())
            .env("OPENHEIM_HOME", install.home())
            .env("HOME", install.home().parent().unwrap())
            .env_remove("OPENHEIM_CONFIG")
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("openheim acp could not be started");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Sends a request; reads (and drops) updates until its response.
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        loop {
            let line = self.lines.next_line().await.unwrap().expect("agent exited");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == json!(id) && message.get("method").is_none() {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return message["result"].clone();
            }
        }
    }

    fn rss_mib(&self) -> f64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib / 1024.0
    }
}

fn answer(turn: usize) -> String {
    let sentence = "The answer to this question takes a paragraph of plain prose. ";
    format!("Turn {turn}. {}", sentence.repeat(9))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let turns: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("TURNS is a number"))
        .unwrap_or(1000);
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "[memory]\nenabled = false\n");
    let mut agent = Agent::spawn(&install);
    agent
        .request(
            0,
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {}}),
        )
        .await;
    let session = agent
        .request(
            1,
            "session/new",
            json!({"cwd": install.workspace(), "mcpServers": []}),
        )
        .await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = install.history_file(&session);
    println!("| turns | RSS | history | median turn | p90 turn |");
    println!("|---|---|---|---|---|");
    println!("| 0 | {:.1} MiB | 0 KB | — | — |", agent.rss_mib());
    let mut times = Vec::with_capacity(STEP);
    for turn in 1..=turns {
        mock.push_reply(Reply::text(answer(turn)));
        let prompt = format!("Question number {turn}: explain the next step, briefly please.");
        let started = Instant::now();
        agent
            .request(
                turn as u64 + 1,
                "session/prompt",
                json!({"sessionId": session, "prompt": [{"type": "text", "text": prompt}]}),
            )
            .await;
        times.push(started.elapsed());
        mock.forget_requests();
        if turn % STEP == 0 || turn == turns {
            times.sort();
            let size = std::fs::metadata(&history).map(|m| m.len()).unwrap_or(0);
            println!(
                "| {turn} | {:.1} MiB | {} KB | {} | {} |",
                agent.rss_mib(),
                size / 1024,
                ms(times[times.len() / 2]),
                ms(times[(times.len() * 9) / 10]),
            );
            times.clear();
        }
    }
    mock.assert_no_violations();
}
