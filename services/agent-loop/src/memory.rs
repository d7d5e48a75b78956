//! Long-term memory in the agent loop, which owns it: the memory tools a
//! turn answers itself (`remember`, `search_memory`, `forget`, routed here
//! instead of to tool-executor or mcp-broker), the `ListMemory` and
//! `ForgetMemory` operations of front ends, and the embedder that asks
//! llm-proxy for vectors. Storage, ranking and the rules of a note are
//! `openheim-memory`'s (`docs/memory.md`).

use std::sync::Arc;

use openheim_memory::{
    DEFAULT_OWNER, DEFAULT_SEARCH_LIMIT, Embedder, Hit, Listing, MAX_SEARCH_LIMIT, Memory,
    MemoryError, MemoryStore, NewNote, Note, Purpose, RedisMemory, RedisMemoryOptions, Scope,
    SqliteMemory, View,
};
use openheim_proto::agent_loop::v1::{
    ForgetMemoryRequest, ListMemoryRequest, ListMemoryResponse, MemoryNote, MemoryScope,
};
use openheim_proto::common::v1::{ToolCall, ToolDefinition, ToolKind};
use openheim_proto::llm_proxy::v1::EmbedPurpose;
use serde::Deserialize;

use crate::backends::{Backends, ToolRoute};
use crate::error::AgentError;
use crate::outcome::Outcome;
use crate::store::SessionMeta;

pub const REMEMBER: &str = "remember";
pub const SEARCH_MEMORY: &str = "search_memory";
pub const FORGET: &str = "forget";

/// Notes a listing returns when the request does not say.
const DEFAULT_LIST_LIMIT: usize = 50;
/// Most notes one listing page may hold.
const MAX_LIST_LIMIT: usize = 500;
/// The file of the embedded backend, under the data directory.
pub const DATABASE_FILE: &str = "memory.db";

/// The memory part of the agent loop's configuration; absent = memory off.
#[derive(Debug, Clone, Default)]
pub struct MemorySettings {
    /// The project key of project notes (`memory.project`); `None` = the
    /// session's workspace path.
    pub project: Option<String>,
    /// `provider/model` of the embeddings model (`memory.embeddings`).
    pub embeddings: Option<String>,
}

/// Where the notes live: the session store's Redis, or a SQLite file.
pub enum MemoryBackend<'a> {
    Sqlite(std::path::PathBuf),
    Redis { url: &'a str, prefix: &'a str },
}

/// The memory as the agent loop uses it.
pub struct AgentMemory {
    memory: Memory,
    project: Option<String>,
    default_work_dir: String,
}

impl AgentMemory {
    /// Opens nothing yet: SQLite is opened and Redis connected on the first
    /// call that needs them, so a run that never touches memory does not
    /// pay for it.
    pub fn new(
        backend: MemoryBackend<'_>,
        settings: &MemorySettings,
        backends: &Backends,
        default_work_dir: String,
    ) -> Result<Self, MemoryError> {
        let store: Arc<dyn MemoryStore> = match backend {
            MemoryBackend::Sqlite(path) => Arc::new(SqliteMemory::new(path)),
            MemoryBackend::Redis { url, prefix } => {
                Arc::new(RedisMemory::open(&RedisMemoryOptions {
                    url: url.to_owned(),
                    prefix: prefix.to_owned(),
                })?)
            }
        };
        let embedder = settings.embeddings.as_ref().map(|model| {
            Arc::new(LlmEmbedder {
                backends: backends.clone(),
                model: model.clone(),
            }) as Arc<dyn Embedder>
        });
        Ok(Self {
            memory: Memory::new(store, embedder),
            project: settings.project.clone(),
            default_work_dir,
        })
    }

    /// The project key of a workspace: the configured one, else its path.
    fn project_for(&self, work_dir: &str) -> String {
        match (&self.project, work_dir) {
            (Some(project), _) => project.clone(),
            (None, "") => self.default_work_dir.clone(),
            (None, dir) => dir.to_owned(),
        }
    }

    /// What a session's turns see: its owner's notes and its project's.
    fn session_view(&self, meta: &SessionMeta) -> Result<View, MemoryError> {
        View::new(session_owner(meta), Some(&self.project_for(&meta.work_dir)))
    }

    /// Answers one memory tool call of a turn.
    pub(crate) async fn call(&self, call: &ToolCall, meta: &SessionMeta) -> Outcome {
        let args: serde_json::Value =
            serde_json::from_str(&call.arguments_json).unwrap_or(serde_json::Value::Null);
        let name = call.name.as_str();
        let writes = name != SEARCH_MEMORY;
        if writes && meta.read_only {
            return Outcome::error(format!(
                "{name} is not available in a read-only session: notes can be searched, not changed."
            ));
        }
        let result = match name {
            REMEMBER => self.remember(args, meta).await,
            SEARCH_MEMORY => self.search(args, meta).await,
            FORGET => self.forget_tool(args, meta).await,
            other => Err(ToolFailure::Arguments(format!(
                "{other} is not a memory tool"
            ))),
        };
        match result {
            Ok(text) => Outcome {
                text,
                ..Outcome::default()
            },
            Err(failure) => Outcome::error(failure.text(name)),
        }
    }

    async fn remember(
        &self,
        args: serde_json::Value,
        meta: &SessionMeta,
    ) -> Result<String, ToolFailure> {
        let args: RememberArgs = parse(args)?;
        let scope = match args.scope.as_deref() {
            None | Some("project") => Scope::Project,
            Some("user") => Scope::User,
            Some(other) => {
                return Err(ToolFailure::Arguments(format!(
                    "`scope` is {other:?}; use \"project\" or \"user\""
                )));
            }
        };
        let note = self
            .memory
            .remember(NewNote {
                owner: session_owner(meta).to_owned(),
                scope,
                project: Some(self.project_for(&meta.work_dir)),
                text: args.text,
                tags: args.tags,
            })
            .await?;
        let tags = match note.tags.is_empty() {
            true => String::new(),
            false => format!(", tags: {}", note.tags.join(", ")),
        };
        Ok(format!(
            "Remembered note {} ({} scope{tags}).",
            note.id, note.scope
        ))
    }

    async fn search(
        &self,
        args: serde_json::Value,
        meta: &SessionMeta,
    ) -> Result<String, ToolFailure> {
        let args: SearchArgs = parse(args)?;
        let limit = args.limit.map_or(DEFAULT_SEARCH_LIMIT, |l| {
            usize::try_from(l).unwrap_or(MAX_SEARCH_LIMIT)
        });
        let view = self.session_view(meta)?;
        let hits = self.memory.search(&view, &args.query, limit).await?;
        Ok(render_hits(&args.query, &hits))
    }

    async fn forget_tool(
        &self,
        args: serde_json::Value,
        meta: &SessionMeta,
    ) -> Result<String, ToolFailure> {
        let args: ForgetArgs = parse(args)?;
        let view = self.session_view(meta)?;
        let id = args.id.trim();
        let note = self
            .memory
            .forget(session_owner(meta), id, Some(&view))
            .await?;
        Ok(format!(
            "Forgot note {}: {}",
            note.id,
            first_line(&note.text, 80)
        ))
    }

    /// `ListMemory`: a search when `query` is set, else a page, newest first.
    pub async fn list(&self, request: ListMemoryRequest) -> Result<ListMemoryResponse, AgentError> {
        let owner = owner_of(&request.owner);
        let project = self.project_for(&request.work_dir);
        let view = View::new(owner, Some(&project))?;
        if !request.query.trim().is_empty() {
            let limit = match request.limit {
                0 => DEFAULT_SEARCH_LIMIT,
                n => usize::try_from(n).unwrap_or(MAX_SEARCH_LIMIT),
            };
            let hits = self.memory.search(&view, &request.query, limit).await?;
            return Ok(ListMemoryResponse {
                notes: hits
                    .iter()
                    .map(|h| note_to_wire(&h.note, h.score))
                    .collect(),
                next_cursor: String::new(),
                project,
            });
        }
        let limit = match request.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => usize::try_from(n)
                .unwrap_or(MAX_LIST_LIMIT)
                .min(MAX_LIST_LIMIT),
        };
        let listing = match request.all_projects {
            true => Listing::Owner(view.owner.clone()),
            false => Listing::View(view),
        };
        let cursor = Some(request.cursor.as_str()).filter(|c| !c.is_empty());
        let page = self.memory.list(&listing, limit, cursor).await?;
        Ok(ListMemoryResponse {
            notes: page.notes.iter().map(|n| note_to_wire(n, 0.0)).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
            project,
        })
    }

    /// `ForgetMemory`: any note of the owner, whatever its project.
    pub async fn forget(&self, request: ForgetMemoryRequest) -> Result<MemoryNote, AgentError> {
        let owner = owner_of(&request.owner);
        View::new(owner, None)?;
        let note = self.memory.forget(owner, request.id.trim(), None).await?;
        Ok(note_to_wire(&note, 0.0))
    }
}

/// The owner of a session's notes: the session's (its user's notes are
/// the memory's user scope; the local user is the memory's default owner).
fn session_owner(meta: &SessionMeta) -> &str {
    match meta.owner.as_str() {
        "" => DEFAULT_OWNER,
        owner => owner,
    }
}

fn owner_of(requested: &str) -> &str {
    match requested {
        "" => DEFAULT_OWNER,
        owner => owner,
    }
}

/// The memory tools' definitions; a read-only session gets only the search.
/// Descriptions are short: every LLM request pays for them.
pub fn definitions(read_only: bool) -> Vec<ToolDefinition> {
    let search = ToolDefinition::builtin(
        SEARCH_MEMORY,
        "Search notes saved in earlier sessions (this project's and the user's). limit <= 20, default 5.",
        serde_json::json!({
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"]
        })
        .to_string(),
        ToolKind::Search,
        true,
    );
    if read_only {
        return vec![search];
    }
    let remember = ToolDefinition::builtin(
        REMEMBER,
        "Save a note (<= 4000 chars) for future sessions: facts, decisions, preferences. scope: project (default) or user (every project).",
        serde_json::json!({
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "scope": {"enum": ["project", "user"]}
            },
            "required": ["text"]
        })
        .to_string(),
        ToolKind::Other,
        false,
    );
    let forget = ToolDefinition::builtin(
        FORGET,
        "Delete a saved note by its id.",
        serde_json::json!({
            "type": "object",
            "properties": {"id": {"type": "string"}},
            "required": ["id"]
        })
        .to_string(),
        ToolKind::Delete,
        false,
    );
    vec![remember, search, forget]
}

pub fn is_memory_tool(name: &str) -> bool {
    matches!(name, REMEMBER | SEARCH_MEMORY | FORGET)
}

/// A title for a client to show while the call runs.
pub fn title(name: &str, args: &serde_json::Value) -> Option<String> {
    let field = |key: &str| args.get(key).and_then(|v| v.as_str());
    match name {
        REMEMBER => field("text").map(|t| format!("remember: {}", first_line(t, 60))),
        SEARCH_MEMORY => field("query").map(|q| format!("search_memory: {}", first_line(q, 60))),
        FORGET => field("id").map(|id| format!("forget {}", first_line(id, 20))),
        _ => None,
    }
}

#[derive(Deserialize)]
struct RememberArgs {
    text: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    limit: Option<u64>,
}

#[derive(Deserialize)]
struct ForgetArgs {
    id: String,
}

/// Why a memory tool call failed, before it is worded for the model.
enum ToolFailure {
    Arguments(String),
    Memory(MemoryError),
}

impl From<MemoryError> for ToolFailure {
    fn from(error: MemoryError) -> Self {
        Self::Memory(error)
    }
}

impl ToolFailure {
    /// What the model reads: what went wrong and what to do about it.
    fn text(&self, tool: &str) -> String {
        match self {
            Self::Arguments(reason) => format!("{tool}: invalid arguments: {reason}."),
            Self::Memory(MemoryError::Invalid(reason)) => format!("{tool}: {reason}."),
            Self::Memory(MemoryError::NotFound(id)) => format!(
                "{tool}: no note with id {id:?} in this project or the user's notes; search_memory shows note ids."
            ),
            Self::Memory(error) if error.is_retryable() => {
                format!("{tool} failed: {error}. Nothing was changed; try again later.")
            }
            Self::Memory(error) => format!(
                "{tool} failed: {error}. Memory cannot be used until this is fixed; tell the user."
            ),
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(args: serde_json::Value) -> Result<T, ToolFailure> {
    serde_json::from_value(args).map_err(|e| ToolFailure::Arguments(e.to_string()))
}

/// Search results as the model reads them: id, scope, tags and date, then
/// the text (continuation lines indented).
fn render_hits(query: &str, hits: &[Hit]) -> String {
    if hits.is_empty() {
        return format!("No notes match {:?}.", first_line(query, 80));
    }
    let mut out = format!(
        "{} note{} (best first):\n",
        hits.len(),
        if hits.len() == 1 { "" } else { "s" }
    );
    for hit in hits {
        let note = &hit.note;
        let tags = match note.tags.is_empty() {
            true => String::new(),
            false => format!("; {}", note.tags.join(", ")),
        };
        out.push_str(&format!(
            "- {} [{}{tags}; {}] {}\n",
            note.id,
            note.scope,
            openheim_memory::utc_date(note.updated_at_ms),
            note.text.replace('\n', "\n  ")
        ));
    }
    out
}

fn first_line(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

pub fn note_to_wire(note: &Note, score: f64) -> MemoryNote {
    MemoryNote {
        id: note.id.clone(),
        text: note.text.clone(),
        tags: note.tags.clone(),
        scope: match note.scope {
            Scope::User => MemoryScope::User,
            Scope::Project => MemoryScope::Project,
        } as i32,
        project: note.project.clone(),
        created_at_ms: note.created_at_ms,
        updated_at_ms: note.updated_at_ms,
        score,
    }
}

/// Vectors from llm-proxy's `Embed`.
struct LlmEmbedder {
    backends: Backends,
    /// `provider/model`.
    model: String,
}

#[async_trait::async_trait]
impl Embedder for LlmEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(
        &self,
        texts: Vec<String>,
        purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, openheim_memory::EmbedError> {
        let purpose = match purpose {
            Purpose::Document => EmbedPurpose::Document,
            Purpose::Query => EmbedPurpose::Query,
        };
        self.backends
            .embed(&self.model, texts, purpose)
            .await
            .map_err(openheim_memory::EmbedError::new)
    }
}

/// The tools of tool-executor and mcp-broker plus, when memory is on, the
/// memory tools (only `search_memory` in a read-only session). A peer's tool
/// that takes a memory tool's name is left out, so a call always reaches
/// the tool the model was shown.
pub(crate) fn with_memory_tools(
    mut tools: Vec<(ToolDefinition, ToolRoute)>,
    memory_on: bool,
    read_only: bool,
) -> Vec<(ToolDefinition, ToolRoute)> {
    if !memory_on {
        return tools;
    }
    tools.retain(|(definition, _)| {
        let clash = is_memory_tool(&definition.name);
        if clash {
            tracing::warn!(tool = %definition.name, "a tool named like a memory tool is left out");
        }
        !clash
    });
    tools.extend(
        definitions(read_only)
            .into_iter()
            .map(|definition| (definition, ToolRoute::Memory)),
    );
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_sessions_get_only_the_search() {
        let names = |tools: Vec<ToolDefinition>| -> Vec<String> {
            tools.into_iter().map(|t| t.name).collect()
        };
        assert_eq!(names(definitions(true)), [SEARCH_MEMORY]);
        assert_eq!(names(definitions(false)), [REMEMBER, SEARCH_MEMORY, FORGET]);
        assert!(
            definitions(false).iter().all(|t| {
                serde_json::from_str::<serde_json::Value>(&t.input_schema_json).is_ok()
            })
        );
    }

    #[test]
    fn failures_tell_the_model_what_to_do() {
        let text = |error: MemoryError| ToolFailure::Memory(error).text(REMEMBER);
        let down = text(MemoryError::Unavailable(
            "Redis at 127.0.0.1:6379: connection refused".into(),
        ));
        assert!(
            down.contains("connection refused")
                && down.contains("Nothing was changed; try again later"),
            "{down}"
        );
        let locked = text(MemoryError::Locked("memory.db: database is locked".into()));
        assert!(locked.contains("try again later"), "{locked}");
        let broken = text(MemoryError::Corrupt(
            "memory.db: file is not a database".into(),
        ));
        assert!(broken.contains("tell the user"), "{broken}");
        let missing = ToolFailure::Memory(MemoryError::NotFound("abc".into())).text(FORGET);
        assert!(
            missing.contains("search_memory shows note ids"),
            "{missing}"
        );
    }

    #[test]
    fn titles_and_first_lines() {
        let args = serde_json::json!({"text": "line one\nline two"});
        assert_eq!(
            title(REMEMBER, &args).as_deref(),
            Some("remember: line one")
        );
        assert_eq!(first_line(&"é".repeat(100), 3), "ééé…");
        assert_eq!(title("read_file", &args), None);
    }
}
