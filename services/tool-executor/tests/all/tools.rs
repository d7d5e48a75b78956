//! Tool listing and calls: file tools, shell results, the shell switch,
//! argument errors, output caps, workspace validation and custom tools.

use std::sync::Arc;

use openheim_proto::common::v1::{ToolDefinition, ToolKind};
use openheim_proto::tool_executor::v1::{ListToolsRequest, ToolErrorKind, Workspace};
use openheim_tool_executor::{ToolContext, ToolError, ToolExecutorConfig, ToolHandler, ToolOutput};
use serde_json::json;

use crate::support::{config, execute_request, harness, harness_with, kind, raw};

async fn tool_names(
    h: &crate::support::Harness,
    allow_shell: bool,
    read_only: bool,
) -> Vec<String> {
    let request = ListToolsRequest {
        workspace: Some(h.workspace(allow_shell)),
        read_only,
    };
    let tools = h
        .client
        .clone()
        .list_tools(request)
        .await
        .unwrap()
        .into_inner()
        .tools;
    tools.into_iter().map(|t| t.name).collect()
}

#[tokio::test]
async fn write_then_read_a_file() {
    let h = harness();
    let wrote = h
        .call(
            "write_file",
            json!({"path": "notes/a.txt", "content": "héllo"}),
        )
        .await;
    assert!(!wrote.is_error, "{}", wrote.output);
    assert_eq!(wrote.output, "Wrote 6 bytes to notes/a.txt");
    assert_eq!(wrote.diffs.len(), 1);
    assert_eq!(wrote.diffs[0].old_text, None);
    assert_eq!(
        wrote.diffs[0].path,
        h.root.join("notes/a.txt").display().to_string()
    );
    let read = h.call("read_file", json!({"path": "notes/a.txt"})).await;
    assert_eq!((read.output.as_str(), read.is_error), ("héllo", false));
    let rewrote = h
        .call(
            "write_file",
            json!({"path": "notes/a.txt", "content": "bye"}),
        )
        .await;
    assert_eq!(rewrote.diffs[0].old_text.as_deref(), Some("héllo"));
}

#[tokio::test]
async fn execute_command_reports_exit_code_and_both_streams() {
    let h = harness();
    let resp = h
        .call(
            "execute_command",
            json!({"command": "echo hi; echo oops >&2; pwd; exit 3"}),
        )
        .await;
    assert!(
        !resp.is_error,
        "a non-zero exit is a normal result: {}",
        resp.output
    );
    let expected = format!(
        "exit code: 3\nstdout:\nhi\n{}\n\nstderr:\noops\n",
        h.root.display()
    );
    assert_eq!(resp.output, expected);
    assert_eq!(
        raw(&resp),
        json!({"exit_code": 3, "stdout_truncated": false, "stderr_truncated": false, "timed_out": false})
    );
}

#[tokio::test]
async fn without_allow_shell_the_shell_is_neither_listed_nor_run() {
    let h = harness();
    assert_eq!(
        tool_names(&h, true, false).await,
        [
            "execute_command",
            "read_file",
            "write_file",
            "edit_file",
            "list_dir",
            "search",
            "web_fetch"
        ]
    );
    assert_eq!(
        tool_names(&h, false, false).await,
        [
            "read_file",
            "write_file",
            "edit_file",
            "list_dir",
            "search",
            "web_fetch"
        ]
    );
    // Read-only mode (the agent loop's plan mode) offers only tools that
    // cannot change anything.
    assert_eq!(
        tool_names(&h, true, true).await,
        ["read_file", "list_dir", "search", "web_fetch"]
    );
    let resp = h
        .call_with(false, "execute_command", json!({"command": "touch ran"}))
        .await;
    assert!(resp.is_error);
    assert_eq!(kind(&resp), ToolErrorKind::ShellDisabled);
    assert!(!h.root.join("ran").exists());
}

#[tokio::test]
async fn bad_calls_are_error_results_the_model_can_read() {
    let h = harness();
    let unknown = h.call("rm_rf", json!({})).await;
    assert_eq!(
        (unknown.is_error, kind(&unknown)),
        (true, ToolErrorKind::UnknownTool)
    );
    let missing = h.call("read_file", json!({"file": "a"})).await;
    assert_eq!(kind(&missing), ToolErrorKind::InvalidArguments);
    assert_eq!(
        missing.output,
        "invalid arguments for read_file: missing field `path`"
    );
    let wrong = h
        .call(
            "execute_command",
            json!({"command": "true", "timeout_secs": "soon"}),
        )
        .await;
    assert_eq!(kind(&wrong), ToolErrorKind::InvalidArguments);
    assert!(
        wrong
            .output
            .contains("argument `timeout_secs`: invalid type: string \"soon\""),
        "{}",
        wrong.output
    );
    let absent = h.call("read_file", json!({"path": "nope.txt"})).await;
    assert_eq!(kind(&absent), ToolErrorKind::Io);
    assert!(
        absent.output.starts_with("cannot read \"nope.txt\""),
        "{}",
        absent.output
    );
}

#[tokio::test]
async fn large_outputs_are_capped_with_a_note() {
    let h = harness_with(
        ToolExecutorConfig {
            max_result_bytes: 1000,
            ..config()
        },
        Vec::new(),
    );
    let resp = h
        .call(
            "execute_command",
            json!({"command": "head -c 100000 /dev/zero | tr '\\0' x; echo END"}),
        )
        .await;
    assert!(!resp.is_error, "{}", resp.output);
    assert!(resp.output.len() <= 1000, "{}", resp.output.len());
    assert!(resp.output.contains("bytes omitted …]"), "{}", resp.output);
    assert!(resp.output.starts_with("exit code: 0\nstdout:\nxxx"));
    assert!(
        resp.output.ends_with("xxxEND\n"),
        "the tail is kept: {}",
        resp.output
    );
    assert_eq!(raw(&resp)["stdout_truncated"], true);

    std::fs::write(h.root.join("big.txt"), "y".repeat(50_000)).unwrap();
    let read = h.call("read_file", json!({"path": "big.txt"})).await;
    assert!(read.output.len() <= 1000);
    assert!(
        read.output.ends_with(
            "[… line 1 is longer than the output cap and was cut; use offset=2 to read on …]"
        ),
        "{}",
        read.output
    );
}

#[tokio::test]
async fn session_workspaces_are_validated() {
    let h = harness();
    let client = || h.client.clone();
    for root in ["relative/dir", "/definitely/not/here", ""] {
        let ws = Workspace {
            root: root.to_owned(),
            allow_shell: true,
            ..Workspace::default()
        };
        let resp = client()
            .execute(execute_request(ws, "read_file", &json!({"path": "a"})))
            .await
            .unwrap();
        assert_eq!(
            kind(&resp.into_inner()),
            ToolErrorKind::OutsideWorkspace,
            "{root:?}"
        );
    }
    let mut no_call = execute_request(h.workspace(true), "read_file", &json!({}));
    no_call.call = None;
    let status = client().execute(no_call).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // A confined executor only accepts workspaces inside its root.
    let confined = ToolExecutorConfig {
        allowed_root: Some(h.root.clone()),
        ..config()
    };
    let c = harness_with(confined, Vec::new());
    std::fs::create_dir(h.root.join("project")).unwrap();
    let inside = Workspace {
        root: h.root.join("project").display().to_string(),
        allow_shell: true,
        ..Workspace::default()
    };
    let args = json!({"path": "f.txt", "content": "ok"});
    let ok = c
        .client
        .clone()
        .execute(execute_request(inside, "write_file", &args))
        .await
        .unwrap();
    assert!(!ok.into_inner().is_error);
    let elsewhere = Workspace {
        root: h.outside.display().to_string(),
        allow_shell: true,
        ..Workspace::default()
    };
    let refused = c
        .client
        .clone()
        .execute(execute_request(elsewhere, "write_file", &args))
        .await
        .unwrap();
    assert_eq!(kind(&refused.into_inner()), ToolErrorKind::OutsideWorkspace);
    h.assert_outside_untouched();
}

/// A custom tool that echoes a long text.
struct Shout;

#[async_trait::async_trait]
impl ToolHandler for Shout {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "shout".to_owned(),
            description: "Repeat a word.".to_owned(),
            input_schema_json: r#"{"type":"object","properties":{"word":{"type":"string"}}}"#
                .to_owned(),
            kind: ToolKind::Other as i32,
            read_only: true,
            source: String::new(),
        }
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        #[derive(serde::Deserialize)]
        struct Args {
            word: String,
        }
        let args: Args = openheim_tool_executor::parse_args("shout", args)?;
        assert!(ctx.workspace.path().is_dir());
        Ok(ToolOutput::text(args.word.repeat(1000)))
    }
}

#[tokio::test]
async fn custom_tools_are_listed_and_capped() {
    let h = harness_with(
        ToolExecutorConfig {
            max_result_bytes: 200,
            ..config()
        },
        vec![Arc::new(Shout)],
    );
    let request = ListToolsRequest {
        workspace: Some(h.workspace(false)),
        read_only: true,
    };
    let tools = h
        .client
        .clone()
        .list_tools(request)
        .await
        .unwrap()
        .into_inner()
        .tools;
    let shout = tools.iter().find(|t| t.name == "shout").unwrap();
    assert_eq!(shout.source, "custom");
    let resp = h.call("shout", json!({"word": "hey"})).await;
    assert!(!resp.is_error);
    assert!(
        resp.output.len() <= 200 && resp.output.contains("bytes omitted"),
        "{}",
        resp.output
    );
    let bad = h.call("shout", json!({})).await;
    assert_eq!(kind(&bad), ToolErrorKind::InvalidArguments);
}
