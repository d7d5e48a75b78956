//! Images end to end with the real binaries: `openheim run --image` and
//! `read_file` on an image reach every provider kind in its own wire format
//! (the mock checks each format and refuses malformed images); a model
//! without vision reads a note instead; an image over the limit is refused
//! with a message that says why (docs/configuration.md, "Images"). The ACP
//! and TUI doors: `acp/images.rs`, `tui.rs`.

use base64::Engine as _;
use openheim_e2e::install::{Install, stderr};
use openheim_e2e::{MockLlm, Reply, ToolCallSpec, last_tool_result};
use serde_json::{Value, json};

use super::providers::{Kind, install};

/// A PNG signature and a few bytes: what the providers and the mock sniff.
pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01";
const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0\xff\xff\xff\0\0\0;";

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", b64(bytes))
}

/// Whether `expected` is part of `actual`: objects by their listed keys,
/// arrays element by element, anything else equal.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(ev, av)| matches(ev, av))
        }
        _ => expected == actual,
    }
}

/// Whether some value inside `body` matches `expected`.
pub(crate) fn contains(body: &Value, expected: &Value) -> bool {
    matches(expected, body)
        || match body {
            Value::Object(map) => map.values().any(|v| contains(v, expected)),
            Value::Array(items) => items.iter().any(|v| contains(v, expected)),
            _ => false,
        }
}

fn read_image_script() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("read_file", json!({"path": "chart.gif"})).with_id("c1"),
        ]),
        Reply::text("A chart and a screenshot."),
    ]
}

/// Runs `--image shot.png` with a `read_file` of `chart.gif` against a
/// provider of `kind`: the two requests the mock received.
async fn image_requests(kind: Kind) -> (Value, Value) {
    let mock = kind.mock(read_image_script()).await;
    let install = install(kind, &mock);
    std::fs::write(install.workspace().join("shot.png"), PNG).unwrap();
    std::fs::write(install.workspace().join("chart.gif"), GIF).unwrap();
    let output = install
        .openheim(&["run", "--image", "shot.png", "what do you see?"])
        .await;
    assert!(output.status.success(), "{kind:?}: {}", stderr(&output));
    mock.assert_no_violations();
    (mock.request(0).body, mock.request(1).body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_reach_every_provider_kind_in_its_own_format() {
    let (png_url, gif_url) = (data_url("image/png", PNG), data_url("image/gif", GIF));

    let (prompt, follow_up) = image_requests(Kind::OpenAiChat).await;
    assert!(
        contains(
            &prompt,
            &json!({"role": "user", "content": [
                {"type": "text", "text": "what do you see?"},
                {"type": "image_url", "image_url": {"url": png_url}}
            ]})
        ),
        "{prompt}"
    );
    // A tool message takes text only: the image follows in a user message.
    assert!(
        contains(
            &follow_up,
            &json!({"role": "tool", "tool_call_id": "c1",
                    "content": format!("Image chart.gif (image/gif, {} bytes), attached.", GIF.len())})
        ),
        "{follow_up}"
    );
    assert!(
        contains(
            &follow_up,
            &json!({"role": "user", "content": [
                {"type": "text", "text": "Images returned by tool call c1:"},
                {"type": "image_url", "image_url": {"url": gif_url}}
            ]})
        ),
        "{follow_up}"
    );

    let (prompt, follow_up) = image_requests(Kind::OpenAiResponses).await;
    assert!(
        contains(
            &prompt,
            &json!({"type": "input_image", "image_url": png_url})
        ),
        "{prompt}"
    );
    assert!(
        contains(
            &follow_up,
            &json!({"type": "function_call_output", "call_id": "c1", "output": [
                {"type": "input_text"},
                {"type": "input_image", "image_url": gif_url}
            ]})
        ),
        "{follow_up}"
    );

    let (prompt, follow_up) = image_requests(Kind::Anthropic).await;
    assert!(
        contains(
            &prompt,
            &json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}})
        ),
        "{prompt}"
    );
    assert!(
        contains(
            &follow_up,
            &json!({"type": "tool_result", "tool_use_id": "c1", "content": [
                {"type": "text"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": b64(GIF)}}
            ]})
        ),
        "{follow_up}"
    );

    let (prompt, follow_up) = image_requests(Kind::Gemini).await;
    assert!(
        contains(
            &prompt,
            &json!({"role": "user", "parts": [
                {"text": "what do you see?"},
                {"inlineData": {"mimeType": "image/png", "data": b64(PNG)}}
            ]})
        ),
        "{prompt}"
    );
    assert!(
        contains(
            &follow_up,
            &json!({"role": "user", "parts": [
                {"functionResponse": {"name": "read_file"}},
                {"inlineData": {"mimeType": "image/gif", "data": b64(GIF)}}
            ]})
        ),
        "{follow_up}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_vision_reads_a_note_and_the_flag_turns_vision_on() {
    // An OpenAI-compatible server's "mock-model" is not known to see.
    let (prompt, follow_up) = image_requests(Kind::Compatible).await;
    let note = |mime: &str, bytes: &[u8]| {
        format!(
            "[An image ({mime}, {} bytes) was left out: model mock-model does not accept images.]",
            bytes.len()
        )
    };
    assert!(
        contains(
            &prompt,
            &json!({"role": "user", "content": [
                {"type": "text", "text": "what do you see?"},
                {"type": "text", "text": note("image/png", PNG)}
            ]})
        ),
        "{prompt}"
    );
    let result = last_tool_result(&follow_up).unwrap();
    assert!(result.ends_with(&note("image/gif", GIF)), "{result}");
    assert!(!follow_up.to_string().contains("image_url"), "{follow_up}");

    // `vision = true` for the model: the image goes out.
    let mock = Kind::Compatible.mock(vec![Reply::text("ok")]).await;
    let install = install(Kind::Compatible, &mock);
    let config = install.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}model_vision = {{ \"mock-model\" = true }}\n"),
    )
    .unwrap();
    std::fs::write(install.workspace().join("shot.png"), PNG).unwrap();
    let output = install
        .openheim(&["run", "--image", "shot.png", "look"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let body = mock.request(0).body;
    assert!(
        contains(
            &body,
            &json!({"type": "image_url", "image_url": {"url": data_url("image/png", PNG)}})
        ),
        "{body}"
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_over_the_limit_or_not_an_image_is_refused_with_a_clear_message() {
    let mock = MockLlm::start(read_image_script()).await;
    let install = Install::new(&mock, "");
    let mut big = PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);
    std::fs::write(install.workspace().join("big.png"), &big).unwrap();
    std::fs::write(install.workspace().join("notes.png"), "just text").unwrap();

    let output = install
        .openheim(&["run", "--image", "big.png", "look"])
        .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "cannot attach big.png: the image is 5.0 MB (5242881 bytes); the limit is 5 MB (5242880 bytes) per image: shrink or crop it first"
        ),
        "{}",
        stderr(&output)
    );
    let output = install
        .openheim(&["run", "--image", "notes.png", "look"])
        .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "cannot attach notes.png: not a PNG, JPEG, GIF or WebP image (the formats models accept)"
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(mock.request_count(), 0, "nothing may be sent");

    // The model reading it gets the same reason as its tool result.
    std::fs::rename(
        install.workspace().join("big.png"),
        install.workspace().join("chart.gif"),
    )
    .unwrap();
    let output = install.openheim(&["run", "show me the chart"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let result = last_tool_result(&mock.request(1).body).unwrap();
    assert!(
        result.contains("\"chart.gif\": the image is 5.0 MB (5242881 bytes); the limit is 5 MB"),
        "{result}"
    );
    mock.assert_no_violations();
}
