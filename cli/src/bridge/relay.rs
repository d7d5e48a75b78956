//! The bookkeeping of the relay: what the bridge must remember of the
//! messages passing through so a new socket can take over from a dropped
//! one. Pure: no I/O.
//!
//! - The editor's `initialize` parameters, sent again on every new socket.
//! - The sessions the editor has on the server (`session/new`, `/load`,
//!   `/resume` answered; `session/close`, `/delete` forget them), each with
//!   its `cwd` and `mcpServers`, to be resumed.
//! - The editor's requests still unanswered: when the socket drops each is
//!   answered with an error (the server that had it is gone).
//! - The server's requests to the editor (`fs/*`, `terminal/*`,
//!   `session/request_permission`): their ids are replaced by the bridge's
//!   own, so ids of a new socket never meet answers meant for an old one;
//!   when the socket drops the editor is told to cancel them.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

/// JSON-RPC "internal error", with `data.retryable`.
pub const INTERNAL_ERROR: i64 = -32603;
/// JSON-RPC "parse error".
pub const PARSE_ERROR: i64 = -32700;

/// One line of either side, classified.
#[derive(Debug)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        value: Map<String, Value>,
    },
    Notification(Map<String, Value>),
    Response {
        id: Value,
        value: Map<String, Value>,
    },
    /// A batch or another JSON value: passed on untouched.
    Other(Value),
    /// Not JSON (or a note of the line reader about a dropped line).
    Invalid,
}

impl Message {
    pub fn parse(line: &str) -> Self {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            return Self::Invalid;
        };
        let Value::Object(object) = value else {
            return Self::Other(value);
        };
        let id = object.get("id").cloned();
        let method = object
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (id, method) {
            (Some(id), Some(method)) => Self::Request {
                id,
                method,
                value: object,
            },
            (None, Some(_)) => Self::Notification(object),
            (Some(id), None) => Self::Response { id, value: object },
            (None, None) => Self::Other(Value::Object(object)),
        }
    }
}

/// An editor request the server has not answered yet.
#[derive(Debug)]
struct Pending {
    id: Value,
    method: String,
    params: Value,
}

/// What a session needs to be resumed on a new socket.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSetup {
    pub cwd: Value,
    pub mcp_servers: Value,
}

#[derive(Debug, Default)]
pub struct Relay {
    initialize: Option<Value>,
    sessions: BTreeMap<String, SessionSetup>,
    pending: HashMap<String, Pending>,
    /// Bridge id → the server's id, for requests of the current socket.
    remote_requests: HashMap<u64, Value>,
    next_id: u64,
}

impl Relay {
    /// Notes an editor request about to be sent to the server.
    pub fn editor_request(&mut self, id: &Value, method: &str, value: &Map<String, Value>) {
        let params = value.get("params").cloned().unwrap_or(Value::Null);
        if method == "initialize" {
            self.initialize = Some(params.clone());
        }
        self.pending.insert(
            key(id),
            Pending {
                id: id.clone(),
                method: method.to_owned(),
                params,
            },
        );
    }

    /// The editor's answer to a server request, with the server's id back;
    /// `None` when it answers a request of a socket that dropped.
    pub fn editor_response(&mut self, id: &Value, mut value: Map<String, Value>) -> Option<Value> {
        let original = self.remote_requests.remove(&id.as_u64()?)?;
        value.insert("id".to_owned(), original);
        Some(Value::Object(value))
    }

    /// Notes the server's answer to an editor request (the sessions it
    /// makes or ends).
    pub fn remote_response(&mut self, id: &Value, value: &Map<String, Value>) {
        let Some(pending) = self.pending.remove(&key(id)) else {
            return;
        };
        let Some(result) = value.get("result") else {
            return;
        };
        let param = |name: &str| pending.params.get(name).cloned().unwrap_or(Value::Null);
        let session = match pending.method.as_str() {
            "session/new" => result.get("sessionId"),
            _ => pending.params.get("sessionId"),
        };
        let Some(session) = session.and_then(Value::as_str).map(str::to_owned) else {
            return;
        };
        match pending.method.as_str() {
            "session/new" | "session/load" | "session/resume" => {
                let setup = SessionSetup {
                    cwd: param("cwd"),
                    mcp_servers: match param("mcpServers") {
                        Value::Null => json!([]),
                        servers => servers,
                    },
                };
                self.sessions.insert(session, setup);
            }
            "session/close" | "session/delete" => {
                self.sessions.remove(&session);
            }
            _ => {}
        }
    }

    /// A server request for the editor, under a bridge id.
    pub fn remote_request(&mut self, id: Value, mut value: Map<String, Value>) -> Value {
        self.next_id += 1;
        self.remote_requests.insert(self.next_id, id);
        value.insert("id".to_owned(), Value::from(self.next_id));
        Value::Object(value)
    }

    /// The socket dropped: an error answer for each editor request in
    /// flight and a `$/cancel_request` for each server request the editor
    /// still has. The sessions are kept, to be resumed.
    pub fn dropped(&mut self, reason: &str) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .pending
            .drain()
            .map(|(_, pending)| {
                let message = format!(
                    "{} was in flight when {reason}; openheim is reconnecting and resuming the session: send it again",
                    pending.method
                );
                error_answer(&pending.id, INTERNAL_ERROR, &message, true)
            })
            .collect();
        let mut cancelled: Vec<u64> = self.remote_requests.drain().map(|(id, _)| id).collect();
        cancelled.sort_unstable();
        out.extend(cancelled.into_iter().map(|id| {
            json!({"jsonrpc": "2.0", "method": "$/cancel_request", "params": {"requestId": id}})
        }));
        out
    }

    /// The editor's `initialize` parameters, once it sent them.
    pub fn initialize_params(&self) -> Option<&Value> {
        self.initialize.as_ref()
    }

    /// The sessions to resume on a new socket.
    pub fn sessions(&self) -> Vec<(String, SessionSetup)> {
        self.sessions
            .iter()
            .map(|(id, setup)| (id.clone(), setup.clone()))
            .collect()
    }

    /// A session the server would not resume: prompts for it will get the
    /// server's own "unknown session" answer.
    pub fn forget_session(&mut self, session: &str) {
        self.sessions.remove(session);
    }
}

fn key(id: &Value) -> String {
    id.to_string()
}

/// A JSON-RPC error answer to request `id`.
pub fn error_answer(id: &Value, code: i64, message: &str, retryable: bool) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code, "message": message, "data": {"retryable": retryable}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn request(relay: &mut Relay, id: i64, method: &str, params: Value) {
        let value = object(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        relay.editor_request(&Value::from(id), method, &value);
    }

    fn answer(relay: &mut Relay, id: i64, result: Value) {
        let value = object(json!({"jsonrpc": "2.0", "id": id, "result": result}));
        relay.remote_response(&Value::from(id), &value);
    }

    #[test]
    fn messages_are_told_apart() {
        assert!(matches!(
            Message::parse(r#"{"id":1,"method":"m"}"#),
            Message::Request { .. }
        ));
        assert!(matches!(
            Message::parse(r#"{"method":"m"}"#),
            Message::Notification(_)
        ));
        assert!(matches!(
            Message::parse(r#"{"id":1,"result":{}}"#),
            Message::Response { .. }
        ));
        assert!(matches!(Message::parse("[1]"), Message::Other(_)));
        assert!(matches!(
            Message::parse("<a line was dropped>"),
            Message::Invalid
        ));
    }

    #[test]
    fn sessions_are_remembered_until_closed() {
        let mut relay = Relay::default();
        request(&mut relay, 0, "initialize", json!({"protocolVersion": 1}));
        answer(&mut relay, 0, json!({}));
        request(
            &mut relay,
            1,
            "session/new",
            json!({"cwd": "/w", "mcpServers": []}),
        );
        answer(&mut relay, 1, json!({"sessionId": "s1"}));
        request(
            &mut relay,
            2,
            "session/load",
            json!({"sessionId": "s2", "cwd": "/v"}),
        );
        answer(&mut relay, 2, json!({}));
        // A failed resume does not add a session.
        request(
            &mut relay,
            3,
            "session/resume",
            json!({"sessionId": "s3", "cwd": "/v"}),
        );
        let failed = object(json!({"id": 3, "error": {"code": -32002, "message": "unknown"}}));
        relay.remote_response(&Value::from(3), &failed);
        let ids: Vec<String> = relay.sessions().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["s1", "s2"]);
        assert_eq!(relay.sessions()[1].1.mcp_servers, json!([]));
        request(&mut relay, 4, "session/close", json!({"sessionId": "s1"}));
        answer(&mut relay, 4, json!({}));
        assert_eq!(relay.sessions().len(), 1);
        assert_eq!(
            relay.initialize_params(),
            Some(&json!({"protocolVersion": 1}))
        );
    }

    #[test]
    fn a_drop_answers_what_was_in_flight_and_cancels_server_requests() {
        let mut relay = Relay::default();
        request(&mut relay, 7, "session/prompt", json!({"sessionId": "s1"}));
        let asked = object(json!({"jsonrpc": "2.0", "id": 0, "method": "fs/read_text_file"}));
        let forwarded = relay.remote_request(Value::from(0), asked);
        let bridge_id = forwarded["id"].clone();
        assert_ne!(bridge_id, Value::Null);
        let out = relay.dropped("the connection dropped");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["id"], 7);
        assert_eq!(out[0]["error"]["code"], INTERNAL_ERROR);
        let message = out[0]["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("session/prompt was in flight"),
            "{message}"
        );
        assert_eq!(out[1]["method"], "$/cancel_request");
        assert_eq!(out[1]["params"]["requestId"], bridge_id);
        // The editor's late answer is not sent to the new socket.
        let late = object(json!({"jsonrpc": "2.0", "id": bridge_id, "result": {}}));
        assert!(relay.editor_response(&bridge_id, late).is_none());
    }

    #[test]
    fn server_request_ids_are_mapped_back() {
        let mut relay = Relay::default();
        let asked = object(json!({"jsonrpc": "2.0", "id": "x", "method": "fs/write_text_file"}));
        let forwarded = relay.remote_request(Value::from("x"), asked);
        let id = forwarded["id"].clone();
        let reply = object(json!({"jsonrpc": "2.0", "id": id, "result": null}));
        let back = relay.editor_response(&id, reply).unwrap();
        assert_eq!(back["id"], "x");
    }
}
