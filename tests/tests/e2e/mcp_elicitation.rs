//! MCP elicitation (docs/mcp.md, "Elicitation") with the reference server
//! `@modelcontextprotocol/server-everything`, which offers its
//! `trigger-elicitation-request` tool only to clients that advertise
//! elicitation: an ACP client (the TypeScript SDK, `tests/acp-sdk/
//! elicitation.mjs`) answers the request and the tool's result carries the
//! answer; without a caller that can answer, the broker declines with a
//! notice; where no one can answer at all (`openheim run`'s broker) the
//! capability is not advertised.

use std::time::Duration;

use openheim_config::McpServerConfig;
use openheim_e2e::{Install, MockLlm, Reply, ToolCallSpec, last_tool_result};
use openheim_mcp_broker::McpBrokerConfig;
use openheim_proto::common::v1::{ElicitationAnswer, ToolCall};
use openheim_proto::mcp_broker::v1::mcp_broker_client::McpBrokerClient;
use openheim_proto::mcp_broker::v1::{
    CallToolInput, CallToolRequest, ElicitationReply, ListServersRequest, ListToolsRequest,
    ServerState, call_tool_event, call_tool_input,
};
use serde_json::{Value, json};

use crate::e2e::acp::lifecycle::run_sdk_script_with;
use crate::e2e::mcp::{everything_entry, node_available};

const TOOL: &str = "everything__trigger-elicitation-request";
const PATIENCE: Duration = Duration::from_secs(60);

type Client = McpBrokerClient<openheim_proto::GrpcChannel>;

fn available() -> bool {
    let ok = node_available() && everything_entry().is_file();
    if !ok {
        eprintln!("skipped: node or the reference server is missing; .ci/run installs them");
    }
    ok
}

/// A broker with the reference server, connected; `elicitation` as the
/// composition would set it.
async fn broker(elicitation: bool) -> Client {
    let mut config = McpBrokerConfig {
        servers: [(
            "everything".to_owned(),
            McpServerConfig {
                command: Some("node".to_owned()),
                args: vec![everything_entry().display().to_string(), "stdio".to_owned()],
                ..McpServerConfig::default()
            },
        )]
        .into(),
        ..McpBrokerConfig::default()
    };
    config.processes.elicitation = elicitation;
    let client = McpBrokerClient::new(openheim_mcp_broker::in_process(config));
    let connected = async {
        loop {
            let request = ListServersRequest::default();
            let servers = client.clone().list_servers(request).await.unwrap();
            let servers = servers.into_inner().servers;
            if servers
                .iter()
                .any(|s| s.state == ServerState::Connected as i32)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, connected)
        .await
        .expect("the reference server did not connect");
    client
}

async fn tools(client: &Client) -> Vec<String> {
    let listed = client
        .clone()
        .list_tools(ListToolsRequest::default())
        .await
        .unwrap();
    listed
        .into_inner()
        .tools
        .into_iter()
        .map(|t| t.name)
        .collect()
}

fn start(name: &str) -> CallToolRequest {
    CallToolRequest {
        session_id: String::new(),
        call: Some(ToolCall {
            id: "call-1".to_owned(),
            name: name.to_owned(),
            arguments_json: "{}".to_owned(),
        }),
        timeout_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_advertises_elicitation_only_when_asked_and_declines_without_an_asker() {
    if !available() {
        return;
    }
    // `openheim run`'s broker: servers are not told, so none asks.
    let quiet = broker(false).await;
    let names = tools(&quiet).await;
    assert!(names.iter().any(|n| n == "everything__echo"), "{names:?}");
    assert!(!names.iter().any(|n| n == TOOL), "{names:?}");

    let client = broker(true).await;
    let names = tools(&client).await;
    assert!(names.iter().any(|n| n == TOOL), "{names:?}");

    // A plain call: no one can answer, so it is declined, with a notice.
    let plain = client
        .clone()
        .call_tool(start(TOOL))
        .await
        .unwrap()
        .into_inner();
    assert!(plain.output.contains("declined"), "{}", plain.output);
    assert_eq!(plain.notices.len(), 1, "{:?}", plain.notices);
    assert!(
        plain.notices[0].contains("MCP server \"everything\" asked for input")
            && plain.notices[0].ends_with("declined: no one can answer here"),
        "{:?}",
        plain.notices
    );

    // An interactive call: the question comes on the stream, the answer
    // goes back, the result shows it.
    let (inputs, rx) = tokio::sync::mpsc::channel(4);
    let first = CallToolInput {
        input: Some(call_tool_input::Input::Start(start(TOOL))),
    };
    inputs.send(first).await.unwrap();
    let mut events = client
        .clone()
        .call_tool_interactive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let question = match events.message().await.unwrap().unwrap().event {
        Some(call_tool_event::Event::Question(question)) => question,
        other => panic!("expected a question, got {other:?}"),
    };
    let elicitation = question.elicitation.clone().unwrap();
    assert_eq!(elicitation.server, "everything");
    let schema: Value = serde_json::from_str(&elicitation.requested_schema_json).unwrap();
    assert_eq!(schema["properties"]["name"]["type"], "string", "{schema}");
    let reply = ElicitationReply {
        id: question.id,
        answer: Some(ElicitationAnswer {
            action: "accept".to_owned(),
            content_json: json!({"name": "Grace Hopper", "check": true}).to_string(),
        }),
    };
    let reply = CallToolInput {
        input: Some(call_tool_input::Input::Reply(reply)),
    };
    inputs.send(reply).await.unwrap();
    let result = match events.message().await.unwrap().unwrap().event {
        Some(call_tool_event::Event::Result(result)) => result,
        other => panic!("expected the result, got {other:?}"),
    };
    assert!(
        result.output.contains("- Name: Grace Hopper"),
        "{}",
        result.output
    );
    assert!(
        result.output.contains("- Agreed to terms: true"),
        "{}",
        result.output
    );
    assert!(result.notices.is_empty(), "{:?}", result.notices);
}

/// Runs `tests/acp-sdk/elicitation.mjs` in `mode` against `openheim acp`;
/// its `turn` observation.
async fn sdk_turn(install: &Install, mode: &str) -> Value {
    let seen = run_sdk_script_with(install, "elicitation.mjs", &[mode]).await;
    seen.into_iter()
        .find_map(|(what, v)| (what == "turn").then_some(v))
        .unwrap_or_else(|| panic!("no turn observation from elicitation.mjs ({mode})"))
}

fn script() -> Vec<Reply> {
    vec![
        Reply::tool_calls(vec![ToolCallSpec::new(TOOL, json!({})).with_id("e1")]),
        Reply::dynamic(|request| {
            let result = last_tool_result(request).unwrap_or_default();
            Reply::text(format!("The tool said: {result}"))
        }),
    ]
}

fn install_with_everything(mock: &MockLlm) -> Install {
    let server = format!(
        "[mcp_servers.everything]\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\n",
        everything_entry().display()
    );
    Install::new(mock, &server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acp_client_answers_an_mcp_servers_elicitation_request() {
    if !available() {
        return;
    }
    let mock = MockLlm::start(script()).await;
    let install = install_with_everything(&mock);
    let turn = sdk_turn(&install, "answer").await;
    assert_eq!(turn["stopReason"], "end_turn", "{turn}");
    let asked = &turn["asked"];
    assert_eq!(asked.as_array().map(Vec::len), Some(1), "{turn}");
    assert_eq!(asked[0]["mode"], "form", "{turn}");
    assert_eq!(asked[0]["toolCallId"], "e1", "{turn}");
    assert_eq!(asked[0]["server"], "everything", "{turn}");
    assert!(
        asked[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("provide inputs"),
        "{turn}"
    );
    assert!(
        asked[0]["fields"].to_string().contains("\"name\""),
        "{turn}"
    );
    // The answer reached the server: the tool's result, as the model and
    // the client saw it.
    let said = turn["text"].as_str().unwrap_or_default();
    assert!(said.contains("- Name: Ada Lovelace"), "{turn}");
    assert!(said.contains("- Favorite Integer: 7"), "{turn}");
    assert!(
        turn["results"].to_string().contains("Ada Lovelace"),
        "{turn}"
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acp_client_without_elicitation_gets_the_request_declined() {
    if !available() {
        return;
    }
    let mock = MockLlm::start(script()).await;
    let install = install_with_everything(&mock);
    let turn = sdk_turn(&install, "none").await;
    assert_eq!(turn["stopReason"], "end_turn", "{turn}");
    assert_eq!(turn["asked"], json!([]), "{turn}");
    let said = turn["text"].as_str().unwrap_or_default();
    assert!(said.contains("User declined"), "{turn}");
}

/// Whether the request `body` (OpenAI chat format) offers tool `name`.
fn offers(body: &Value, name: &str) -> bool {
    body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openheim_run_does_not_tell_servers_it_supports_elicitation() {
    if !available() {
        return;
    }
    let mock = MockLlm::start(Vec::new()).await;
    // Node may take longer than the startup grace: the model works a moment
    // (a shell command) until the server's tools have joined.
    for _ in 0..2 {
        mock.push_reply(Reply::dynamic(|body| {
            if offers(body, "everything__echo") {
                Reply::text("The server is there.")
            } else {
                Reply::tool_calls(vec![ToolCallSpec::new(
                    "execute_command",
                    json!({"command": "sleep 4"}),
                )])
            }
        }));
    }
    mock.push_reply(Reply::text("The server is there."));
    let install = install_with_everything(&mock);
    let output = install.openheim(&["run", "--yes", "Look around"]).await;
    assert!(output.status.success(), "{output:?}");
    let last = mock.request(mock.request_count() - 1).body;
    assert!(
        offers(&last, "everything__echo"),
        "the server's tools never came"
    );
    // Nobody can answer at `run`: the tool that asks is not offered.
    assert!(!offers(&last, TOOL), "{last}");
    mock.assert_no_violations();
}
