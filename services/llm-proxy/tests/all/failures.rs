//! Failures: retries, interruptions, fallbacks and the errors that say what
//! to fix.

use openheim_proto::llm_proxy::v1::ErrorKind;
use openheim_proto::llm_proxy::v1::completion_event::Event;
use serde_json::json;

use crate::support::*;

fn error_body(message: &str, kind: &str, code: &str) -> serde_json::Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

#[tokio::test]
async fn rate_limit_with_retry_after_zero_is_retried_transparently() {
    let fake = FakeProvider::start(vec![
        Reply::Status {
            status: 429,
            headers: vec![("retry-after", "0")],
            body: error_body(
                "Rate limit reached for gpt-test",
                "requests",
                "rate_limit_exceeded",
            ),
        },
        text_reply("after the wait"),
    ])
    .await;
    let events = complete(config(vec![("openai", provider(&fake.base))]), prompt("hi")).await;
    assert_eq!(
        shape(&events),
        [
            "selected openai/gpt-test fallback=false",
            "retrying RateLimited attempt=1 delay_ms=0",
            "selected openai/gpt-test fallback=false",
            "text after the wait",
            "usage in=10 out=2 cache_read=0",
            "finished EndTurn",
        ]
    );
    let Event::Retrying(retrying) = &events[1] else {
        unreachable!()
    };
    let error = retrying.error.as_ref().unwrap();
    assert_eq!(error.http_status, Some(429));
    assert!(
        error.message.contains("Rate limit reached"),
        "{}",
        error.message
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_rejected_key_names_the_env_var_and_never_the_key() {
    let fake = FakeProvider::start(vec![Reply::Status {
        status: 401,
        headers: vec![],
        // OpenAI quotes (part of) the key it rejected.
        body: error_body(
            &format!("Incorrect API key provided: {TEST_KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
            "invalid_request_error",
            "invalid_api_key",
        ),
    }])
    .await;
    let events = complete(config(vec![("openai", provider(&fake.base))]), prompt("hi")).await;
    assert_eq!(
        shape(&events),
        ["selected openai/gpt-test fallback=false", "error Auth"]
    );
    let Event::Error(error) = &events[1] else {
        unreachable!()
    };
    assert_eq!(
        error.message,
        "provider openai rejected the API key (401): check OPENAI_API_KEY"
    );
    assert_eq!(error.http_status, Some(401));
    assert!(!error.retryable);
    assert!(!format!("{events:?}").contains(TEST_KEY));
    assert_eq!(fake.requests().len(), 1, "auth errors are not retried");
}

#[tokio::test]
async fn a_stream_cut_after_text_is_interrupted_and_retried() {
    let fake = FakeProvider::start(vec![
        Reply::Stream {
            data: vec![role_chunk(), text_chunk("partial ans")],
            end: End::Cut,
        },
        Reply::Stream {
            // Ends cleanly but without finish_reason or [DONE]: also early.
            data: vec![role_chunk(), text_chunk("again partial")],
            end: End::Clean,
        },
        text_reply("whole answer"),
    ])
    .await;
    let events = complete(config(vec![("openai", provider(&fake.base))]), prompt("hi")).await;
    assert_eq!(
        shape(&events),
        [
            "selected openai/gpt-test fallback=false",
            "text partial ans",
            "interrupted Network will_retry=true",
            "selected openai/gpt-test fallback=false",
            "text again partial",
            "interrupted Network will_retry=true",
            "selected openai/gpt-test fallback=false",
            "text whole answer",
            "usage in=10 out=2 cache_read=0",
            "finished EndTurn",
        ]
    );
    let Event::Interrupted(interrupted) = &events[5] else {
        unreachable!()
    };
    let error = interrupted.error.as_ref().unwrap();
    assert!(error.retryable);
    assert!(
        error.message.contains("stream ended early"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn exhausted_retries_fall_back_to_the_next_provider() {
    let server_error = || Reply::Status {
        status: 500,
        headers: vec![],
        body: error_body("The server had an error", "server_error", "server_error"),
    };
    let primary = FakeProvider::start(vec![server_error(), server_error()]).await;
    let backup = FakeProvider::start(vec![text_reply("from the backup")]).await;
    let mut main = provider(&primary.base);
    main.max_retries = 1;
    main.fallbacks = vec!["backup/backup-model".into()];
    let events = complete(
        config(vec![("openai", main), ("backup", provider(&backup.base))]),
        prompt("hi"),
    )
    .await;
    let shape = shape(&events);
    assert_eq!(shape[0], "selected openai/gpt-test fallback=false");
    assert!(
        shape[1].starts_with("retrying Provider attempt=1"),
        "{shape:?}"
    );
    assert_eq!(
        shape[2..],
        [
            "selected openai/gpt-test fallback=false",
            "selected backup/backup-model fallback=true",
            "text from the backup",
            "usage in=10 out=2 cache_read=0",
            "finished EndTurn",
        ]
    );
    assert_eq!(primary.requests().len(), 2);
    assert_eq!(backup.requests()[0].body["model"], "backup-model");
}

#[tokio::test]
async fn a_key_is_never_sent_over_plain_http_to_a_remote_host() {
    let events = complete(
        config(vec![("openai", provider("http://example.com/v1"))]),
        prompt("hi"),
    )
    .await;
    assert_eq!(shape(&events), ["error Config"]);
    let Event::Error(error) = &events[0] else {
        unreachable!()
    };
    assert!(error.message.contains("plain http://"), "{}", error.message);
    assert_eq!(error.provider, "openai");
    assert!(!error.message.contains(TEST_KEY));
}

#[tokio::test]
async fn context_too_long_is_its_own_kind() {
    let fake = FakeProvider::start(vec![Reply::Status {
        status: 400,
        headers: vec![],
        body: error_body(
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
    }])
    .await;
    let events = complete(config(vec![("openai", provider(&fake.base))]), prompt("hi")).await;
    let Some(Event::Error(error)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.kind(), ErrorKind::ContextTooLong);
    assert!(
        error.message.contains("maximum context length is 128000"),
        "{}",
        error.message
    );
    // Sending the same conversation again cannot help: the agent loop
    // shrinks it and asks again, so the proxy neither retries nor falls back.
    assert!(!error.retryable);
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(events.len(), 2, "{events:?}");
}

#[tokio::test]
async fn unknown_models_say_where_the_request_went() {
    let fake = FakeProvider::start(vec![Reply::Status {
        status: 404,
        headers: vec![],
        body: error_body(
            "The model `gpt-nope` does not exist",
            "invalid_request_error",
            "model_not_found",
        ),
    }])
    .await;
    let mut request = prompt("hi");
    request.model = "openai/gpt-nope".into();
    let events = complete(config(vec![("openai", provider(&fake.base))]), request).await;
    let Some(Event::Error(error)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert_eq!(error.model, "gpt-nope");
    assert!(
        error.message.contains("\"gpt-nope\"") && error.message.contains(&fake.base),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn compatible_servers_that_reject_stream_options_are_asked_again_without() {
    let fake = FakeProvider::start(vec![
        Reply::Status {
            status: 400,
            headers: vec![],
            body: json!({"error": {"message": "Unrecognized request argument supplied: stream_options", "code": 400}}),
        },
        text_reply("first"),
        text_reply("second"),
    ])
    .await;
    let mut local = provider(&fake.base);
    local.kind = None;
    local.api_key = None;
    let config = config(vec![("vllm", local)]);
    let mut client = client(config);
    for expected in ["first", "second"] {
        let mut stream = client.complete(prompt("hi")).await.unwrap().into_inner();
        let mut events = Vec::new();
        while let Some(event) = stream.message().await.unwrap() {
            events.push(event.event.unwrap());
        }
        assert_eq!(
            shape(&events)[..2],
            [
                "selected vllm/gpt-test fallback=false".to_owned(),
                format!("text {expected}")
            ]
        );
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].body.get("stream_options").is_some());
    // Remembered for the provider: not sent again.
    assert!(requests[1].body.get("stream_options").is_none());
    assert!(requests[2].body.get("stream_options").is_none());
}

#[tokio::test]
async fn an_error_chunk_mid_stream_interrupts_and_is_retried() {
    let fake = FakeProvider::start(vec![
        Reply::Stream {
            data: vec![
                role_chunk(),
                text_chunk("par"),
                json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}).to_string(),
            ],
            end: End::Clean,
        },
        text_reply("whole"),
    ])
    .await;
    let events = complete(config(vec![("openai", provider(&fake.base))]), prompt("hi")).await;
    assert_eq!(
        shape(&events)[..4],
        [
            "selected openai/gpt-test fallback=false",
            "text par",
            "interrupted Provider will_retry=true",
            "selected openai/gpt-test fallback=false",
        ]
    );
    assert_eq!(shape(&events).last().unwrap(), "finished EndTurn");
}
