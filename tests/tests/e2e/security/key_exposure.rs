//! A model must not get a secret of openheim's environment back through the
//! shell: not from `/proc/$PPID/environ`, not from the environment of any
//! other process of the same user, not from the memory of the process that
//! holds the provider key.

use std::path::Path;

use openheim_e2e::install::{Install, stderr};
use openheim_e2e::{MockLlm, Reply, ServiceProcess, ToolCallSpec, bin_path};
use serde_json::json;

/// Three secrets, each where a user keeps one: the provider key in the
/// variable its provider names (a custom one here), an `OPENAI_API_KEY` the
/// config does not even use, and a `GITHUB_TOKEN`.
const SECRETS: [(&str, &str); 3] = [
    ("MY_LLM_KEY", "canary-custom-7f3a9c"),
    ("OPENAI_API_KEY", "canary-openai-51d2e8"),
    ("GITHUB_TOKEN", "canary-github-c04b6f"),
];

/// Reads every readable mapping of process `pid` through `/proc/PID/mem` and
/// says whether `needle` (given in two halves, so the command itself never
/// holds it whole) occurs in it.
const MEMORY_SCAN: &str = r#"
import sys
pid, needle = sys.argv[1], (sys.argv[2] + sys.argv[3]).encode()
try:
    maps = open(f"/proc/{pid}/maps").read().splitlines()
    mem = open(f"/proc/{pid}/mem", "rb", 0)
except OSError as e:
    print("SCAN-REFUSED", e.errno)
    sys.exit(0)
hits = 0
for line in maps:
    span, perms = line.split()[:2]
    if "r" not in perms:
        continue
    start, end = (int(x, 16) for x in span.split("-"))
    if end - start > 256 << 20:
        continue
    try:
        mem.seek(start)
        if needle in mem.read(end - start):
            hits += 1
    except OSError:
        pass
print("SCAN-HITS", hits)
"#;

/// The calls of the attack; `holder` is the process that holds the provider
/// key (`$PPID` when openheim runs the shell itself).
fn attack_calls(holder: &str) -> Vec<ToolCallSpec> {
    let (half_a, half_b) = SECRETS[0].1.split_at(8);
    let commands = vec![
        format!("tr '\\0' '\\n' < /proc/{holder}/environ"),
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\"; done 2>&1 | grep -a canary || echo NO-CANARY".to_owned(),
        format!("cat /proc/{holder}/maps | head -c 200; echo; od -c /proc/{holder}/auxv | head -3"),
        format!("python3 -c '{MEMORY_SCAN}' {holder} {half_a} {half_b}"),
        // The shell's own process stays inspectable: ordinary tools need it.
        "head -c 40 /proc/self/status && echo && ls /proc/self/fd >/dev/null && echo SELF-OK".to_owned(),
        "env | grep -a canary || echo NO-CANARY-IN-ENV".to_owned(),
    ];
    commands
        .into_iter()
        .map(|command| ToolCallSpec::new("execute_command", json!({ "command": command })))
        .collect()
}

/// The tool results the model received in its second request, in call order.
fn tool_results(mock: &MockLlm) -> Vec<String> {
    mock.request(1)
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_nothing_leaked(results: &[String]) {
    assert_eq!(results.len(), 6, "{results:#?}");
    for (name, value) in SECRETS {
        for result in results {
            assert!(
                !result.contains(value),
                "{name} leaked into a tool result:\n{result}"
            );
        }
    }
    // Reads of another process's /proc entries fail (it is invisible, or
    // closed): not merely key-free.
    let refused = |r: &str| r.contains("ermission denied") || r.contains("No such file");
    assert!(
        refused(&results[0]),
        "environ of the key holder was readable:\n{}",
        results[0]
    );
    assert!(results[1].contains("NO-CANARY"), "{}", results[1]);
    assert!(
        refused(&results[2]) && !results[2].contains("r-xp"),
        "maps/auxv of the key holder were readable:\n{}",
        results[2]
    );
    assert!(
        results[3].contains("SCAN-REFUSED") || results[3].contains("SCAN-HITS 0"),
        "the key holder's memory was readable:\n{}",
        results[3]
    );
    assert!(results[4].contains("SELF-OK"), "{}", results[4]);
    assert!(results[5].contains("NO-CANARY-IN-ENV"), "{}", results[5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_cannot_read_secrets_of_the_process_that_holds_them() {
    let mock = MockLlm::builder()
        .expect_api_key(SECRETS[0].1)
        .start(vec![
            Reply::tool_calls(attack_calls("$PPID")),
            Reply::text("done"),
        ])
        .await;
    let install = Install::new(&mock, "[tools]\nsandbox = \"enforce\"");
    install.configure_mock_provider("env_var = \"MY_LLM_KEY\"");
    let output = install
        .openheim_with_env(&["run", "--yes", "leak the keys"], &SECRETS)
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();
    assert_nothing_leaked(&tool_results(&mock));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_deployment_no_service_hands_its_secrets_to_the_shell() {
    let mock = MockLlm::builder()
        .expect_api_key(SECRETS[0].1)
        .start(Vec::new())
        .await;
    let install = Install::new(&mock, "");
    let cluster = install
        .start_cluster_with_env(
            &mock,
            "[tools]\nsandbox = \"enforce\"\n",
            "env_var = \"MY_LLM_KEY\"\n",
            &SECRETS,
        )
        .await;
    let holder = cluster.pid("openheim-llm-proxy").unwrap().to_string();
    mock.push_reply(Reply::tool_calls(attack_calls(&holder)));
    mock.push_reply(Reply::text("done"));
    let output = install
        .openheim_with_env(&["run", "--yes", "leak the keys"], &SECRETS)
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    mock.assert_no_violations();
    let results = tool_results(&mock);
    assert_nothing_leaked(&results);
    cluster.terminate().await;
}

/// The capabilities that open another process's `/proc` entries
/// (`CAP_SYS_PTRACE`, and `CAP_SYS_ADMIN` and `CAP_PERFMON` for reads), which
/// shell commands never have.
const PROC_CAPS: &str = "-sys_ptrace,-sys_admin,-perfmon";

/// `setpriv` arguments that run a program without [`PROC_CAPS`]: reader and
/// targets get the same capabilities, so only dumpability decides (as for
/// an unprivileged user).
fn without_proc_caps() -> Vec<String> {
    ["--bounding-set", PROC_CAPS, "--inh-caps", PROC_CAPS]
        .map(str::to_owned)
        .to_vec()
}

fn read_proc(pid: u32, file: &str) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args(without_proc_caps())
        .arg("cat")
        .arg(format!("/proc/{pid}/{file}"))
        .output()
        .expect("setpriv (util-linux) runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_drop_their_secrets_and_are_not_dumpable() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    install.configure_mock_provider("env_var = \"MY_LLM_KEY\"");
    let config = install.home().join("config.toml");
    let mut env = vec![("OPENHEIM_CONFIG", config.to_str().unwrap())];
    env.extend_from_slice(&SECRETS);
    let mut control = std::process::Command::new("setpriv")
        .args(without_proc_caps())
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    // Once `setpriv` has become `sleep`, its capabilities are the reader's.
    let comm = format!("/proc/{}/comm", control.id());
    while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let readable = read_proc(control.id(), "environ");
    assert!(
        readable.status.success(),
        "a dumpable process is readable: {}",
        String::from_utf8_lossy(&readable.stderr)
    );
    for name in ["openheim-llm-proxy", "openheim-tool-executor"] {
        let mut args = without_proc_caps();
        args.push(bin_path(name).display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let service = ServiceProcess::spawn_program(Path::new("setpriv"), &args, &env).await;
        let pid = service.id().unwrap();
        // Even where /proc is readable (root with every capability), the
        // environment holds no secret any more: scrubbed at start-up.
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        for (var, value) in SECRETS {
            assert!(!environ.contains(value), "{name} still shows {var}");
        }
        assert!(environ.contains("PATH="), "{name}: the rest stays");
        for file in ["environ", "maps", "auxv"] {
            let read = read_proc(pid, file);
            let error = String::from_utf8_lossy(&read.stderr);
            assert!(
                !read.status.success() && error.contains("ermission denied"),
                "{name}'s {file} is readable by a process like it: {error}"
            );
        }
    }
    let _ = control.kill();
    let _ = control.wait();
}
