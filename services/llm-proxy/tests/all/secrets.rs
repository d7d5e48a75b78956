//! Keys never leave the proxy: every provider kind is run with a distinctive
//! key against error answers that quote it back (as OpenAI's 401 does), and
//! neither the events nor anything logged, at any level, may contain it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use openheim_config::{ProviderConfig, ProviderKind, Secret, WireApi};
use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;

use crate::support::*;

const KEY: &str = "sk-distinctive-0xC0FFEE-4242";

/// Everything logged while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The error body each kind sends, quoting the key.
fn error_body(kind: ProviderKind, message: &str) -> Value {
    match kind {
        ProviderKind::Anthropic => {
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}})
        }
        ProviderKind::Gemini => {
            json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})
        }
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
            json!({"error": {"message": message, "type": "invalid_request_error", "code": null}})
        }
        ProviderKind::Custom => panic!("a custom provider has no wire format"),
    }
}

/// A stream that starts, then reports an error quoting the key.
fn failing_stream(kind: ProviderKind, wire_api: WireApi) -> Reply {
    let message = format!("upstream rejected key {KEY}");
    let frames = match (kind, wire_api) {
        (ProviderKind::Anthropic, _) => vec![named_event(
            "error",
            &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
        )],
        (ProviderKind::Gemini, _) => vec![gemini_chunk(
            json!({"error": {"code": 500, "message": message, "status": "INTERNAL"}}),
        )],
        (_, WireApi::Responses) => vec![responses_event(
            json!({"type": "response.failed", "response": {"status": "failed", "error": {"code": "server_error", "message": message}}}),
        )],
        (_, WireApi::Chat) => vec![format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": "server_error"}})
        )],
    };
    Reply::Frames {
        frames,
        end: End::Clean,
    }
}

fn replies(kind: ProviderKind, wire_api: WireApi) -> Vec<Reply> {
    let quoted = format!("Incorrect API key provided: {KEY}.");
    [401, 403, 400, 404, 429, 500]
        .into_iter()
        .map(|status| Reply::Status {
            status,
            headers: vec![],
            body: error_body(kind, &quoted),
        })
        .chain([failing_stream(kind, wire_api)])
        .collect()
}

fn settings(kind: ProviderKind, wire_api: WireApi, fake: &FakeProvider) -> ProviderConfig {
    ProviderConfig {
        api_key: Some(Secret::new(KEY)),
        max_retries: 0,
        wire_api,
        ..provider_of(kind, fake)
    }
}

#[tokio::test]
async fn keys_never_appear_in_events_or_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let kinds = [
        (ProviderKind::Openai, WireApi::Chat),
        (ProviderKind::OpenaiCompatible, WireApi::Chat),
        (ProviderKind::Openai, WireApi::Responses),
        (ProviderKind::Anthropic, WireApi::Chat),
        (ProviderKind::Gemini, WireApi::Chat),
    ];
    for (kind, wire_api) in kinds {
        let fake = FakeProvider::start(replies(kind, wire_api)).await;
        let config = config(vec![("p", settings(kind, wire_api, &fake))]);
        let answers = fake.replies_left();
        for _ in 0..answers {
            let events = complete(config.clone(), prompt("hi")).await;
            let text = format!("{events:?}");
            assert!(!text.contains(KEY), "{kind:?} {wire_api:?}: {text}");
        }
        assert_eq!(fake.requests().len(), answers, "{kind:?} {wire_api:?}");
        for request in fake.requests() {
            assert!(
                !request.path.contains(KEY) && !request.query.unwrap_or_default().contains(KEY)
            );
        }
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: the HTTP client's trace lines are in it.
    assert!(logs.contains("TRACE hyper"), "{logs}");
    assert!(!logs.contains(KEY), "the key was logged:\n{logs}");
}
