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
    /// `None` when the shared Redis on 6379 is used, or while stopped.
    child: Option<Child>,
    /// What restarts it: `None` for the shared Redis.
    own: Option<Own>,
    url: String,
    prefix: String,
    _dir: tempfile::TempDir,
}

/// A server of our own: its binary, port and whether it keeps its data.
struct Own {
    binary: PathBuf,
    port: u16,
    durable: bool,
}

impl RedisServer {
    /// A server without persistence: a restart loses its data.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A server that writes every command to its append-only file before
    /// answering, so its data survives [`RedisServer::stop`] (a SIGKILL) and
    /// [`RedisServer::restart`]. Panics on a machine without `redis-server`
    /// (the shared Redis cannot be stopped).
    pub fn start_durable() -> Self {
        let server = Self::start_with(true);
        assert!(
            server.own.is_some(),
            "restarting Redis needs the redis-server binary on PATH"
        );
        server
    }

    fn start_with(durable: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique_prefix();
        let Some(binary) = redis_server_binary() else {
            return Self {
                child: None,
                own: None,
                url: FALLBACK_URL.to_owned(),
                prefix,
                _dir: dir,
            };
        };
        let mut failures = Vec::new();
        // A free port can be taken between our probe and the server's bind.
        for _ in 0..5 {
            let port = free_port();
            match spawn(&binary, port, &dir, durable) {
                Ok(child) => {
                    return Self {
                        child: Some(child),
                        own: Some(Own {
                            binary,
                            port,
                            durable,
                        }),
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

    /// Kills the server (SIGKILL: its clients' connections drop at once).
    pub fn stop(&mut self) {
        assert!(self.own.is_some(), "the shared Redis cannot be stopped");
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on its port (stopping it first if it
    /// runs); a durable one comes back with its data.
    pub fn restart(&mut self) {
        self.stop();
        let own = self.own.as_ref().unwrap();
        let mut last = String::new();
        // The port was ours a moment ago; a few tries cover a slow release.
        for _ in 0..20 {
            match spawn(&own.binary, own.port, &self._dir, own.durable) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(reason) => last = reason,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart: {last}");
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
fn spawn(
    binary: &PathBuf,
    port: u16,
    dir: &tempfile::TempDir,
    durable: bool,
) -> Result<Child, String> {
    let persistence: &[&str] = if durable {
        &[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
    } else {
        &["--save", "", "--appendonly", "no"]
    };
    let mut child = Command::new(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(persistence)
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
