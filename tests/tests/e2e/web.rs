//! The web app in a real browser: Debian's `chromium`, driven by
//! `playwright-core` (the script `gateway/web/e2e/app.mjs`), against the
//! real `openheim serve` with a token, a real MCP server and the mock
//! provider, whose replies depend on the prompt the browser typed.
//!
//! Each test runs one scenario of the script and fails with its output. The
//! script asks for server-side actions (stopping and restarting the server)
//! with `@@command` lines and waits for `done` on its stdin. Screenshots go
//! to `target/web-e2e/<scenario>/` (docs/web.md shows them).
//!
//! Needs `node`, `chromium` and `npm ci --prefix gateway/web`; `.ci/run`
//! installs them. Missing, the tests fail and say what to install; only
//! `OPENHEIM_SKIP_BROWSER_TESTS=1` outside CI skips them, loudly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openheim_e2e::{Install, MockLlm, Reply, ServiceProcess, ToolCallSpec, bin_path};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const TOKEN: &str = "web-e2e-token-4f1c";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
const NOTES: &str = "# Notes\n\nfirst line\n";
pub const NEW_NOTES: &str = "# Notes\n\nfirst line\nsecond line, from the agent\n";
const ANSWER: &str = "## Hello\n\nHere is **bold** text, `inline code` and a list:\n\n\
    - one\n- two\n\n```rust\nfn main() {\n    // greet\n    println!(\"hello\");\n}\n```\n\nAll done.";
/// Markup a model might send: it must show as text, and only http(s) links
/// may become links (an image link would make the browser fetch elsewhere).
const HTML: &str = "Raw: <img src=x onerror=alert(1)> <script>alert(2)</script>\n\n\
    [bad](javascript:alert(3)) [docs](https://example.org/docs) ![pic](https://example.org/p.png)\n\nend of html";
const STORY: &str = "Once upon a time there was a very long story that never seemed to end. ";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chromium() -> PathBuf {
    std::env::var_os("OPENHEIM_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What a machine needs for these tests, or why it cannot run them.
fn missing_prerequisites(browser: bool) -> Option<String> {
    let web = repo_root().join("gateway/web");
    let mut missing = Vec::new();
    if browser && !chromium().is_file() {
        missing.push(format!(
            "Chromium at {} (apt-get install chromium, or set OPENHEIM_CHROMIUM)",
            chromium().display()
        ));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        missing.push("node (apt-get install nodejs npm)".to_owned());
    }
    if !web
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("playwright-core (npm ci --prefix gateway/web)".to_owned());
    }
    (!missing.is_empty()).then(|| missing.join("; "))
}

/// `true` when the test may go on; panics when it cannot run, unless a
/// developer skips browser tests on purpose (never in CI).
fn available(browser: bool) -> bool {
    let Some(missing) = missing_prerequisites(browser) else {
        return true;
    };
    let skip = std::env::var("OPENHEIM_SKIP_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    if skip && !ci {
        eprintln!("SKIPPED: browser test (OPENHEIM_SKIP_BROWSER_TESTS=1); missing: {missing}");
        return false;
    }
    panic!("the browser tests need: {missing}; `.ci/run` installs them");
}

/// The typed prompt of the newest user message of an Anthropic request (its
/// last text block that is not an attached file: a prompt left without an
/// answer, as when the server was killed mid-turn, is merged into the next
/// one), and whether the request answers a tool call.
fn prompt_of(request: &Value) -> (String, bool) {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let blocks = |m: &Value| m["content"].as_array().cloned().unwrap_or_default();
    let after_tool = messages
        .last()
        .is_some_and(|m| blocks(m).iter().any(|b| b["type"] == "tool_result"));
    let text = messages
        .iter()
        .rev()
        .filter(|m| m["role"] == "user")
        .find_map(|m| {
            blocks(m)
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .rfind(|t| !t.starts_with("<context"))
                .map(str::to_owned)
        })
        .or_else(|| messages.last()?["content"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (text.to_lowercase(), after_tool)
}

/// The model of the scenarios: what it says depends on what the browser
/// asked (see app.mjs for the prompts).
fn model(flaky: Arc<AtomicUsize>) -> Reply {
    Reply::dynamic(move |request| {
        let (prompt, after_tool) = prompt_of(request);
        if after_tool {
            return match prompt {
                p if p.contains("notes") => Reply::text("The notes are updated."),
                p if p.contains("tests") => Reply::text("The tests failed with exit code 3."),
                p if p.contains("plan") => Reply::text("Planned."),
                _ => Reply::text("Done."),
            };
        }
        match prompt {
            p if p.contains("hello") => Reply::text(ANSWER)
                .with_thinking("The user wants a greeting with some code.")
                .chunk_delay_ms(25),
            p if p.contains("notes") => Reply::tool_calls(vec![
                ToolCallSpec::new(
                    "write_file",
                    json!({"path": "notes.md", "content": NEW_NOTES}),
                )
                .with_id("w1"),
            ])
            .with_text("Updating the notes. "),
            p if p.contains("tests") => Reply::tool_calls(vec![
                ToolCallSpec::new(
                    "execute_command",
                    json!({"command": "echo running the tests; exit 3"}),
                )
                .with_id("x1"),
            ])
            .with_text("Running them. "),
            p if p.contains("plan") => Reply::tool_calls(vec![
                ToolCallSpec::new(
                    "update_plan",
                    json!({"entries": [
                        {"content": "Read the code", "status": "completed"},
                        {"content": "Write the fix", "status": "in_progress", "priority": "high"},
                        {"content": "Check the result"},
                    ]}),
                )
                .with_id("p1"),
            ]),
            p if p.contains("html") => Reply::text(HTML),
            p if p.contains("story") => {
                Reply::text(format!("{}THE END", STORY.repeat(40))).chunk_delay_ms(120)
            }
            p if p.contains("flaky") && flaky.fetch_add(1, Ordering::SeqCst) == 0 => {
                Reply::http_error(
                    503,
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                )
            }
            _ => Reply::text("OK."),
        }
    })
}

struct Web {
    mock: MockLlm,
    install: Install,
    server: ServiceProcess,
    env: Vec<(String, String)>,
    artifacts: PathBuf,
}

impl Web {
    async fn start(scenario: &str) -> Self {
        let mock = MockLlm::builder()
            .expect_api_key("sk-web")
            .start(Vec::new())
            .await;
        let flaky = Arc::new(AtomicUsize::new(0));
        for _ in 0..200 {
            mock.push_reply(model(flaky.clone()));
        }
        let install = Install::new(&mock, "");
        let workspace = install.workspace();
        std::fs::write(workspace.join("notes.md"), NOTES).unwrap();
        std::fs::create_dir_all(workspace.join("src")).unwrap();
        std::fs::write(
            workspace.join("src/main.rs"),
            "fn main() {\n    println!(\"hi\");\n}\n",
        )
        .unwrap();
        let config = format!(
            "default_provider = \"mock\"\nwork_dir = \"{workspace}\"\n\n\
             [server]\nauth_tokens = [\"{TOKEN}\"]\n\n\
             [mcp_servers.test]\ncommand = \"{mcp}\"\nargs = [\"stdio\"]\n\n\
             [providers.mock]\nkind = \"anthropic\"\napi_base = \"{base}\"\napi_key = \"sk-web\"\n\
             default_model = \"mock-model\"\nmodels = [\"mock-model\", \"mock-large\"]\n\
             retry_base_delay_ms = 200\nretry_max_delay_ms = 400\n",
            workspace = workspace.display(),
            mcp = bin_path("test-mcp-server").display(),
            base = mock.base_url(),
        );
        std::fs::write(install.home().join("config.toml"), config).unwrap();
        let home = install.home();
        let env = vec![
            ("OPENHEIM_HOME".to_owned(), home.display().to_string()),
            ("HOME".to_owned(), install.root.path().display().to_string()),
            (
                "OPENHEIM_CONFIG".to_owned(),
                home.join("config.toml").display().to_string(),
            ),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
        ];
        let server = spawn_serve(&env, "127.0.0.1:0").await;
        let artifacts = bin_path("openheim")
            .parent()
            .unwrap()
            .join("..")
            .join("web-e2e")
            .join(scenario);
        // Only this run's screenshots (a failure's among them) stay.
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts).unwrap();
        Self {
            mock,
            install,
            server,
            env,
            artifacts,
        }
    }

    /// Runs `scenario` of the browser script to its end, answering its
    /// `@@` commands; panics with its output when it fails.
    async fn run(&mut self, scenario: &str) -> String {
        let web = repo_root().join("gateway/web");
        let mut child = Command::new("node")
            .arg("e2e/app.mjs")
            .arg(scenario)
            .current_dir(&web)
            .env("OPENHEIM_URL", self.server.url())
            .env("OPENHEIM_TOKEN", TOKEN)
            .env("ARTIFACTS", &self.artifacts)
            .env("CHROMIUM", chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node");
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let stderr = child.stderr.take().unwrap();
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let mut output = String::new();
        let drive = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                output.push_str(&line);
                output.push('\n');
                if let Some(command) = line.strip_prefix("@@") {
                    self.command(command.trim()).await;
                    stdin.write_all(b"done\n").await.unwrap();
                }
            }
            child.wait().await.unwrap()
        };
        let status = tokio::time::timeout(SCRIPT_TIMEOUT, drive).await;
        let errors = errors.await.unwrap_or_default();
        match status {
            Ok(status) if status.success() => output,
            other => panic!(
                "browser scenario {scenario} failed ({other:?}):\n{output}\n--- stderr ---\n{errors}\n--- server ---\n{}",
                self.server.stderr_tail()
            ),
        }
    }

    async fn command(&mut self, command: &str) {
        match command {
            "stop-server" => self.server.kill().await,
            "start-server" => {
                let addr = self.server.addr();
                self.server = spawn_serve(&self.env, &addr).await;
            }
            other => panic!("unknown command from the browser script: {other}"),
        }
    }
}

async fn spawn_serve(env: &[(String, String)], listen: &str) -> ServiceProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ServiceProcess::spawn_program_on(&bin_path("openheim"), &["serve"], &env, listen).await
}

fn assert_screenshots(dir: &Path, names: &[&str]) {
    for name in names {
        let path = dir.join(format!("{name}.png"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 1000,
            "screenshot {} missing or empty",
            path.display()
        );
    }
}

/// Sign in, a new session, a streamed answer, a permission approved, tool
/// cards with a diff and an exit code, a live file change, a cancelled
/// turn, a reload that finds the session, the server panel, themes; and
/// the budget (first load size, no request to any other host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_chats_edits_and_finds_its_sessions_in_a_browser() {
    if !available(true) {
        return;
    }
    let mut web = Web::start("main").await;
    let output = web.run("main").await;
    eprintln!("{output}");
    let workspace = web.install.workspace();
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes.md")).unwrap(),
        NEW_NOTES
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("src/main.rs")).unwrap(),
        "fn main() {\n    println!(\"edited in the browser\");\n}\n"
    );
    // The attached file reached the model as context of the prompt.
    let attached = web.mock.requests().iter().any(|r| {
        r.body.to_string().contains("<context uri=\\\"file://")
            && r.body.to_string().contains("second line, from the agent")
    });
    assert!(attached, "no request carried the attached file");
    assert_screenshots(
        &web.artifacts,
        &[
            "new-session",
            "chat",
            "permission",
            "tool-diff",
            "cancelled",
            "plan",
            "sessions",
            "server",
            "theme-light",
        ],
    );
    web.mock.assert_no_violations();
}

/// A wrong token is refused in words; the socket drops (the server stops)
/// and comes back: the app reconnects, reloads the session and keeps the
/// typed prompt; unknown sessions are explained; a phone-sized screen works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_survives_bad_tokens_dropped_sockets_and_small_screens() {
    if !available(true) {
        return;
    }
    let mut web = Web::start("resilience").await;
    let output = web.run("resilience").await;
    eprintln!("{output}");
    assert_screenshots(&web.artifacts, &["sign-in-error", "reconnecting", "phone"]);
    web.mock.assert_no_violations();
}

/// The app's pure logic under node's test runner (`gateway/web/test`): the
/// update reducer with every ACP update kind the UI renders (also those the
/// server does not send yet), diffs, highlighting, markdown.
#[tokio::test]
async fn the_web_apps_logic_passes_its_unit_tests() {
    if !available(false) {
        return;
    }
    let output = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(repo_root().join("gateway/web"))
        .output()
        .await
        .expect("run node --test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");
}
