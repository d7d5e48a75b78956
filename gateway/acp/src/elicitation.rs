//! MCP elicitation through ACP (docs/acp.md, "elicitation"): an MCP
//! server's request for input, made during one of the turn's tool calls,
//! becomes an `elicitation/create` request (form mode, scoped to the
//! session and the tool call) for a client that advertised
//! `elicitation.form`; its answer goes back to the server.

use agent_client_protocol::v1::schema::{CreateElicitationRequest, CreateElicitationResponse};
use openheim_proto::common::v1::{Elicitation, ElicitationAnswer};
use serde_json::{Value, json};

/// The ACP request for `elicitation`; an error when its schema is not one
/// ACP can carry.
pub fn request(
    session_id: &str,
    tool_call_id: &str,
    elicitation: &Elicitation,
) -> Result<CreateElicitationRequest, serde_json::Error> {
    let schema: Value = serde_json::from_str(&elicitation.requested_schema_json)?;
    serde_json::from_value(json!({
        "mode": "form",
        "sessionId": session_id,
        "toolCallId": tool_call_id,
        "message": elicitation.message,
        "requestedSchema": schema,
        "_meta": {"openheim": {"mcpServer": elicitation.server}},
    }))
}

/// The client's answer, for the MCP server.
pub fn answer(response: &CreateElicitationResponse) -> ElicitationAnswer {
    let value = serde_json::to_value(response).unwrap_or(Value::Null);
    let action = value["action"]
        .as_str()
        .filter(|a| matches!(*a, "accept" | "cancel"))
        .unwrap_or("decline");
    let content_json = match (&value["content"], action) {
        (content @ Value::Object(_), "accept") => content.to_string(),
        _ => String::new(),
    };
    ElicitationAnswer {
        action: action.to_owned(),
        content_json,
    }
}

/// The answer when there is none (the client failed, or the prompt was
/// cancelled).
pub fn cancelled() -> ElicitationAnswer {
    ElicitationAnswer {
        action: "cancel".to_owned(),
        content_json: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_request_round_trips_and_answers_map_back() {
        let elicitation = Elicitation {
            server: "everything".into(),
            message: "Your name?".into(),
            requested_schema_json: json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "title": "Name"},
                    "check": {"type": "boolean"},
                    "integer": {"type": "integer", "minimum": 1, "maximum": 100},
                    "friend": {"type": "string", "enum": ["Monica", "Ross"]},
                },
                "required": ["name"],
            })
            .to_string(),
        };
        let request = request("s1", "c1", &elicitation).unwrap();
        let sent = serde_json::to_value(&request).unwrap();
        assert_eq!(sent["mode"], "form");
        assert_eq!(sent["sessionId"], "s1");
        assert_eq!(sent["toolCallId"], "c1");
        assert_eq!(
            sent["requestedSchema"]["properties"]["name"]["type"],
            "string"
        );
        let accepted: CreateElicitationResponse =
            serde_json::from_value(json!({"action": "accept", "content": {"name": "Ada"}}))
                .unwrap();
        let answer = answer(&accepted);
        assert_eq!(answer.action, "accept");
        assert_eq!(answer.content_json, r#"{"name":"Ada"}"#);
        let declined: CreateElicitationResponse =
            serde_json::from_value(json!({"action": "decline"})).unwrap();
        assert_eq!(super::answer(&declined).action, "decline");
    }
}
