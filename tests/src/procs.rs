//! Finding the processes a command started, from outside: shell commands run
//! in their own PID namespace, where `$$` names nothing the test can see, so
//! a test gives its command a marker no other process carries and looks for
//! it in the command lines of every process.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A `sleep` of about `secs` seconds whose command line only this call's
/// processes carry: `(command, marker)`.
pub fn marked_sleep(secs: u32) -> (String, String) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let marker = format!("{secs}.{:07}{n:02}", std::process::id() % 10_000_000);
    (format!("sleep {marker}"), marker)
}

/// Live (not zombie) processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(marker) && !stat.contains(") Z")
        })
        .collect()
}

/// Waits until a process carrying `marker` runs; panics after `within`.
pub async fn wait_for_process(marker: &str, within: Duration) {
    tokio::time::timeout(within, async {
        while processes_with(marker).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no process with {marker:?} started"));
}

/// Waits until no process carries `marker`; panics after `within`.
pub async fn wait_until_none(marker: &str, within: Duration) {
    tokio::time::timeout(within, async {
        while !processes_with(marker).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("processes {:?} survived", processes_with(marker)));
}
