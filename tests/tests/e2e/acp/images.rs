//! Images over ACP: an image block of a prompt reaches the model; a
//! `read_file` of an image stays with tool-executor even when the editor
//! offers its file system (whose reads are text only), so the model gets
//! the image; an image over the limit is refused with the reason.

use std::process::Stdio;

use agent_client_protocol::v1::schema::{ContentBlock, ImageContent, PromptRequest, TextContent};
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec};
use serde_json::json;

use super::support::{AcpProcess, Recorder, initialize, new_session, run_client};
use crate::e2e::images::{PNG, b64, contains};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_images_and_read_images_reach_the_model_and_oversized_ones_are_refused() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("read_file", json!({"path": "shot.png"})).with_id("r1"),
        ]),
        Reply::text("Two screenshots."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    install.configure_mock_provider("vision = true");
    let workspace = install.workspace();
    std::fs::write(workspace.join("shot.png"), PNG).unwrap();
    let mut big = PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);

    let mut agent = AcpProcess::spawn(&install, Stdio::inherit());
    let recorder = Recorder::answering(None);
    let (answer, refused) = run_client(&mut agent, &recorder, async |cx| {
        initialize(&cx, true).await?;
        let session = new_session(&cx, &workspace).await?;
        let prompt = |data: &[u8]| {
            PromptRequest::new(
                session.clone(),
                vec![
                    ContentBlock::Text(TextContent::new("compare these")),
                    ContentBlock::Image(ImageContent::new(b64(data), "image/png")),
                ],
            )
        };
        let answer = cx.send_request(prompt(PNG)).block_task().await?;
        let refused = cx.send_request(prompt(&big)).block_task().await;
        Ok((answer, refused))
    })
    .await;
    assert_eq!(
        answer.stop_reason,
        agent_client_protocol::v1::schema::StopReason::EndTurn
    );
    let error = refused.expect_err("an oversized image must be refused");
    assert!(
        error
            .to_string()
            .contains("the image is 5.0 MB (5242881 bytes); the limit is 5 MB"),
        "{error:?}"
    );
    assert_eq!(agent.exit_code().await, 0);

    let url = format!("data:image/png;base64,{}", b64(PNG));
    let first = mock.request(0).body;
    assert!(
        contains(
            &first,
            &json!({"type": "image_url", "image_url": {"url": url}})
        ),
        "{first}"
    );
    let follow_up = mock.request(1).body;
    assert!(
        contains(
            &follow_up,
            &json!({"role": "user", "content": [
                {"type": "text", "text": "Images returned by tool call r1:"},
                {"type": "image_url", "image_url": {"url": url}}
            ]})
        ),
        "{follow_up}"
    );
    assert!(
        recorder.reads.lock().unwrap().is_empty(),
        "the editor was asked for an image as text"
    );
    assert_eq!(
        mock.request_count(),
        2,
        "the refused prompt reached the model"
    );
    mock.assert_no_violations();
}
