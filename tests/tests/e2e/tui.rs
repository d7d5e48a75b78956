//! The interactive terminal UI (`openheim` with no subcommand), driven
//! through a real pseudo-terminal against the mock provider: what a user
//! types, what they see, what ends up on disk.

use std::path::Path;
use std::time::Duration;

use openheim_e2e::install::Install;
use openheim_e2e::pty::{Pty, sgr_sequences};
use openheim_e2e::{MockLlm, Reply, ToolCallSpec, bin_path};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn start(install: &Install, args: &[&str], env: &[(&str, &str)]) -> Pty {
    let home = install.home();
    let home = home.to_str().unwrap();
    let mut vars = vec![("OPENHEIM_HOME", home), ("RUST_LOG", "info")];
    vars.extend_from_slice(env);
    Pty::spawn(
        &bin_path("openheim"),
        args,
        &vars,
        &install.workspace(),
        40,
        120,
    )
    .unwrap()
}

fn session_files(home: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(home.join("history"))
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_at_the_terminal() {
    let mock = MockLlm::start(vec![
        // 1: a streamed markdown answer.
        Reply::text("Hello from the **mock**!\n\n- first point\n- second point"),
        // 2: an edit that needs permission, then the answer.
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            json!({"path": "notes.txt", "content": "alpha\nbeta\n"}),
        )]),
        Reply::text("I wrote notes.txt."),
        // 3: after /model, a reply from the switched model.
        Reply::text("Answer from the other model."),
        // 4: a slow answer that gets cancelled.
        Reply::text(
            "This answer streams very slowly and will be cancelled by the user at some point",
        )
        .chunk_delay_ms(400),
        // 5: the session goes on.
        Reply::text("Still here after the cancel."),
        // 6: a second session.
        Reply::text("Answer in a new session."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();
    pty.expect("mock/mock-model", WAIT).unwrap();

    // A prompt and its streamed answer, rendered as markdown.
    pty.send_line("hi there").unwrap();
    pty.expect("Hello from the mock!", WAIT).unwrap();
    pty.expect("• second point", WAIT).unwrap();

    // A tool call that asks first: answered with one key.
    pty.send_line("write some notes").unwrap();
    pty.expect("Allow write_file notes.txt?", WAIT).unwrap();
    pty.send("y").unwrap();
    pty.expect("✓ write_file notes.txt", WAIT).unwrap();
    pty.expect("+ beta", WAIT).unwrap();
    pty.expect("I wrote notes.txt.", WAIT).unwrap();
    assert_eq!(
        std::fs::read_to_string(install.workspace().join("notes.txt")).unwrap(),
        "alpha\nbeta\n"
    );

    // /model switches the model of the following turns.
    pty.send_line("/model mock/other-model").unwrap();
    pty.expect("model: mock/other-model", WAIT).unwrap();
    pty.send_line("and now?").unwrap();
    pty.expect("Answer from the other model.", WAIT).unwrap();
    let last = mock.request(mock.request_count() - 1);
    assert_eq!(last.body["model"], "other-model", "{:?}", last.body);

    // Ctrl-C cancels a running turn, and the session goes on.
    pty.send_line("tell me a long story").unwrap();
    pty.expect("This answer", WAIT).unwrap();
    pty.ctrl_c().unwrap();
    pty.expect("cancelled", WAIT).unwrap();
    pty.send_line("still there?").unwrap();
    pty.expect("Still here after the cancel.", WAIT).unwrap();

    // /new, then /sessions lists both and resumes the first.
    pty.send_line("/new").unwrap();
    pty.expect("new session", WAIT).unwrap();
    pty.send_line("a fresh start").unwrap();
    pty.expect("Answer in a new session.", WAIT).unwrap();
    pty.send_line("/sessions").unwrap();
    pty.expect("resume which?", WAIT).unwrap();
    let screen = pty.screen();
    assert!(screen.contains("  1 a fresh start"), "{screen}");
    assert!(screen.contains("  2 hi there"), "{screen}");
    pty.send_line("2").unwrap();
    pty.expect("resumed session", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    let mut pty = pty;
    let status = pty.wait_exit(WAIT).unwrap();
    assert!(status.success(), "{status:?}\n{}", pty.text());

    // Both sessions are on disk; the first holds the whole conversation.
    let files = session_files(&install.home());
    assert_eq!(files.len(), 2, "{files:?}");
    let first = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|log| log.contains("hi there"))
        .expect("the first session's log");
    for needle in [
        "I wrote notes.txt.",
        "still there?",
        "Still here after the cancel.",
    ] {
        assert!(first.contains(needle), "{needle} missing from {first}");
    }
    // Logs went to the log file, never onto the screen.
    assert!(install.home().join("logs/openheim.log").exists());
    let text = pty.text();
    assert!(!text.contains(" INFO "), "log lines on screen: {text}");
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_flag_continues_the_latest_session_of_the_workspace() {
    let mock = MockLlm::start(vec![
        Reply::text("First answer."),
        Reply::text("Second answer."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let mut pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();
    pty.send_line("remember the word PELICAN").unwrap();
    pty.expect("First answer.", WAIT).unwrap();
    pty.ctrl_d().unwrap();
    pty.expect("openheim --resume", WAIT).unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());

    let mut pty = start(&install, &["--resume"], &[]);
    pty.expect("remember the word PELICAN", WAIT).unwrap();
    pty.expect("resumed session", WAIT).unwrap();
    pty.send_line("what was the word?").unwrap();
    pty.expect("Second answer.", WAIT).unwrap();
    // The model saw the earlier conversation.
    let request = mock.request(1);
    let body = request.body.to_string();
    assert!(
        body.contains("PELICAN") && body.contains("First answer."),
        "{body}"
    );
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());
    assert_eq!(session_files(&install.home()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_color_output_has_no_colour_codes_and_themes_persist() {
    let markdown = "# Title\n\nSome **bold** and `code`.\n\n```rust\nfn main() {}\n```\n";
    let mock = MockLlm::start(vec![Reply::text(markdown), Reply::text(markdown)]).await;
    let install = Install::new(&mock, "");

    // NO_COLOR: not a single SGR sequence, whatever is shown.
    let mut pty = start(&install, &[], &[("NO_COLOR", "1")]);
    pty.expect("/help for commands", WAIT).unwrap();
    pty.send_line("show me markdown").unwrap();
    pty.expect("fn main() {}", WAIT).unwrap();
    pty.send_line("/help").unwrap();
    pty.expect("/theme", WAIT).unwrap();
    pty.send_line("/theme").unwrap();
    pty.expect("theme: green", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());
    // The line editor resets attributes (`ESC[0m`) as it redraws; a reset
    // adds no colour, anything else would.
    let sgr: Vec<String> = sgr_sequences(&pty.raw())
        .into_iter()
        .filter(|s| s != "\x1b[0m" && s != "\x1b[m")
        .collect();
    assert!(sgr.is_empty(), "NO_COLOR output has colour codes: {sgr:?}");

    // With colour, /theme blue switches and is saved to the config file...
    let mut pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();
    pty.send_line("/theme blue").unwrap();
    pty.expect("theme: blue (saved", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());
    let config = std::fs::read_to_string(install.home().join("config.toml")).unwrap();
    assert!(
        config.contains("[ui]") && config.contains("theme = \"blue\""),
        "{config}"
    );
    assert!(
        config.contains("[providers.mock]"),
        "the rest is kept: {config}"
    );

    // ...so the next start uses it: the heading of the answer is blue.
    let mut pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();
    pty.send_line("/theme").unwrap();
    pty.expect("theme: blue", WAIT).unwrap();
    pty.send_line("show me markdown").unwrap();
    pty.expect("fn main() {}", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());
    let sgr = sgr_sequences(&pty.raw());
    assert!(
        sgr.iter().any(|s| s.contains("94")),
        "blue accent (94) expected in {sgr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_report_tools_mcp_skills_and_usage() {
    let mock = MockLlm::start(vec![
        Reply::text("Counted.").with_usage(1200, 30, 0),
        Reply::text("With skill b."),
    ])
    .await;
    // 1200 × 2 + 30 × 8 USD per million tokens = $0.002640.
    let prices =
        "default_skills = [\"a\"]\n[pricing.\"mock/mock-model\"]\ninput = 2.0\noutput = 8.0\n";
    let install = Install::new(&mock, prices);
    let mut pty = start(&install, &["--skills", "b"], &[]);
    pty.expect("/help for commands", WAIT).unwrap();

    pty.send_line("/tools").unwrap();
    pty.expect("read_file", WAIT).unwrap();
    pty.expect("tools", WAIT).unwrap();
    pty.send_line("/mcp").unwrap();
    pty.expect("no MCP servers configured", WAIT).unwrap();

    pty.send_line("/skills").unwrap();
    pty.expect("● a", WAIT).unwrap();
    pty.send_line("/skills remove b").unwrap();
    pty.expect("skills: a", WAIT).unwrap();
    pty.send_line("/skills add nope").unwrap();
    pty.expect("no skill \"nope\"", WAIT).unwrap();

    pty.send_line("count my tokens").unwrap();
    pty.expect("Counted.", WAIT).unwrap();
    pty.send_line("/usage").unwrap();
    pty.expect("1.2k in", WAIT).unwrap();
    pty.expect("$0.002640", WAIT).unwrap();
    pty.send_line("/skills add b").unwrap();
    pty.expect("skills: a, b", WAIT).unwrap();
    pty.send_line("again").unwrap();
    pty.expect("With skill b.", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());

    let first = mock.system_prompt(0).unwrap();
    assert!(
        first.contains("Skill A says") && !first.contains("Skill B says"),
        "{first}"
    );
    let second = mock.system_prompt(1).unwrap();
    assert!(second.contains("Skill B says"), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_image_path_attaches_the_image_and_a_bad_one_sends_nothing() {
    use crate::e2e::images::{PNG, b64, contains};
    let mock = MockLlm::start(vec![Reply::text("A tiny screenshot.")]).await;
    let install = Install::new(&mock, "");
    install.configure_mock_provider("vision = true");
    std::fs::create_dir_all(install.workspace().join("shots")).unwrap();
    std::fs::write(install.workspace().join("shots/a b.png"), PNG).unwrap();
    std::fs::write(install.workspace().join("notes.png"), "text").unwrap();
    let mut pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();

    pty.send_line("what is in @notes.png?").unwrap();
    pty.expect("notes.png: not a PNG, JPEG, GIF or WebP image", WAIT)
        .unwrap();
    pty.expect("nothing was sent", WAIT).unwrap();
    pty.send_line(r"what is in @shots/a\ b.png?").unwrap();
    pty.expect("attached 1 image (image/png 1 KB)", WAIT)
        .unwrap();
    pty.expect("A tiny screenshot.", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());

    assert_eq!(mock.request_count(), 1, "the bad prompt was sent");
    let body = mock.request(0).body;
    let url = format!("data:image/png;base64,{}", b64(PNG));
    assert!(
        contains(
            &body,
            &json!({"role": "user", "content": [
                {"type": "text", "text": r"what is in @shots/a\ b.png?"},
                {"type": "image_url", "image_url": {"url": url}}
            ]})
        ),
        "{body}"
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_it_reads_lines_and_writes_plain_text() {
    use tokio::io::AsyncWriteExt;
    let mock = MockLlm::start(vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            json!({"path": "plain.txt", "content": "ok"}),
        )]),
        Reply::text("Done **plainly**."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let mut child = tokio::process::Command::new(bin_path("openheim"))
        .current_dir(install.workspace())
        .env("OPENHEIM_HOME", install.home())
        .env("HOME", install.root.path())
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"write it\n").await.unwrap();
    // The answer to the permission question, then the end of input.
    stdin.write_all(b"y\n").await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !stdout.contains('\x1b'),
        "escape codes in plain output: {stdout:?}"
    );
    assert!(stdout.contains("? Allow write_file plain.txt?"), "{stdout}");
    assert!(stdout.contains("✓ write_file plain.txt"), "{stdout}");
    assert!(stdout.contains("Done plainly."), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(install.workspace().join("plain.txt")).unwrap(),
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_pasted_text_and_multi_line_input_reach_the_model_intact() {
    let mock = MockLlm::start(vec![
        Reply::text("Got the paste."),
        Reply::text("Got two lines."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let mut pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();

    // A long multi-line paste is inserted as is and sent only on Enter.
    let pasted: String = (1..=60)
        .map(|i| format!("line {i}: {}\n", "lorem ipsum ".repeat(8)))
        .collect();
    let pasted = pasted.trim_end().to_owned();
    pty.send_paste(&pasted).unwrap();
    pty.key_enter().unwrap();
    pty.expect("Got the paste.", WAIT).unwrap();
    assert_eq!(mock.last_user_text(0).as_deref(), Some(pasted.as_str()));

    // A trailing backslash continues the prompt on the next line.
    pty.send_line("first line \\").unwrap();
    pty.send_line("second line").unwrap();
    pty.expect("Got two lines.", WAIT).unwrap();
    assert_eq!(
        mock.last_user_text(1).as_deref(),
        Some("first line \nsecond line")
    );
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_saved_with_permission_and_managed_with_slash_memory() {
    let note = "Deploys to staging need the VPN.";
    let mock = MockLlm::start(vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("remember", json!({"text": note, "tags": ["deploy"]})).with_id("r1"),
        ]),
        Reply::text("I will remember that."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();
    pty.send_line("/memory").unwrap();
    pty.expect("no notes yet", WAIT).unwrap();

    // Saving a note is a change: the user is asked first.
    pty.send_line("remember that staging needs the VPN")
        .unwrap();
    pty.expect("Allow remember: Deploys to staging", WAIT)
        .unwrap();
    pty.send("y").unwrap();
    pty.expect("I will remember that.", WAIT).unwrap();

    pty.send_line("/memory vpn").unwrap();
    pty.expect("[deploy]  Deploys to staging need the VPN.", WAIT)
        .unwrap();
    let screen = pty.screen_with_scrollback();
    let id = screen
        .lines()
        .find(|l| l.contains("[deploy]  Deploys"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 12, "{screen}");
    pty.send_line(&format!("/memory forget {id}")).unwrap();
    pty.expect(&format!("forgot {id}"), WAIT).unwrap();
    pty.send_line("/memory vpn").unwrap();
    pty.expect("no notes match", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_is_set_per_session_and_compact_summarises_on_demand() {
    let mock = MockLlm::builder()
        .expect_api_key("sk-tui")
        .start(vec![
            Reply::text("Noted the code.").with_thinking("Mulling it over."),
            Reply::text("Still know it."),
        ])
        .await;
    mock.answer_matching(
        |request| {
            request
                .system_prompt()
                .is_some_and(|s| s.starts_with("You write the summary"))
        },
        |request| {
            let text = request.last_user_text().unwrap_or_default();
            match text.contains("Pay most attention to: the code") && text.contains("KIWI-9") {
                true => Ok(Reply::text("## Facts\nTUI-SUMMARY: the code is KIWI-9.")),
                false => Err(format!("unexpected summary request: {text}")),
            }
        },
    );
    let install = Install::new(&mock, "");
    let config = format!(
        "default_provider = \"mock\"\n\n[providers.mock]\nkind = \"anthropic\"\napi_base = \"{}\"\napi_key = \"sk-tui\"\ndefault_model = \"mock-model\"\n",
        mock.base_url()
    );
    std::fs::write(install.home().join("config.toml"), config).unwrap();
    let mut pty = start(&install, &["--thinking", "low"], &[]);
    pty.expect("/help for commands", WAIT).unwrap();
    pty.send_line("/thinking").unwrap();
    pty.expect("thinking: low", WAIT).unwrap();
    pty.send_line("/thinking high").unwrap();
    pty.expect("thinking: high", WAIT).unwrap();
    pty.send_line("Remember the code KIWI-9.").unwrap();
    // Thinking is shown (dimmed) before the answer.
    pty.expect("Mulling it over.", WAIT).unwrap();
    pty.expect("Noted the code.", WAIT).unwrap();
    pty.send_line("/compact the code").unwrap();
    pty.expect("context: summarised 2 messages with mock/mock-model", WAIT)
        .unwrap();
    pty.send_line("/thinking default").unwrap();
    pty.expect("thinking: default", WAIT).unwrap();
    pty.send_line("Do you still know it?").unwrap();
    pty.expect("Still know it.", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());

    mock.assert_no_violations();
    assert_eq!(
        mock.request(0).body["thinking"],
        json!({"type": "enabled", "budget_tokens": 24576})
    );
    let last = mock.request(2).body;
    assert!(last.get("thinking").is_none(), "{last}");
    let sent = last.to_string();
    assert!(sent.contains("TUI-SUMMARY") && !sent.contains("Remember the code"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_agents_question_and_tool_calls_show_under_its_delegation() {
    let mock = MockLlm::start(vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("delegate_task", json!({"task": "say hi in the shell"}))
                .with_id("d1"),
        ]),
        Reply::tool_calls(vec![
            ToolCallSpec::new("execute_command", json!({"command": "echo hi-from-child"}))
                .with_id("c1"),
        ]),
        Reply::text("The shell said hi."),
        Reply::text("My helper reports: the shell said hi."),
    ])
    .await;
    let install = Install::new(&mock, "");
    let pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();
    pty.send_line("delegate a greeting").unwrap();
    // The child's question, labelled with the agent, at the same prompt.
    pty.expect("[agent] echo hi-from-child", WAIT).unwrap();
    pty.send("y").unwrap();
    pty.expect("My helper reports: the shell said hi.", WAIT)
        .unwrap();
    let screen = pty.screen_with_scrollback();
    assert!(
        screen.contains("  │ agent ✓ echo hi-from-child"),
        "{screen}"
    );
    pty.send_line("/quit").unwrap();
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_prompts_run_as_slash_commands_and_are_listed() {
    if !crate::e2e::mcp::node_available() || !crate::e2e::mcp::everything_entry().is_file() {
        println!("skipped: node or the reference server is missing; .ci/run installs them");
        return;
    }
    let mock = MockLlm::start(vec![Reply::text("Sunny in Paris.")]).await;
    let server = format!(
        "[mcp_servers.everything]\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\n",
        crate::e2e::mcp::everything_entry().display()
    );
    let install = Install::new(&mock, &server);
    let mut pty = start(&install, &[], &[]);
    pty.expect("/help for commands", WAIT).unwrap();

    pty.send_line("/everything:args-prompt city=Paris").unwrap();
    pty.expect("/everything:args-prompt filled in by its server", WAIT)
        .unwrap();
    pty.expect("Sunny in Paris.", WAIT).unwrap();

    pty.send_line("/mcp").unwrap();
    pty.expect("/everything:args-prompt city=… [state=…]", WAIT)
        .unwrap();
    pty.send_line("/nosuch:prompt").unwrap();
    pty.expect("unknown command /nosuch:prompt", WAIT).unwrap();
    pty.send_line("/quit").unwrap();
    assert!(pty.wait_exit(WAIT).unwrap().success());

    mock.assert_no_violations();
    assert_eq!(
        mock.request_count(),
        1,
        "only the filled-in prompt reached the model"
    );
    assert_eq!(
        mock.last_user_text(0).as_deref(),
        Some("What's weather in Paris?")
    );
}
