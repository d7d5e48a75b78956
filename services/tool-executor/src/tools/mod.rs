//! Tools: the [`ToolHandler`] trait that built-in and custom tools implement,
//! the [`ToolContext`] a call runs in, and the [`ToolRegistry`] that lists
//! them and dispatches calls, capping every result on the way out.

mod edit;
mod fetch;
mod files;
mod list;
mod search;
pub(crate) mod shell;
mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openheim_proto::common::v1::{FileDiff, Image, ToolCall, ToolDefinition, ToolKind};
use openheim_proto::tool_executor::v1::{ExecuteResponse, ToolErrorKind};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::confinement::Confinement;
use crate::env::EnvPolicy;
use crate::error::ToolError;
use crate::sandbox::WorkspaceRoot;
use crate::web::WebFetcher;
use openheim_tool_rules::truncate::cap_output;

pub use openheim_tool_rules::shell::MAX_SHELL_TIMEOUT;

/// Name of the built-in shell tool, the one `allow_shell = false` removes.
pub const SHELL_TOOL: &str = shell::NAME;

/// Everything a tool call may use besides its arguments. The executor
/// builds one per call.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The session workspace; resolve every path through it.
    pub workspace: WorkspaceRoot,
    /// Cancelled when the call is abandoned (its RPC was cancelled or
    /// dropped); a tool that started background work must stop it then.
    pub cancel: CancellationToken,
    /// Default limit for shell commands of this call.
    pub shell_timeout: Duration,
    /// The output budget; the registry caps the text to it in any case.
    pub max_result_bytes: usize,
    /// What the built-in tools need besides: shell confinement and
    /// environment, the web client.
    pub(crate) builtins: Arc<BuiltinSettings>,
}

/// Settings of the built-in tools, made once per executor.
#[derive(Debug)]
pub(crate) struct BuiltinSettings {
    pub confinement: Confinement,
    pub env: EnvPolicy,
    /// What commands start from, before [`Self::env`] filters it.
    pub child_env: std::collections::BTreeMap<String, String>,
    pub web: WebFetcher,
}

#[cfg(test)]
impl BuiltinSettings {
    /// No OS confinement, nothing extra denied, public addresses only.
    pub(crate) fn for_tests() -> Arc<Self> {
        use crate::confinement::SandboxMode;
        Arc::new(Self {
            confinement: Confinement::probe(SandboxMode::Off, Vec::new()),
            env: EnvPolicy::default(),
            child_env: [("PATH", "/usr/local/bin:/usr/bin:/bin")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            web: WebFetcher::new(crate::web::AddressPolicy::PublicOnly),
        })
    }
}

/// What a successful tool call produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolOutput {
    /// What the model sees.
    pub text: String,
    /// Structured result for clients (`null` when there is none).
    pub raw_output: serde_json::Value,
    /// Files the call changed, for diff rendering.
    pub diffs: Vec<FileDiff>,
    /// Images for the model (`read_file` on an image); `text` describes them.
    pub images: Vec<Image>,
}

impl ToolOutput {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

/// A tool the executor can run. Built-in tools implement it, and so can
/// embedders, to add their own (see `grpc_server`'s `custom_tools`).
#[async_trait::async_trait]
pub trait ToolHandler: Send + Sync {
    /// Name, description, JSON schema, kind and read-only flag. `source` may
    /// be left empty; the registry fills it in.
    fn definition(&self) -> ToolDefinition;

    /// Runs one call. Failures the model should see are `Err`; they reach it
    /// as an error result, not as a failed RPC.
    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError>;
}

/// Deserialises a tool's arguments into `T`, naming the offending argument
/// and what was expected when they do not fit.
pub fn parse_args<T: DeserializeOwned>(
    tool: &str,
    args: serde_json::Value,
) -> Result<T, ToolError> {
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let reason = if path == "." {
            e.inner().to_string()
        } else {
            format!("argument `{path}`: {}", e.inner())
        };
        ToolError::invalid_arguments(tool, reason)
    })
}

/// A [`ToolDefinition`] for a built-in tool; `schema` is compacted JSON.
pub(crate) fn builtin_definition(
    name: &str,
    description: &str,
    schema: serde_json::Value,
    kind: ToolKind,
    read_only: bool,
) -> ToolDefinition {
    ToolDefinition::builtin(name, description, schema.to_string(), kind, read_only)
}

struct Entry {
    definition: ToolDefinition,
    handler: Arc<dyn ToolHandler>,
    is_shell: bool,
}

/// The built-in tools plus any custom ones, looked up by name.
pub struct ToolRegistry {
    entries: Vec<Entry>,
}

impl ToolRegistry {
    /// Built-ins first; a custom tool whose name is already taken is left
    /// out (with a warning) so a call can never reach the wrong tool.
    pub fn new(custom_tools: Vec<Arc<dyn ToolHandler>>) -> Self {
        let builtins: Vec<Arc<dyn ToolHandler>> = vec![
            Arc::new(shell::ExecuteCommand),
            Arc::new(files::ReadFile),
            Arc::new(files::WriteFile),
            Arc::new(edit::EditFile),
            Arc::new(list::ListDir),
            Arc::new(search::Search),
            Arc::new(fetch::WebFetch),
        ];
        let mut entries: Vec<Entry> = builtins
            .into_iter()
            .map(|handler| {
                let definition = handler.definition();
                let is_shell = definition.name == SHELL_TOOL;
                Entry {
                    definition,
                    handler,
                    is_shell,
                }
            })
            .collect();
        for handler in custom_tools {
            let mut definition = handler.definition();
            if entries.iter().any(|e| e.definition.name == definition.name) {
                tracing::warn!(tool = %definition.name, "custom tool left out: the name is already taken");
                continue;
            }
            if definition.source.is_empty() {
                definition.source = "custom".to_owned();
            }
            entries.push(Entry {
                definition,
                handler,
                is_shell: false,
            });
        }
        Self { entries }
    }

    /// The tools offered under these settings: without the shell when it is
    /// not allowed, only read-only tools when `read_only`.
    pub fn definitions(&self, allow_shell: bool, read_only: bool) -> Vec<ToolDefinition> {
        self.entries
            .iter()
            .filter(|e| allow_shell || !e.is_shell)
            .filter(|e| !read_only || e.definition.read_only)
            .map(|e| e.definition.clone())
            .collect()
    }

    /// Runs `call` and turns the outcome into the response the model sees:
    /// output capped to `ctx.max_result_bytes`, failures as error results.
    pub async fn execute(
        &self,
        ctx: &ToolContext,
        call: &ToolCall,
        allow_shell: bool,
    ) -> ExecuteResponse {
        let started = Instant::now();
        let result = self.dispatch(ctx, call, allow_shell).await;
        tracing::debug!(
            tool = %call.name,
            ok = result.is_ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tool call finished"
        );
        match result {
            Ok(output) => ExecuteResponse {
                output: cap_output(&output.text, ctx.max_result_bytes).into_owned(),
                is_error: false,
                raw_output_json: raw_json(&output.raw_output),
                diffs: output.diffs,
                error_kind: ToolErrorKind::Unspecified as i32,
                images: output.images,
            },
            Err(error) => error_response(&error, ctx.max_result_bytes),
        }
    }

    async fn dispatch(
        &self,
        ctx: &ToolContext,
        call: &ToolCall,
        allow_shell: bool,
    ) -> Result<ToolOutput, ToolError> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.definition.name == call.name)
            .ok_or_else(|| ToolError::UnknownTool {
                name: call.name.clone(),
            })?;
        if entry.is_shell && !allow_shell {
            return Err(ToolError::ShellDisabled);
        }
        let args = arguments(&call.name, &call.arguments_json)?;
        entry.handler.execute(ctx, args).await
    }
}

/// The call's arguments as a JSON object. Some providers send an empty
/// string for a call without arguments; that means `{}`.
fn arguments(tool: &str, json: &str) -> Result<serde_json::Value, ToolError> {
    if json.trim().is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        ToolError::invalid_arguments(tool, format!("the arguments are not valid JSON ({e})"))
    })?;
    if !value.is_object() {
        return Err(ToolError::invalid_arguments(
            tool,
            "the arguments must be a JSON object",
        ));
    }
    Ok(value)
}

/// The error result for `error`, message capped like any output.
pub fn error_response(error: &ToolError, max_result_bytes: usize) -> ExecuteResponse {
    ExecuteResponse {
        output: cap_output(&error.to_string(), max_result_bytes).into_owned(),
        is_error: true,
        raw_output_json: error.raw_output().map(raw_json).unwrap_or_default(),
        diffs: Vec::new(),
        error_kind: error.kind() as i32,
        images: Vec::new(),
    }
}

fn raw_json(value: &serde_json::Value) -> String {
    if value.is_null() {
        String::new()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Args {
        #[allow(dead_code)]
        path: String,
        #[allow(dead_code)]
        count: Option<u32>,
    }

    fn reason(result: Result<Args, ToolError>) -> String {
        match result {
            Err(ToolError::InvalidArguments { reason, .. }) => reason,
            other => panic!("expected invalid arguments, got {other:?}"),
        }
    }

    #[test]
    fn argument_errors_name_the_argument_and_the_expectation() {
        let missing = reason(parse_args("t", serde_json::json!({})));
        assert_eq!(missing, "missing field `path`");
        let wrong = reason(parse_args(
            "t",
            serde_json::json!({"path": "a", "count": "x"}),
        ));
        assert!(
            wrong.starts_with("argument `count`: invalid type: string \"x\", expected u32"),
            "{wrong}"
        );
    }

    #[test]
    fn arguments_must_be_a_json_object() {
        assert!(arguments("t", "").unwrap().is_object());
        assert!(matches!(
            arguments("t", "[1]"),
            Err(ToolError::InvalidArguments { .. })
        ));
        let bad = arguments("t", "{\"path\":")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            bad.starts_with("invalid arguments for t: the arguments are not valid JSON"),
            "{bad}"
        );
    }

    #[test]
    fn the_shell_is_listed_only_when_allowed() {
        let registry = ToolRegistry::new(Vec::new());
        let names =
            |defs: Vec<ToolDefinition>| defs.into_iter().map(|d| d.name).collect::<Vec<_>>();
        assert_eq!(
            names(registry.definitions(true, false)),
            [
                "execute_command",
                "read_file",
                "write_file",
                "edit_file",
                "list_dir",
                "search",
                "web_fetch"
            ]
        );
        assert_eq!(
            names(registry.definitions(false, false)),
            [
                "read_file",
                "write_file",
                "edit_file",
                "list_dir",
                "search",
                "web_fetch"
            ]
        );
        assert_eq!(
            names(registry.definitions(true, true)),
            ["read_file", "list_dir", "search", "web_fetch"]
        );
    }

    #[test]
    fn builtin_kinds_and_read_only_flags() {
        let registry = ToolRegistry::new(Vec::new());
        let kinds: Vec<(String, ToolKind, bool)> = registry
            .definitions(true, false)
            .into_iter()
            .map(|d| (d.kind(), d.read_only, d.name))
            .map(|(kind, read_only, name)| (name, kind, read_only))
            .collect();
        let expected = [
            ("execute_command", ToolKind::Execute, false),
            ("read_file", ToolKind::Read, true),
            ("write_file", ToolKind::Edit, false),
            ("edit_file", ToolKind::Edit, false),
            ("list_dir", ToolKind::Read, true),
            ("search", ToolKind::Search, true),
            ("web_fetch", ToolKind::Fetch, true),
        ];
        let expected: Vec<(String, ToolKind, bool)> = expected
            .into_iter()
            .map(|(n, k, r)| (n.to_owned(), k, r))
            .collect();
        assert_eq!(kinds, expected);
        for definition in registry.definitions(true, false) {
            let schema: serde_json::Value =
                serde_json::from_str(&definition.input_schema_json).unwrap();
            assert_eq!(schema["type"], "object", "{}", definition.name);
        }
    }

    #[test]
    fn builtin_schemas_stay_small() {
        // Every byte of every schema is sent on every LLM call
        // (docs/configuration.md, "The system prompt");
        // seven tools, with the system prompt well under the 6 KB budget.
        let registry = ToolRegistry::new(Vec::new());
        let bytes: usize = registry
            .definitions(true, false)
            .iter()
            .map(|d| d.name.len() + d.description.len() + d.input_schema_json.len())
            .sum();
        assert!(bytes < 1700, "built-in tool definitions take {bytes} bytes");
    }
}
