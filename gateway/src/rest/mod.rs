//! The REST API under `/api`: read-only views of the deployment (config,
//! models, skills, tools, MCP servers) and of the stored sessions, and the
//! long-term memory (list, search, forget). Every answer is JSON; every
//! failure is an [`ApiError`].

pub mod config;
pub mod json;
mod search;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{delete, get};
use openheim_access::Principal;
use openheim_proto::agent_loop::v1::SessionInfo;
use openheim_proto::agent_loop::v1::{
    ForgetMemoryRequest, ListMemoryRequest, ListSessionsRequest, ListSkillsRequest,
    LoadSessionRequest,
};
use openheim_proto::common::v1::Caller;
use openheim_proto::llm_proxy::v1::{ListModelsRequest, ResolveModelRequest};
use openheim_proto::mcp_broker::v1 as mcp;
use openheim_proto::tool_executor::v1::{GetSandboxInfoRequest, ListToolsRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, Backend};
use crate::options::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// The `/api` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/config", get(config))
        .route("/api/models", get(models))
        .route("/api/skills", get(skills))
        .route("/api/tools", get(tools))
        .route("/api/mcp-servers", get(mcp_servers))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", get(session))
        .route("/api/memory", get(memory))
        .route("/api/memory/{id}", delete(forget))
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The wire's form of `principal`: whom agent-loop answers for.
pub(crate) fn caller(principal: &Principal) -> Caller {
    Caller {
        user: principal.user.clone(),
        admin: principal.is_admin(),
    }
}

fn failed(service: Backend) -> impl FnOnce(tonic::Status) -> ApiError {
    move |status| ApiError::from_status(service, &status)
}

/// The configuration without secrets, plus the tool-executor's sandbox
/// (`null` when it cannot be asked).
async fn config(State(state): State<AppState>) -> ApiResult {
    let mut view = state.options.config_view.clone();
    let sandbox = match state.backends.tool_executor() {
        Ok(mut client) => match client.get_sandbox_info(GetSandboxInfoRequest {}).await {
            Ok(info) => {
                let info = info.into_inner();
                json!({
                    "confinement": info.confinement,
                    "detail": info.detail,
                    "workspace_root": (!info.workspace_root.is_empty()).then_some(info.workspace_root),
                })
            }
            Err(status) => {
                tracing::debug!(%status, "sandbox info unavailable");
                Value::Null
            }
        },
        Err(_) => Value::Null,
    };
    if let Some(object) = view.as_object_mut() {
        object.insert("sandbox".to_owned(), sandbox);
    }
    Ok(Json(view))
}

async fn models(State(state): State<AppState>) -> ApiResult {
    let mut client = state.backends.llm_proxy()?;
    let response = client
        .list_models(ListModelsRequest {})
        .await
        .map_err(failed(Backend::LlmProxy))?;
    Ok(Json(json::models(&response.into_inner())))
}

/// Skills live in agent-loop's data directory, which the gateway never
/// reads: the configured defaults, and agent-loop's listing.
async fn skills(State(state): State<AppState>) -> ApiResult {
    let available = state
        .backends
        .agent_loop()
        .list_skills(ListSkillsRequest {})
        .await
        .map_err(failed(Backend::AgentLoop))?
        .into_inner()
        .names;
    Ok(Json(json!({
        "default_skills": state.options.default_skills,
        "available": available,
    })))
}

/// Built-in and custom tools of the workspace, then MCP tools.
async fn tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    let mut executor = state.backends.tool_executor()?;
    let workspace = state
        .options
        .workspace_of(&principal)
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let request = ListToolsRequest {
        workspace: Some(workspace),
        read_only: false,
    };
    let mut tools = executor
        .list_tools(request)
        .await
        .map_err(failed(Backend::ToolExecutor))?
        .into_inner()
        .tools;
    if let Ok(mut broker) = state.backends.mcp_broker() {
        let request = mcp::ListToolsRequest {
            session_id: String::new(),
        };
        let response = broker
            .list_tools(request)
            .await
            .map_err(failed(Backend::McpBroker))?;
        tools.extend(response.into_inner().tools);
    }
    let tools: Vec<Value> = tools.iter().map(json::tool).collect();
    Ok(Json(json!({ "tools": tools })))
}

async fn mcp_servers(State(state): State<AppState>) -> ApiResult {
    let mut broker = state.backends.mcp_broker()?;
    let request = mcp::ListServersRequest {
        session_id: String::new(),
    };
    let response = broker
        .list_servers(request)
        .await
        .map_err(failed(Backend::McpBroker))?;
    let servers: Vec<Value> = response
        .into_inner()
        .servers
        .iter()
        .map(json::mcp_server)
        .collect();
    Ok(Json(json!({ "servers": servers })))
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<u32>,
    cursor: Option<String>,
    /// Only sessions whose title contains this (case-insensitive).
    q: Option<String>,
    /// Every user's sessions (admins only).
    all: Option<bool>,
}

/// Stored sessions, newest first; `next_cursor` fetches the next page.
async fn sessions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    let Query(page) = page.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    if let Some(query) = page.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let cursor = page
            .cursor
            .as_deref()
            .map(search::Cursor::decode)
            .transpose()?;
        let scope = search::Scope {
            caller: caller(&principal),
            all_users: page.all.unwrap_or(false),
        };
        let (mut found, next) =
            search::titles(&state.backends, &scope, query, limit, cursor).await?;
        show_default_model(&state, &mut found).await;
        let sessions: Vec<Value> = found.iter().map(json::session).collect();
        let next = next.map(|c| c.encode());
        return Ok(Json(json!({ "sessions": sessions, "next_cursor": next })));
    }
    let request = ListSessionsRequest {
        page_size: limit,
        cursor: page.cursor.unwrap_or_default(),
        caller: Some(caller(&principal)),
        all_users: page.all.unwrap_or(false),
    };
    let mut response = state
        .backends
        .agent_loop()
        .list_sessions(request)
        .await
        .map_err(failed(Backend::AgentLoop))?
        .into_inner();
    show_default_model(&state, &mut response.sessions).await;
    let sessions: Vec<Value> = response.sessions.iter().map(json::session).collect();
    let next = (!response.next_cursor.is_empty()).then_some(response.next_cursor);
    Ok(Json(json!({ "sessions": sessions, "next_cursor": next })))
}

/// One session with its whole history (messages with their tool calls and
/// results).
async fn session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    if !is_session_id(&id) {
        return Err(ApiError::BadRequest(format!(
            "{id:?} is not a session id (a UUID such as 0f3c2a9e-8d1b-4c7a-9e55-2b6f4d1a7c30)"
        )));
    }
    let request = LoadSessionRequest {
        session_id: id,
        mcp_servers: Vec::new(),
        caller: Some(caller(&principal)),
    };
    let mut response = state
        .backends
        .agent_loop()
        .load_session(request)
        .await
        .map_err(failed(Backend::AgentLoop))?
        .into_inner();
    show_default_model(&state, response.session.as_mut_slice()).await;
    let info = response
        .session
        .as_ref()
        .map(json::session)
        .unwrap_or(Value::Null);
    let messages: Vec<Value> = response.messages.iter().map(json::message).collect();
    let children: Vec<Value> = response.children.iter().map(json::child).collect();
    Ok(Json(
        json!({ "session": info, "messages": messages, "children": children }),
    ))
}

/// Sessions on the default model (stored as `""`, so they follow the
/// configured default) are shown with the `provider/model` it resolves to
/// now; left as stored when llm-proxy cannot say.
async fn show_default_model(state: &AppState, sessions: &mut [SessionInfo]) {
    if sessions.iter().all(|s| !s.model.is_empty()) {
        return;
    }
    let Ok(mut client) = state.backends.llm_proxy() else {
        return;
    };
    let request = ResolveModelRequest {
        model: String::new(),
    };
    let resolved = match client.resolve_model(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            tracing::debug!(%status, "default model unknown");
            return;
        }
    };
    let name = format!("{}/{}", resolved.provider, resolved.model);
    for session in sessions.iter_mut().filter(|s| s.model.is_empty()) {
        session.model.clone_from(&name);
    }
}

/// Session ids are UUIDs in their hyphenated text form, as agent-loop
/// mints them.
fn is_session_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Most notes one listing page may hold (agent-loop's own bound).
const MAX_MEMORY_LIMIT: u32 = 500;

#[derive(Debug, Deserialize)]
struct MemoryQuery {
    query: Option<String>,
    limit: Option<u32>,
    work_dir: Option<String>,
    all: Option<bool>,
    cursor: Option<String>,
}

/// Notes of the long-term memory: ranked by relevance with `query`,
/// otherwise newest first (`next_cursor` fetches the next page); those of
/// one workspace's project and the user's, or every project's with `all`.
async fn memory(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<MemoryQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(limit) = query.limit
        && !(1..=MAX_MEMORY_LIMIT).contains(&limit)
    {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_MEMORY_LIMIT}"
        )));
    }
    let request = ListMemoryRequest {
        query: query.query.unwrap_or_default(),
        limit: query.limit.unwrap_or(0),
        work_dir: query.work_dir.unwrap_or_default(),
        all_projects: query.all.unwrap_or(false),
        cursor: query.cursor.unwrap_or_default(),
        owner: principal.user.clone(),
    };
    let response = state
        .backends
        .agent_loop()
        .list_memory(request)
        .await
        .map_err(failed(Backend::AgentLoop))?
        .into_inner();
    let notes: Vec<Value> = response.notes.iter().map(json::memory_note).collect();
    let next = (!response.next_cursor.is_empty()).then_some(response.next_cursor);
    Ok(Json(
        json!({ "notes": notes, "next_cursor": next, "project": response.project }),
    ))
}

/// Deletes one note; answers with it.
async fn forget(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let request = ForgetMemoryRequest {
        id,
        owner: principal.user.clone(),
    };
    let note = state
        .backends
        .agent_loop()
        .forget_memory(request)
        .await
        .map_err(failed(Backend::AgentLoop))?
        .into_inner();
    Ok(Json(json!({ "note": json::memory_note(&note) })))
}
