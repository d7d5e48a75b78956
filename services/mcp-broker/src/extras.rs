//! MCP beyond tools: resources and prompts of the connected servers.
//!
//! Resources are listed per server and read by the model through one tool,
//! `read_mcp_resource` (offered while some connected server has resources):
//! without a `uri` it lists them, with one it reads it. Prompts are listed
//! as slash commands named `{server}:{prompt}` and filled in on request;
//! their messages become one prompt text (and its images).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openheim_proto::common::v1::{Image, ToolDefinition, ToolKind};
use openheim_proto::mcp_broker::v1::{McpPrompt, McpPromptArgument, McpResource};
use rmcp::model::{
    GetPromptRequestParams, JsonObject, ReadResourceRequestParams, ResourceContents, Role,
};

use crate::McpBrokerError;
use crate::mapping::{self, ToolOutput};
use crate::registry::Registry;
use crate::server::McpServer;

/// The tool the model reads resources with.
pub const READ_RESOURCE_TOOL: &str = "read_mcp_resource";

/// Separates server and prompt in a slash command.
const COMMAND_SEPARATOR: char = ':';

/// Whether some connected server of `servers` offers resources.
pub fn any_resources(servers: &[Arc<McpServer>]) -> bool {
    servers
        .iter()
        .any(|s| s.capabilities().is_some_and(|c| c.resources.is_some()))
}

/// `read_mcp_resource`: short, as every built-in schema is.
pub fn read_resource_definition() -> ToolDefinition {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "server": {"type": "string"},
            "uri": {"type": "string", "description": "Omit to list resources"}
        }
    });
    ToolDefinition {
        name: READ_RESOURCE_TOOL.to_owned(),
        description: "Read a resource of an MCP server by URI; without uri, list them.".to_owned(),
        input_schema_json: schema.to_string(),
        kind: ToolKind::Read as i32,
        read_only: true,
        source: "mcp".to_owned(),
    }
}

impl Registry {
    /// The resources of every connected server that offers them, and one
    /// line per server whose listing failed.
    pub async fn list_resources(&self, session_id: &str) -> (Vec<McpResource>, Vec<String>) {
        let servers = self.visible(session_id);
        // Like a tool listing: servers starting get until their grace ends.
        futures::future::join_all(servers.iter().map(|s| s.settle_first_attempt())).await;
        let limit = self.default_call_timeout();
        let listings =
            servers
                .iter()
                .filter(|s| s.capabilities().is_some_and(|c| c.resources.is_some()))
                .map(|server| async move {
                    (server.name().to_owned(), resources_of(server, limit).await)
                });
        let mut resources = Vec::new();
        let mut errors = Vec::new();
        for (server, listing) in futures::future::join_all(listings).await {
            match listing {
                Ok(found) => resources.extend(found),
                Err(error) => errors.push(format!("{server}: {}", error.shown())),
            }
        }
        (resources, errors)
    }

    /// Reads `uri` from `server`.
    pub async fn read_resource(
        &self,
        session_id: &str,
        server: &str,
        uri: &str,
    ) -> Result<ToolOutput, McpBrokerError> {
        let server = self.server(session_id, server)?;
        let limit = self.default_call_timeout();
        let what = format!("reading resource `{uri}` of `{}`", server.name());
        let peer = server.peer(limit).await?;
        let request = peer.read_resource(ReadResourceRequestParams::new(uri));
        let result = bounded(what, limit, request).await?;
        Ok(contents_output(&result.contents))
    }

    /// The tool: lists resources without `uri`, reads one with it. Every
    /// failure is a tool error the model reads.
    pub async fn read_resource_tool(&self, session_id: &str, arguments: &JsonObject) -> ToolOutput {
        let text = |key: &str| arguments.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let (server, uri) = (text("server"), text("uri"));
        if uri.is_empty() {
            let (resources, errors) = self.list_resources(session_id).await;
            return listing_output(&resources, &errors, server);
        }
        let server = match server {
            "" => match self.server_of_uri(session_id, uri).await {
                Some(found) => found,
                None => return error_output(format!("no MCP server lists `{uri}`; give `server`")),
            },
            named => named.to_owned(),
        };
        self.read_resource(session_id, &server, uri)
            .await
            .unwrap_or_else(|e| error_output(e.shown()))
    }

    /// The server whose listing holds `uri`, when the model gave none.
    async fn server_of_uri(&self, session_id: &str, uri: &str) -> Option<String> {
        let (resources, _) = self.list_resources(session_id).await;
        resources
            .into_iter()
            .find(|r| r.uri == uri)
            .map(|r| r.server)
    }

    /// The prompts of every connected server that offers them.
    pub async fn list_prompts(&self, session_id: &str) -> Vec<McpPrompt> {
        let servers = self.visible(session_id);
        // Like a tool listing: servers starting get until their grace ends.
        futures::future::join_all(servers.iter().map(|s| s.settle_first_attempt())).await;
        let limit = self.default_call_timeout();
        let listings = servers
            .iter()
            .filter(|s| s.capabilities().is_some_and(|c| c.prompts.is_some()))
            .map(|server| async move { prompts_of(server, limit).await });
        let mut prompts = Vec::new();
        for listing in futures::future::join_all(listings).await {
            match listing {
                Ok(found) => prompts.extend(found),
                Err(error) => tracing::warn!("listing MCP prompts failed: {}", error.shown()),
            }
        }
        prompts
    }

    /// Fills in the prompt named by `command` (`server:prompt`).
    pub async fn get_prompt(
        &self,
        session_id: &str,
        command: &str,
        input: &str,
        given: HashMap<String, String>,
    ) -> Result<(String, Vec<Image>), McpBrokerError> {
        let unknown = || McpBrokerError::UnknownPrompt(command.to_owned());
        let (server_name, prompt) = command.split_once(COMMAND_SEPARATOR).ok_or_else(unknown)?;
        let server = self
            .server(session_id, server_name)
            .map_err(|_| unknown())?;
        let limit = self.default_call_timeout();
        let known = prompts_of(&server, limit).await?;
        let definition = known
            .iter()
            .find(|p| p.name == prompt)
            .ok_or_else(unknown)?;
        let mut arguments = parse_input(input, definition);
        arguments.extend(given);
        if let Some(missing) = definition
            .arguments
            .iter()
            .find(|a| a.required && arguments.get(&a.name).is_none_or(String::is_empty))
        {
            return Err(McpBrokerError::MissingArgument {
                prompt: command.to_owned(),
                argument: missing.name.clone(),
            });
        }
        let values: JsonObject = arguments
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let what = format!("getting prompt `{command}`");
        let peer = server.peer(limit).await?;
        let request = peer.get_prompt(GetPromptRequestParams::new(prompt).with_arguments(values));
        let result = bounded(what, limit, request).await?;
        Ok(prompt_text(&result.messages))
    }

    /// The visible server named `name`.
    fn server(&self, session_id: &str, name: &str) -> Result<Arc<McpServer>, McpBrokerError> {
        self.visible(session_id)
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| McpBrokerError::UnknownServer(name.to_owned()))
    }
}

async fn resources_of(
    server: &McpServer,
    limit: Duration,
) -> Result<Vec<McpResource>, McpBrokerError> {
    let what = "listing resources".to_owned();
    let peer = server.peer(limit).await?;
    let listed = bounded(what, limit, peer.list_all_resources()).await?;
    Ok(listed
        .into_iter()
        .map(|r| McpResource {
            server: server.name().to_owned(),
            uri: r.uri,
            name: r.title.unwrap_or(r.name),
            description: r.description.unwrap_or_default(),
            mime_type: r.mime_type.unwrap_or_default(),
        })
        .collect())
}

async fn prompts_of(server: &McpServer, limit: Duration) -> Result<Vec<McpPrompt>, McpBrokerError> {
    let what = format!("listing the prompts of `{}`", server.name());
    let peer = server.peer(limit).await?;
    let listed = bounded(what, limit, peer.list_all_prompts()).await?;
    Ok(listed
        .into_iter()
        .map(|p| McpPrompt {
            server: server.name().to_owned(),
            command: format!("{}{COMMAND_SEPARATOR}{}", server.name(), p.name),
            description: p.description.or(p.title).unwrap_or_default(),
            arguments: p
                .arguments
                .unwrap_or_default()
                .into_iter()
                .map(|a| McpPromptArgument {
                    name: a.name,
                    description: a.description.unwrap_or_default(),
                    required: a.required.unwrap_or(false),
                })
                .collect(),
            name: p.name,
        })
        .collect())
}

/// `request`, given up after `limit`; both failures say what was asked
/// (`what`).
async fn bounded<T>(
    what: String,
    limit: Duration,
    request: impl Future<Output = Result<T, rmcp::ServiceError>>,
) -> Result<T, McpBrokerError> {
    match tokio::time::timeout(limit, request).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(source)) => Err(McpBrokerError::Request {
            what,
            source: Box::new(source),
        }),
        Err(_) => Err(McpBrokerError::RequestTimeout { what, after: limit }),
    }
}

/// What the user typed after a prompt's command: `name=value` pairs
/// (double-quoted values may hold spaces), or without any `=` the value of
/// the prompt's first argument.
fn parse_input(input: &str, prompt: &McpPrompt) -> HashMap<String, String> {
    let input = input.trim();
    let mut values = HashMap::new();
    if input.is_empty() {
        return values;
    }
    if !input.contains('=') {
        if let Some(first) = prompt.arguments.first() {
            values.insert(first.name.clone(), input.to_owned());
        }
        return values;
    }
    let mut rest = input;
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, next)) => (value, next),
                None => (quoted, ""),
            },
            None => after.split_once(char::is_whitespace).unwrap_or((after, "")),
        };
        if !name.is_empty() {
            values.insert(name.to_owned(), value.to_owned());
        }
        rest = next.trim_start();
    }
    values
}

/// A resource's contents as the model reads them: text as is, images as
/// images (with a line naming them), other binaries as a line.
fn contents_output(contents: &[ResourceContents]) -> ToolOutput {
    let blocks: Vec<rmcp::model::ContentBlock> = contents
        .iter()
        .cloned()
        .map(rmcp::model::ContentBlock::resource)
        .collect();
    let mut output = mapping::output(&rmcp::model::CallToolResult::success(blocks));
    output.raw_json = String::new();
    output
}

fn listing_output(resources: &[McpResource], errors: &[String], server: &str) -> ToolOutput {
    let mut lines: Vec<String> = resources
        .iter()
        .filter(|r| server.is_empty() || r.server == server)
        .map(|r| {
            let mut line = format!("{} {} ({})", r.server, r.uri, r.name);
            if !r.mime_type.is_empty() {
                line.push_str(&format!(" [{}]", r.mime_type));
            }
            if !r.description.is_empty() {
                line.push_str(&format!(": {}", r.description));
            }
            line
        })
        .collect();
    if lines.is_empty() {
        lines.push("No MCP resources.".to_owned());
    }
    lines.extend(errors.iter().map(|e| format!("(could not list {e})")));
    ToolOutput {
        text: lines.join("\n"),
        is_error: false,
        raw_json: String::new(),
        images: Vec::new(),
    }
}

fn error_output(text: String) -> ToolOutput {
    ToolOutput {
        text,
        is_error: true,
        raw_json: String::new(),
        images: Vec::new(),
    }
}

/// A prompt's messages as one prompt: a lone user message as it is,
/// several as `role: text` paragraphs; images go along.
fn prompt_text(messages: &[rmcp::model::PromptMessage]) -> (String, Vec<Image>) {
    let single_user = messages.len() == 1 && messages[0].role == Role::User;
    let mut images = Vec::new();
    let mut parts = Vec::with_capacity(messages.len());
    for message in messages {
        let mapped = mapping::output(&rmcp::model::CallToolResult::success(vec![
            message.content.clone(),
        ]));
        images.extend(mapped.images);
        if single_user {
            parts.push(mapped.text);
        } else {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            parts.push(format!("{role}: {}", mapped.text));
        }
    }
    (parts.join("\n\n"), images)
}

#[cfg(test)]
mod tests {
    use rmcp::model::PromptMessage;

    use super::*;

    fn prompt(arguments: &[&str]) -> McpPrompt {
        McpPrompt {
            arguments: arguments
                .iter()
                .map(|name| McpPromptArgument {
                    name: (*name).to_owned(),
                    ..McpPromptArgument::default()
                })
                .collect(),
            ..McpPrompt::default()
        }
    }

    #[test]
    fn typed_input_becomes_arguments() {
        let p = prompt(&["city", "state"]);
        let parsed = parse_input(r#"city="New York" state=NY"#, &p);
        assert_eq!(parsed["city"], "New York");
        assert_eq!(parsed["state"], "NY");
        // Without `=`, the whole text is the first argument.
        assert_eq!(parse_input("Paris, France", &p)["city"], "Paris, France");
        assert!(parse_input("  ", &p).is_empty());
        assert!(parse_input("text", &prompt(&[])).is_empty());
    }

    #[test]
    fn the_tool_schema_is_short() {
        let definition = read_resource_definition();
        let size = definition.description.len() + definition.input_schema_json.len();
        assert!(size < 300, "{size} bytes");
        assert!(definition.read_only);
    }

    #[test]
    fn prompts_become_one_text() {
        let lone = vec![PromptMessage::new_text(Role::User, "Hi there")];
        assert_eq!(prompt_text(&lone).0, "Hi there");
        let dialogue = vec![
            PromptMessage::new_text(Role::User, "Q"),
            PromptMessage::new_text(Role::Assistant, "A"),
        ];
        assert_eq!(prompt_text(&dialogue).0, "user: Q\n\nassistant: A");
    }

    #[test]
    fn listings_name_server_uri_and_failures() {
        let resources = vec![McpResource {
            server: "s".into(),
            uri: "demo://a".into(),
            name: "A".into(),
            description: "first".into(),
            mime_type: "text/plain".into(),
        }];
        let out = listing_output(&resources, &["t: down".into()], "");
        assert_eq!(
            out.text,
            "s demo://a (A) [text/plain]: first\n(could not list t: down)"
        );
        assert_eq!(
            listing_output(&resources, &[], "other").text,
            "No MCP resources."
        );
    }
}
