//! openheim: the `openheim` binary and the embeddable library.
//!
//! This crate is the composition root. [`Runtime`] wires the four services
//! together, each either in this process (a generated gRPC server behind an
//! in-memory channel) or remote (HTTP/2 to the address in `[services]`); the
//! front ends (`run`, later the REPL, ACP and the gateway) only ever hold an
//! agent-loop gRPC client.

pub mod bridge;
pub mod images;
pub mod init;
mod library;
pub mod mcp_auth;
pub mod memory;
pub mod run;
mod runtime;
pub mod sessions;
mod texts;
pub mod tui;

pub use library::{Error, Openheim, OpenheimBuilder, Session, SessionOptions, Turn};
pub use runtime::{Extensions, Runtime, RuntimeError, Workspaces};

/// What custom tools implement and use.
pub mod tools {
    /// `#[async_trait]` for `impl ToolHandler`.
    pub use async_trait::async_trait;
    pub use openheim_proto::common::v1::{FileDiff, ToolDefinition, ToolKind};
    pub use openheim_tool_executor::{
        Access, ToolContext, ToolError, ToolHandler, ToolOutput, WorkspaceRoot, parse_args,
    };
}

/// What custom LLM providers implement and use: the trait, the events of a
/// streamed answer, the typed errors, and the conversation types a request
/// carries (`docs/custom-llm-provider.md`).
pub mod llm {
    /// `#[async_trait]` for `impl LlmProvider`.
    pub use async_trait::async_trait;
    pub use openheim_llm_proxy::custom::{
        CompletionRequest, ErrorKind, EventSink, FinishReason, LlmProvider, MAX_TOOL_CALLS,
        ProviderError, ProviderEvent,
    };
    pub use openheim_proto::common::v1::{
        ContentBlock, Image, Message, Role, Thinking, ToolCall, ToolDefinition, ToolResult, Usage,
        content_block::Block,
    };
}

/// Configuration types for the builder.
pub mod config {
    pub use openheim_config::{
        Config, McpServerConfig, PermissionsConfig, ProviderConfig, ProviderKind, Secret, Thinking,
        ToolPolicy,
    };
}

/// Events and messages of the agent-loop wire, and what its listings return
/// (tools, MCP server statuses, provider models).
pub mod events {
    pub use openheim_proto::agent_loop::v1::{
        ApprovalMode, ChildActivity, Compacted, Decision, ModelSelected, SessionInfo,
        ToolCallStatus, TurnEvent, child_activity, turn_event::Event,
    };
    pub use openheim_proto::common::v1::{Message, StopReason, ToolDefinition, ToolKind, Usage};
    pub use openheim_proto::llm_proxy::v1::{ProviderModels, ResolveModelResponse};
    pub use openheim_proto::mcp_broker::v1::{ServerState, ServerStatus};
}
