//! A Redis for one test: its own `redis-server` on a free port (no
//! persistence, files in a temporary directory), or, on a machine without
//! the binary, the Redis on 127.0.0.1:6379. Either way the test gets a key
//! prefix of its own, so tests never see each other's keys.
//!
//! Its own crate so that agent-loop's integration tests and the end-to-end
//! scenarios share it (a service crate cannot depend on `openheim-e2e`).

// Test support: failing fast with a clear message is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const FALLBACK_URL: &str = "redis://127.0.0.1:6379";

pub struct RedisServer {
    /// `None` when the shared Redis on 6379 is used.
    child: Option<Child>,
    url: String,
    prefix: String,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique_prefix();
        let Some(binary) = redis_server_binary() else {
            return Self {
                child: None,
                url: FALLBACK_URL.to_owned(),
                prefix,
                _dir: dir,
            };
        };
        let mut failures = Vec::new();
        // A free port can be taken between our probe and the server's bind.
        for _ in 0..5 {
            let port = free_port();
            match spawn(&binary, port, &dir) {
                Ok(child) => {
                    return Self {
                        child: Some(child),
                        url: format!("redis://127.0.0.1:{port}"),
                        prefix,
                        _dir: dir,
                    };
                }
                Err(reason) => failures.push(reason),
            }
        }
        panic!("redis-server did not start:\n{}", failures.join("\n"));
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `test-<pid>-<nanoseconds>-<n>`: unique across the processes nextest runs.
fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test-{}-{nanos}-{n}", std::process::id())
}

fn redis_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server and waits for its "Ready to accept connections" line.
fn spawn(binary: &PathBuf, port: u16, dir: &tempfile::TempDir) -> Result<Child, String> {
    let mut child = Command::new(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    // Reads until the server exits, so it never writes into a closed pipe.
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut ready = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !ready && line.contains("Ready to accept connections") {
                ready = true;
                let _ = tx.send(Ok(()));
            } else if !ready {
                seen.push(line);
            }
        }
        if !ready {
            let _ = tx.send(Err(seen.join("\n")));
        }
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(())) => Ok(child),
        Ok(Err(output)) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("port {port}: {output}"))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("port {port}: not ready within {READY_TIMEOUT:?}"))
        }
    }
}
