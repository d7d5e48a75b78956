//! Stand-ins for the backends: a channel that answers every call with one
//! status, a tool-executor that lists a fixed number of entries, and an
//! agent-loop that lists sessions with given titles.

use std::convert::Infallible;
use std::time::Duration;

use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1 as al;
use openheim_proto::tool_executor::v1 as te;
use openheim_proto::tool_executor::v1::tool_executor_server::{ToolExecutor, ToolExecutorServer};
use tonic::{Code, Request, Response, Status};

use crate::{Backends, GatewayOptions, Limits};

/// A channel whose every call fails with `code`.
pub fn failing(code: Code, message: &'static str) -> GrpcChannel {
    let service = tower::service_fn(
        move |_request: http::Request<tonic::body::Body>| async move {
            Ok::<_, Infallible>(Status::new(code, message).into_http())
        },
    );
    openheim_proto::transport::in_process(service)
}

/// A tool-executor whose listings have `entries` files; other file
/// operations are unimplemented.
#[derive(Clone)]
pub struct Files {
    pub entries: usize,
}

pub fn tool_executor(entries: usize) -> GrpcChannel {
    openheim_proto::transport::in_process(ToolExecutorServer::new(Files { entries }))
}

pub fn backends(agent_loop: GrpcChannel) -> Backends {
    Backends {
        tool_executor: Some(tool_executor(3)),
        ..Backends::agent_loop_only(agent_loop)
    }
}

/// Options for tests: no auth, a known workspace, short timeouts.
pub fn options() -> GatewayOptions {
    let mut options = GatewayOptions::from_config(&openheim_config::Config::default()).unwrap();
    options.work_dir = "/workspace".to_owned();
    options.limits = Limits {
        slow_client_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    options.shutdown_deadline = Duration::from_secs(5);
    options
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this fake"))
}

#[tonic::async_trait]
impl ToolExecutor for Files {
    async fn list_tools(
        &self,
        _: Request<te::ListToolsRequest>,
    ) -> Result<Response<te::ListToolsResponse>, Status> {
        unimplemented()
    }

    async fn execute(
        &self,
        _: Request<te::ExecuteRequest>,
    ) -> Result<Response<te::ExecuteResponse>, Status> {
        unimplemented()
    }

    async fn run_hook(
        &self,
        _: Request<te::RunHookRequest>,
    ) -> Result<Response<te::RunHookResponse>, Status> {
        unimplemented()
    }

    async fn get_sandbox_info(
        &self,
        _: Request<te::GetSandboxInfoRequest>,
    ) -> Result<Response<te::SandboxInfo>, Status> {
        Ok(Response::new(te::SandboxInfo {
            workspace_root: String::new(),
            confinement: "landlock".to_owned(),
            detail: "fake".to_owned(),
        }))
    }

    async fn list_dir(
        &self,
        request: Request<te::ListDirRequest>,
    ) -> Result<Response<te::ListDirResponse>, Status> {
        let root = request.into_inner().workspace.map(|w| w.root);
        if root.as_deref() != Some("/workspace") {
            return Err(Status::invalid_argument("wrong workspace"));
        }
        let entries = (0..self.entries)
            .map(|i| te::FileEntry {
                path: format!("file-{i:05}.txt"),
                name: format!("file-{i:05}.txt"),
                is_dir: false,
                size: 1,
                modified_ms: 1,
            })
            .collect();
        Ok(Response::new(te::ListDirResponse {
            entries,
            truncated: false,
        }))
    }

    async fn read_file(
        &self,
        _: Request<te::ReadFileRequest>,
    ) -> Result<Response<te::ReadFileResponse>, Status> {
        Err(Status::permission_denied(
            "\"../x\" is outside the workspace",
        ))
    }

    async fn write_file(
        &self,
        _: Request<te::WriteFileRequest>,
    ) -> Result<Response<te::FileOpResponse>, Status> {
        unimplemented()
    }

    async fn make_dir(
        &self,
        _: Request<te::MakeDirRequest>,
    ) -> Result<Response<te::FileOpResponse>, Status> {
        unimplemented()
    }

    async fn delete(
        &self,
        _: Request<te::DeleteRequest>,
    ) -> Result<Response<te::FileOpResponse>, Status> {
        unimplemented()
    }

    async fn rename(
        &self,
        _: Request<te::RenameRequest>,
    ) -> Result<Response<te::FileOpResponse>, Status> {
        unimplemented()
    }

    type WatchStream = tokio_stream::Empty<Result<te::FsEvent, Status>>;

    async fn watch(
        &self,
        _: Request<te::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        unimplemented()
    }
}

/// An agent-loop that lists sessions with these titles (newest first), in
/// pages of at most `page_size`; its cursor is the next index. Other calls
/// are unimplemented. Records the page sizes it was asked for.
#[derive(Clone)]
pub struct Sessions {
    pub titles: Vec<String>,
    pub calls: std::sync::Arc<std::sync::Mutex<usize>>,
}

pub fn sessions(titles: &[&str]) -> (GrpcChannel, Sessions) {
    let fake = Sessions {
        titles: titles.iter().map(|t| (*t).to_owned()).collect(),
        calls: Default::default(),
    };
    let server = al::agent_loop_server::AgentLoopServer::new(fake.clone());
    (openheim_proto::transport::in_process(server), fake)
}

#[tonic::async_trait]
impl al::agent_loop_server::AgentLoop for Sessions {
    async fn create_session(
        &self,
        _: Request<al::CreateSessionRequest>,
    ) -> Result<Response<al::SessionInfo>, Status> {
        unimplemented()
    }

    async fn load_session(
        &self,
        _: Request<al::LoadSessionRequest>,
    ) -> Result<Response<al::LoadSessionResponse>, Status> {
        unimplemented()
    }

    async fn list_sessions(
        &self,
        request: Request<al::ListSessionsRequest>,
    ) -> Result<Response<al::ListSessionsResponse>, Status> {
        *self.calls.lock().unwrap() += 1;
        let request = request.into_inner();
        let start: usize = match request.cursor.as_str() {
            "" => 0,
            c => c
                .parse()
                .map_err(|_| Status::invalid_argument("bad cursor"))?,
        };
        let end = (start + request.page_size as usize).min(self.titles.len());
        let sessions = (start..end)
            .map(|i| al::SessionInfo {
                id: format!("s{i}"),
                title: self.titles[i].clone(),
                ..al::SessionInfo::default()
            })
            .collect();
        let next_cursor = match end < self.titles.len() {
            true => end.to_string(),
            false => String::new(),
        };
        Ok(Response::new(al::ListSessionsResponse {
            sessions,
            next_cursor,
        }))
    }

    async fn delete_session(
        &self,
        _: Request<al::DeleteSessionRequest>,
    ) -> Result<Response<al::DeleteSessionResponse>, Status> {
        unimplemented()
    }

    async fn close_session(
        &self,
        _: Request<al::CloseSessionRequest>,
    ) -> Result<Response<al::CloseSessionResponse>, Status> {
        unimplemented()
    }

    async fn set_session_model(
        &self,
        _: Request<al::SetSessionModelRequest>,
    ) -> Result<Response<al::SessionInfo>, Status> {
        unimplemented()
    }

    async fn set_session_mode(
        &self,
        _: Request<al::SetSessionModeRequest>,
    ) -> Result<Response<al::SessionInfo>, Status> {
        unimplemented()
    }

    async fn set_session_skills(
        &self,
        _: Request<al::SetSessionSkillsRequest>,
    ) -> Result<Response<al::SessionInfo>, Status> {
        unimplemented()
    }

    async fn list_tools(
        &self,
        _: Request<al::ListToolsRequest>,
    ) -> Result<Response<al::ListToolsResponse>, Status> {
        unimplemented()
    }

    async fn list_skills(
        &self,
        _: Request<al::ListSkillsRequest>,
    ) -> Result<Response<al::ListSkillsResponse>, Status> {
        unimplemented()
    }

    async fn list_mcp_servers(
        &self,
        _: Request<al::ListMcpServersRequest>,
    ) -> Result<Response<al::ListMcpServersResponse>, Status> {
        unimplemented()
    }

    async fn list_mcp_prompts(
        &self,
        _: Request<al::ListMcpPromptsRequest>,
    ) -> Result<Response<al::ListMcpPromptsResponse>, Status> {
        unimplemented()
    }

    async fn get_mcp_prompt(
        &self,
        _: Request<al::GetMcpPromptRequest>,
    ) -> Result<Response<al::GetMcpPromptResponse>, Status> {
        unimplemented()
    }

    async fn list_memory(
        &self,
        _: Request<al::ListMemoryRequest>,
    ) -> Result<Response<al::ListMemoryResponse>, Status> {
        unimplemented()
    }

    async fn forget_memory(
        &self,
        _: Request<al::ForgetMemoryRequest>,
    ) -> Result<Response<al::MemoryNote>, Status> {
        unimplemented()
    }

    type TurnStream = futures::stream::Empty<Result<al::TurnEvent, Status>>;

    async fn turn(
        &self,
        _: Request<tonic::Streaming<al::TurnInput>>,
    ) -> Result<Response<Self::TurnStream>, Status> {
        unimplemented()
    }
}
