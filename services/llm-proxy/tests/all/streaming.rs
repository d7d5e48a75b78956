//! Successful completions: text, tool calls, usage, the request body the
//! provider receives, model listing, cancellation and the TCP server.

use std::time::Duration;

use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{
    ContentBlock, Message, Role, StopReason, ToolCall, ToolDefinition, ToolResult,
};
use openheim_proto::llm_proxy::v1::completion_event::Event;
use openheim_proto::llm_proxy::v1::llm_proxy_client::LlmProxyClient;
use openheim_proto::llm_proxy::v1::{
    CompleteRequest, ListModelsRequest, ModelSelected, ResolveModelRequest,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::support::*;

#[tokio::test]
async fn text_streams_with_usage_and_cached_tokens() {
    let fake = FakeProvider::start(vec![Reply::Stream {
        data: vec![
            role_chunk(),
            text_chunk("Hel"),
            text_chunk("lo, wörld é"),
            finish_chunk("stop"),
            usage_chunk(1200, 7, 1024),
            done(),
        ],
        end: End::Clean,
    }])
    .await;
    let events = complete(config(vec![("openai", provider(&fake.base))]), prompt("hi")).await;
    assert_eq!(
        events[0],
        Event::ModelSelected(ModelSelected {
            provider: "openai".into(),
            model: "gpt-test".into(),
            context_window: 128_000,
            is_fallback: false,
        })
    );
    assert_eq!(
        shape(&events[1..]),
        [
            "text Hel",
            "text lo, wörld é",
            "usage in=1200 out=7 cache_read=1024",
            "finished EndTurn",
        ]
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(&*format!("Bearer {TEST_KEY}"))
    );
}

#[tokio::test]
async fn two_tool_calls_arrive_in_fragments_and_reassemble() {
    let call = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut function = json!({"arguments": args});
        if let Some(name) = name {
            function["name"] = json!(name);
        }
        let mut call = json!({"index": index, "function": function});
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        chunk(json!({"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}))
    };
    let fake = FakeProvider::start(vec![Reply::Stream {
        data: vec![
            role_chunk(),
            call(0, Some("call_read"), Some("read_file"), ""),
            call(0, None, None, "{\"pa"),
            call(0, None, None, "th\": \"src/"),
            call(0, None, None, "main.rs\"}"),
            call(1, Some("call_list"), Some("list_dir"), ""),
            call(1, None, None, "{\"path\""),
            call(1, None, None, ": \".\"}"),
            finish_chunk("tool_calls"),
            usage_chunk(50, 30, 0),
            done(),
        ],
        end: End::Clean,
    }])
    .await;
    let events = complete(
        config(vec![("openai", provider(&fake.base))]),
        prompt("look"),
    )
    .await;
    // Reassemble the way a caller does: by index.
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for event in &events {
        if let Event::ToolCallDelta(delta) = event {
            let index = delta.index as usize;
            if calls.len() <= index {
                calls.resize(index + 1, Default::default());
            }
            let call = &mut calls[index];
            call.0.push_str(&delta.id);
            call.1.push_str(&delta.name);
            call.2.push_str(&delta.arguments_fragment);
        }
    }
    let args = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].0.as_str(), calls[0].1.as_str()),
        ("call_read", "read_file")
    );
    assert_eq!(args(&calls[0].2), json!({"path": "src/main.rs"}));
    assert_eq!(
        (calls[1].0.as_str(), calls[1].1.as_str()),
        ("call_list", "list_dir")
    );
    assert_eq!(args(&calls[1].2), json!({"path": "."}));
    let Some(Event::Finished(finished)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(finished.stop_reason(), StopReason::ToolUse);
}

fn block(block: Block) -> ContentBlock {
    ContentBlock { block: Some(block) }
}

fn conversation() -> CompleteRequest {
    CompleteRequest {
        model: "openai/gpt-special".into(),
        system_prompt: "You are a test.".into(),
        messages: vec![
            Message {
                role: Role::User.into(),
                content: vec![block(Block::Text("read it".into()))],
            },
            Message {
                role: Role::Assistant.into(),
                content: vec![
                    block(Block::Text("Reading.".into())),
                    block(Block::ToolCall(ToolCall {
                        id: "call_1".into(),
                        name: "read_file".into(),
                        arguments_json: r#"{"path":"a.txt"}"#.into(),
                    })),
                ],
            },
            Message {
                role: Role::Tool.into(),
                content: vec![block(Block::ToolResult(ToolResult {
                    tool_call_id: "call_1".into(),
                    content: "contents of a".into(),
                    is_error: false,
                    images: Vec::new(),
                }))],
            },
        ],
        tools: vec![ToolDefinition {
            name: "read_file".into(),
            description: "Read a file.".into(),
            input_schema_json:
                r#"{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}"#
                    .into(),
            ..ToolDefinition::default()
        }],
        max_tokens: Some(256),
        temperature: Some(0.25),
        thinking: None,
    }
}

#[tokio::test]
async fn the_provider_receives_a_well_formed_body() {
    let fake = FakeProvider::start(vec![text_reply("done")]).await;
    let events = complete(
        config(vec![("openai", provider(&fake.base))]),
        conversation(),
    )
    .await;
    assert!(
        matches!(events.last(), Some(Event::Finished(_))),
        "{events:?}"
    );
    let body = &fake.requests()[0].body;
    assert_eq!(
        *body,
        json!({
            "model": "gpt-special",
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 256,
            "temperature": 0.25,
            "messages": [
                {"role": "system", "content": "You are a test."},
                {"role": "user", "content": "read it"},
                {"role": "assistant", "content": "Reading.", "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "read_file", "arguments": "{\"path\":\"a.txt\"}"}
                }]},
                {"role": "tool", "tool_call_id": "call_1", "content": "contents of a"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "read_file",
                "description": "Read a file.",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
            }}]
        })
    );
}

#[tokio::test]
async fn compatible_servers_get_their_own_spelling_and_no_key() {
    let fake = FakeProvider::start(vec![text_reply("ok")]).await;
    let mut local = provider(&fake.base);
    local.kind = None; // inferred from the name: openai_compatible
    local.api_key = None;
    local.max_tokens = Some(99);
    let events = complete(config(vec![("ollama", local)]), prompt("hi")).await;
    assert_eq!(shape(&events).last().unwrap(), "finished EndTurn");
    let request = &fake.requests()[0];
    assert_eq!(request.authorization, None);
    assert_eq!(request.body["max_tokens"], 99);
    assert!(request.body.get("max_completion_tokens").is_none());
}

#[tokio::test]
async fn list_models_comes_from_the_config_without_keys() {
    let mut client = client(config(vec![(
        "openai",
        provider("https://api.example.com/v1"),
    )]));
    let list = client
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.default_provider, "openai");
    assert_eq!(list.providers.len(), 1);
    assert_eq!(list.providers[0].kind, "openai");
    assert_eq!(list.providers[0].default_model, "gpt-test");
    assert!(!format!("{list:?}").contains(TEST_KEY));
}

#[tokio::test]
async fn resolve_model_tells_the_window_without_calling_the_provider() {
    let mut settings = provider("https://api.example.com/v1");
    settings.max_tokens = Some(2_000);
    let mut client = client(config(vec![("openai", settings.clone())]));
    let resolved = client
        .resolve_model(ResolveModelRequest { model: "".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.provider, "openai");
    assert_eq!(resolved.model, "gpt-test");
    assert_eq!(resolved.context_window, 128_000);
    assert_eq!(resolved.max_output_tokens, 2_000);
    let mut without_default = config(vec![("openai", settings)]);
    without_default.default_provider = None;
    let status = crate::support::client(without_default)
        .resolve_model(ResolveModelRequest {
            model: "nowhere/x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("unknown provider nowhere"),
        "{status:?}"
    );
}

#[tokio::test]
async fn dropping_the_grpc_stream_stops_the_upstream_request() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let fake = FakeProvider::start(vec![Reply::Stream {
        data: vec![role_chunk(), text_chunk("thinking about it")],
        end: End::Hang(dropped_tx),
    }])
    .await;
    let mut client = client(config(vec![("openai", provider(&fake.base))]));
    let mut stream = client.complete(prompt("hi")).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(first, Event::ModelSelected(_)));
    let second = stream.message().await.unwrap().unwrap().event.unwrap();
    assert_eq!(second, Event::TextDelta("thinking about it".into()));
    drop(stream);
    // A safety net against hanging the suite, not a wait: the signal comes
    // as soon as the proxy closes the connection.
    tokio::time::timeout(Duration::from_secs(30), dropped_rx)
        .await
        .expect("the fake server saw the connection close")
        .unwrap();
}

#[tokio::test]
async fn serves_over_tcp_until_shutdown() {
    let fake = FakeProvider::start(vec![text_reply("over tcp")]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(openheim_llm_proxy::serve(
        config(vec![("openai", provider(&fake.base))]),
        listener,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let channel = openheim_proto::transport::remote(&address.to_string()).unwrap();
    let mut client = LlmProxyClient::new(channel);
    let mut stream = client.complete(prompt("hi")).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event.event.unwrap());
    }
    assert!(
        shape(&events).contains(&"text over tcp".to_owned()),
        "{events:?}"
    );
    drop(client);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn interleaved_fragments_of_two_calls_reassemble_by_index() {
    let fragment = |index: u32, header: Option<(&str, &str)>, args: &str| {
        let mut call = json!({"index": index, "function": {"arguments": args}});
        if let Some((id, name)) = header {
            call["id"] = json!(id);
            call["type"] = json!("function");
            call["function"]["name"] = json!(name);
        }
        chunk(json!({"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}))
    };
    let fake = FakeProvider::start(vec![Reply::Stream {
        data: vec![
            role_chunk(),
            fragment(0, Some(("call_read", "read_file")), ""),
            fragment(1, Some(("call_list", "list_dir")), ""),
            fragment(0, None, "{\"pa"),
            fragment(1, None, "{\"path\""),
            fragment(0, None, "th\": \"src/main.rs\"}"),
            fragment(1, None, ": \".\"}"),
            finish_chunk("tool_calls"),
            done(),
        ],
        end: End::Clean,
    }])
    .await;
    let events = complete(
        config(vec![("openai", provider(&fake.base))]),
        prompt("look"),
    )
    .await;
    assert_eq!(
        tool_calls(&events),
        [
            (
                "call_read".into(),
                "read_file".into(),
                json!({"path": "src/main.rs"})
            ),
            ("call_list".into(), "list_dir".into(), json!({"path": "."})),
        ]
    );
}

#[tokio::test]
async fn content_filter_is_a_refusal() {
    let fake = FakeProvider::start(vec![Reply::Stream {
        data: vec![
            role_chunk(),
            text_chunk("I"),
            finish_chunk("content_filter"),
            done(),
        ],
        end: End::Clean,
    }])
    .await;
    let events = complete(config(vec![("openai", provider(&fake.base))]), prompt("hi")).await;
    assert_eq!(shape(&events).last().unwrap(), "finished Refusal");
}
