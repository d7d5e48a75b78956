//! The files task (write hello.txt → read it back → answer quoting it) with every provider
//! kind the real `openheim` binary speaks, against the mock in that provider's wire format;
//! a stream cut after text was shown still leaves exactly one complete reply in the history;
//! an overloaded primary hands the turn to its fallback, and the run says so.

use openheim_e2e::install::{IDENTITY, Install, history, session_id, stderr, stdout};
use openheim_e2e::mock_llm::Wire;
use openheim_e2e::{MockLlm, Reply, ToolCallSpec, last_tool_result};
use serde_json::{Value, json};

const CONTENT: &str = "Hello from openheim! ünïcødé ✓";
pub(crate) const KEY: &str = "sk-e2e-provider-key";

/// A provider kind as the user configures it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    Gemini,
    Compatible,
}

impl Kind {
    /// The `[providers.NAME]` body pointing at `mock`.
    pub(crate) fn settings(self, mock: &MockLlm) -> String {
        let (kind, base, extra) = match self {
            Kind::OpenAiChat => ("openai", mock.base_url(), ""),
            Kind::OpenAiResponses => ("openai", mock.base_url(), "wire_api = \"responses\"\n"),
            Kind::Anthropic => ("anthropic", mock.base_url(), ""),
            Kind::Gemini => ("gemini", mock.gemini_base_url(), ""),
            Kind::Compatible => ("openai_compatible", mock.base_url(), ""),
        };
        let key = match self {
            Kind::Compatible => String::new(),
            _ => format!("api_key = \"{KEY}\"\n"),
        };
        format!(
            "kind = \"{kind}\"\napi_base = \"{base}\"\ndefault_model = \"mock-model\"\n{key}{extra}\
             retry_base_delay_ms = 1\nretry_max_delay_ms = 5\n"
        )
    }

    pub(crate) fn wire(self) -> Wire {
        match self {
            Kind::OpenAiChat | Kind::Compatible => Wire::Chat,
            Kind::OpenAiResponses => Wire::Responses,
            Kind::Anthropic => Wire::Anthropic,
            Kind::Gemini => Wire::Gemini,
        }
    }

    /// SSE events of `Reply::text(..)` up to and including its first text piece.
    pub(crate) fn events_through_first_text(self) -> usize {
        match self {
            // role chunk, first piece
            Kind::OpenAiChat | Kind::Compatible => 2,
            // response.created, .in_progress, .output_item.added, .content_part.added, delta
            Kind::OpenAiResponses => 5,
            // message_start, content_block_start, ping, text_delta
            Kind::Anthropic => 4,
            // the first text chunk
            Kind::Gemini => 1,
        }
    }

    pub(crate) async fn mock(self, script: Vec<Reply>) -> MockLlm {
        match self {
            Kind::Compatible => MockLlm::start(script).await,
            _ => MockLlm::builder().expect_api_key(KEY).start(script).await,
        }
    }
}

/// An install whose only provider `p` is of `kind`, at `mock`.
pub(crate) fn install(kind: Kind, mock: &MockLlm) -> Install {
    let install = Install::new(mock, "");
    let config = format!(
        "default_provider = \"p\"\n\n[providers.p]\n{}",
        kind.settings(mock)
    );
    std::fs::write(install.home().join("config.toml"), config).unwrap();
    install
}

fn script() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            json!({"path": "hello.txt", "content": CONTENT}),
        )])
        .with_thinking("The user wants a file.")
        .with_text("I'll write the file."),
        Reply::tool_calls(vec![ToolCallSpec::new(
            "read_file",
            json!({"path": "hello.txt"}),
        )]),
        Reply::dynamic(|request| {
            let read = last_tool_result(request).unwrap_or_default();
            Reply::text(format!("The file says: {read}"))
        }),
    ]
}

/// The roles of a session's stored messages, in order.
fn roles(records: &[Value]) -> Vec<&str> {
    records[1..]
        .iter()
        .filter(|r| r["type"] == "message")
        .map(|r| r["message"]["role"].as_str().unwrap())
        .collect()
}

async fn files_task(kind: Kind) {
    let mock = kind.mock(script()).await;
    let install = install(kind, &mock);
    let output = install
        .openheim(&["run", "Write hello.txt, then read it back"])
        .await;
    assert!(
        output.status.success(),
        "{kind:?}: openheim run failed: {:?}\nstderr:\n{}",
        output.status,
        stderr(&output)
    );
    mock.assert_no_violations();
    assert_eq!(mock.request_count(), 3, "{kind:?}");
    assert!((0..3).all(|i| mock.request(i).wire() == Some(kind.wire())));
    let written = std::fs::read_to_string(install.workspace().join("hello.txt")).unwrap();
    assert_eq!(written, CONTENT, "{kind:?}");
    let out = stdout(&output);
    assert!(
        out.contains(&format!("The file says: {CONTENT}")),
        "{kind:?}: {out}"
    );
    let system = mock.system_prompt(0).expect("a system prompt");
    assert!(system.contains(IDENTITY), "{kind:?}: {system}");
    let tools = mock.tool_names(0);
    for name in ["read_file", "write_file"] {
        assert!(tools.iter().any(|t| t == name), "{kind:?}: {tools:?}");
    }
    let id = session_id(&output);
    let records = history(&install.history_file(&id));
    assert_eq!(
        roles(&records),
        [
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant"
        ],
        "{kind:?}"
    );
    replayed_thinking(kind, &mock);

    // Resume: the next turn carries the whole stored conversation.
    mock.push_reply(Reply::text("Still here."));
    let again = install
        .openheim(&["run", "Are you still there?", "--resume", &id])
        .await;
    assert!(again.status.success(), "{kind:?}: {}", stderr(&again));
    assert_eq!(stdout(&again).trim(), "Still here.");
    assert_eq!(
        mock.last_user_text(3).as_deref(),
        Some("Are you still there?")
    );
    assert_eq!(
        last_tool_result(&mock.request(3).body).as_deref(),
        Some(CONTENT)
    );
    mock.assert_no_violations();
}

/// The first reply's thinking goes back to the provider that signed it, with its signature.
fn replayed_thinking(kind: Kind, mock: &MockLlm) {
    let body = mock.request(1).body;
    match kind {
        Kind::Anthropic => {
            let first = &body["messages"][1]["content"][0];
            assert_eq!(first["type"], "thinking", "{body:#}");
            assert_eq!(first["thinking"], "The user wants a file.");
            assert_eq!(first["signature"], "EqQBmockSignature1");
        }
        Kind::Gemini => {
            let parts = body["contents"][1]["parts"].as_array().unwrap();
            let call = parts
                .iter()
                .find(|p| p.get("functionCall").is_some())
                .unwrap();
            assert_eq!(
                call["thoughtSignature"], "CiQBmockThoughtSignature1",
                "{body:#}"
            );
        }
        Kind::OpenAiChat | Kind::OpenAiResponses | Kind::Compatible => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_task_with_openai_chat() {
    files_task(Kind::OpenAiChat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_task_with_openai_responses() {
    files_task(Kind::OpenAiResponses).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_task_with_anthropic() {
    files_task(Kind::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_task_with_gemini() {
    files_task(Kind::Gemini).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_task_with_openai_compatible() {
    files_task(Kind::Compatible).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_after_text_leaves_one_complete_reply_in_history() {
    for kind in [
        Kind::OpenAiChat,
        Kind::OpenAiResponses,
        Kind::Anthropic,
        Kind::Gemini,
    ] {
        let script = vec![
            Reply::text("A partial answer that dies.").cut_after(kind.events_through_first_text()),
            Reply::text("The complete answer."),
        ];
        let mock = kind.mock(script).await;
        let install = install(kind, &mock);
        let output = install.openheim(&["run", "Answer me"]).await;
        assert!(output.status.success(), "{kind:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("interrupted"),
            "{kind:?}: the cut reached the user as a notice:\n{}",
            stderr(&output)
        );
        assert_eq!(mock.request_count(), 2, "{kind:?}");
        let records = history(&install.history_file(&session_id(&output)));
        assert_eq!(roles(&records), ["user", "assistant"], "{kind:?}");
        let assistant = records
            .iter()
            .rfind(|r| r["message"]["role"] == "assistant")
            .unwrap();
        assert_eq!(
            assistant["message"]["content"],
            json!([{"type": "text", "text": "The complete answer."}]),
            "{kind:?}"
        );
        mock.assert_no_violations();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_primary_falls_back_and_the_run_says_so() {
    let overloaded = || {
        Reply::http_error(
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )
    };
    let primary = MockLlm::builder()
        .expect_api_key(KEY)
        .start(vec![overloaded(), overloaded(), overloaded()])
        .await;
    let backup = MockLlm::start(vec![Reply::text("Answer from the backup.")]).await;
    let install = Install::new(&backup, "");
    let config = format!(
        "default_provider = \"primary\"\n\n\
         [providers.primary]\n{}fallbacks = [\"backup/backup-model\"]\nmax_retries = 3\n\n\
         [providers.backup]\n{}",
        Kind::Anthropic.settings(&primary),
        Kind::Compatible.settings(&backup),
    );
    std::fs::write(install.home().join("config.toml"), config).unwrap();
    let output = install.openheim(&["run", "Hello?"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "Answer from the backup.");
    assert!(
        stderr(&output).contains("note: falling back to backup/backup-model"),
        "{}",
        stderr(&output)
    );
    // Overloaded: no retries against the primary, straight to the fallback.
    assert_eq!(primary.request_count(), 1);
    assert_eq!(primary.request(0).wire(), Some(Wire::Anthropic));
    assert_eq!(backup.request_count(), 1);
    assert_eq!(backup.request(0).body["model"], "backup-model");
    primary.assert_no_violations();
    backup.assert_no_violations();
}
