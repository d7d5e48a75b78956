//! Turn-overhead benchmark: the real `openheim run` against a zero-latency
//! mock provider, in-process and with the services as separate processes.
//!
//! Task A: 4 LLM calls and 3 tool calls (write_file, read_file,
//! execute_command, then the answer). Task B: a one-call answer.
//! Prints a markdown table (median / p90 wall time, peak RSS of the CLI
//! process). Build release binaries first (`make bench` does).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};
use openheim_e2e::install::timed;
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};
use serde_json::json;

const RUNS: usize = 30;

fn task_a() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            json!({"path": "notes.txt", "content": "benchmark\n"}),
        )]),
        Reply::tool_calls(vec![ToolCallSpec::new(
            "read_file",
            json!({"path": "notes.txt"}),
        )]),
        Reply::tool_calls(vec![ToolCallSpec::new(
            "execute_command",
            json!({"command": "wc -c notes.txt"}),
        )]),
        Reply::text("notes.txt holds 10 bytes."),
    ]
}

fn task_b() -> Vec<Reply> {
    vec![Reply::text("Hello! How can I help?")]
}

/// Peak resident set of any child waited for so far, in MiB.
fn children_peak_rss_mib() -> f64 {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    usage.max_rss() as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn measure(
    install: &Install,
    mock: &MockLlm,
    script: fn() -> Vec<Reply>,
) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..=RUNS {
        for reply in script() {
            mock.push_reply(reply);
        }
        let (output, took) = timed(install, &["run", "benchmark task"]).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if i > 0 {
            times.push(took); // the first run warms the page cache
        }
    }
    mock.assert_no_violations();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.9))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    println!("| scenario | median | p90 | peak RSS (CLI) |");
    println!("|---|---|---|---|");
    // One-call answer first: peak RSS only grows, so this order isolates it.
    let (b50, b90) = measure(&install, &mock, task_b).await;
    let rss_b = children_peak_rss_mib();
    let (a50, a90) = measure(&install, &mock, task_a).await;
    let rss_a = children_peak_rss_mib();
    println!(
        "| in-process, 4 LLM calls + 3 tools | {} | {} | {rss_a:.1} MiB |",
        ms(a50),
        ms(a90)
    );
    println!(
        "| in-process, one-call answer | {} | {} | {rss_b:.1} MiB |",
        ms(b50),
        ms(b90)
    );
    let cluster = install.start_cluster(&mock, "").await;
    let (d50, d90) = measure(&install, &mock, task_a).await;
    println!(
        "| distributed (4 service processes), 4 LLM calls + 3 tools | {} | {} | — |",
        ms(d50),
        ms(d90)
    );
    drop(cluster);
    let extra = d50.saturating_sub(a50);
    println!("\nDistributed minus in-process (median): {}", ms(extra));
}
