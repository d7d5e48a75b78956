//! MCP prompts as ACP slash commands, with the reference server
//! `@modelcontextprotocol/server-everything`: a prompt
//! `/everything:args-prompt …` reaches the model filled in by the server,
//! and `available_commands_update` lists the server's prompts next to
//! `compact`.

use std::process::Stdio;

use agent_client_protocol::v1::schema::{AvailableCommandInput, NewSessionRequest, SessionUpdate};
use openheim_e2e::{Install, MockLlm, Reply};
use std::time::Duration;

use super::support::{AcpProcess, Recorder, initialize_with, prompt_text, run_client};
use crate::e2e::mcp::{everything_entry, node_available};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_prompts_are_slash_commands() {
    if !node_available() || !everything_entry().is_file() {
        println!("skipped: node or the reference server is missing; .ci/run installs them");
        return;
    }
    let mock = MockLlm::start(vec![Reply::text("Sunny."), Reply::text("Hello.")]).await;
    let server = format!(
        "[mcp_servers.everything]\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\n",
        everything_entry().display()
    );
    let install = Install::new(&mock, &server);
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    run_client(&mut agent, &recorder, async |cx| {
        initialize_with(&cx, Default::default()).await?;
        let first = cx
            .send_request(NewSessionRequest::new(workspace.clone()))
            .block_task()
            .await?;
        let first = first.session_id.0.to_string();
        prompt_text(
            &cx,
            &first,
            r#"/everything:args-prompt city="New York" state=NY"#,
        )
        .await?;
        // A second session's commands, offered once the server is surely up.
        let second = cx
            .send_request(NewSessionRequest::new(workspace.clone()))
            .block_task()
            .await?;
        prompt_text(&cx, second.session_id.0.as_ref(), "Hi").await?;
        Ok(())
    })
    .await;
    mock.assert_no_violations();
    assert_eq!(
        mock.last_user_text(0).as_deref(),
        Some("What's weather in New York, NY?")
    );
    let updates = recorder.updates();
    let commands = updates
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::AvailableCommandsUpdate(c) => Some(c.available_commands.clone()),
            _ => None,
        })
        .next_back()
        .unwrap_or_default();
    assert!(commands.iter().any(|c| c.name == "compact"), "{commands:?}");
    let args = commands
        .iter()
        .find(|c| c.name == "everything:args-prompt")
        .unwrap_or_else(|| panic!("{commands:?}"));
    match &args.input {
        Some(AvailableCommandInput::Unstructured(input)) => {
            assert_eq!(input.hint, "city=… [state=…]");
        }
        other => panic!("{other:?}"),
    }
}

/// The prompt commands of the last `available_commands_update` recorded.
fn last_commands(updates: &[SessionUpdate]) -> Option<Vec<String>> {
    updates
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::AvailableCommandsUpdate(c) => Some(
                c.available_commands
                    .iter()
                    .map(|c| c.name.clone())
                    .collect(),
            ),
            _ => None,
        })
        .next_back()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_of_a_server_that_starts_late_are_offered_once_it_is_up() {
    if !node_available() || !everything_entry().is_file() {
        println!("skipped: node or the reference server is missing; .ci/run installs them");
        return;
    }
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    // The server hangs until the file `go` exists, which the first model
    // call creates: the first turn begins without it.
    let go = install.workspace().join("go");
    let slow = format!(
        "[mcp_servers.everything]\ncommand = \"sh\"\nargs = [\"-c\", \"while [ ! -f go ]; do sleep 0.1; done; exec node {} stdio\"]\n",
        everything_entry().display()
    );
    install.write_config(&mock, &slow);
    mock.push_reply(Reply::dynamic(move |_| {
        std::fs::write(&go, "").unwrap();
        Reply::text("Hello.")
    }));
    for _ in 0..20 {
        mock.push_reply(Reply::text("Again."));
    }
    let workspace = install.workspace();
    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    let (before, after) = run_client(&mut agent, &recorder, async |cx| {
        initialize_with(&cx, Default::default()).await?;
        let session = cx
            .send_request(NewSessionRequest::new(workspace.clone()))
            .block_task()
            .await?;
        let id = session.session_id.0.to_string();
        prompt_text(&cx, &id, "Hi").await?;
        let before = last_commands(&recorder.updates()).unwrap_or_default();
        // The server is up within a few turns; each turn offers the
        // commands again while it was still starting.
        for _ in 0..20 {
            prompt_text(&cx, &id, "Again").await?;
            let now = last_commands(&recorder.updates()).unwrap_or_default();
            if now.iter().any(|c| c == "everything:args-prompt") {
                return Ok((before, now));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok((before, Vec::new()))
    })
    .await;
    mock.assert_no_violations();
    assert!(before.iter().any(|c| c == "compact"), "{before:?}");
    assert!(
        !before.iter().any(|c| c.starts_with("everything:")),
        "the first turn began before the server was up: {before:?}"
    );
    assert!(
        after.iter().any(|c| c == "everything:args-prompt") && after.iter().any(|c| c == "compact"),
        "the late server's prompts were never offered: {after:?}"
    );
}
