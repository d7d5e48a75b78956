//! The wire of openheim: generated gRPC code for every service
//! (`openheim.<service>.v1`) and [`transport`], which gives every client one
//! type whether its server runs in the same process or across the network.

pub mod balance;
pub mod image;
pub mod limit;
pub mod plan;
mod tool;
pub mod trace;
pub mod transport;
mod usage;

/// Generated code, one module per proto package.
pub mod common {
    pub mod v1 {
        tonic::include_proto!("openheim.common.v1");
    }
}

pub mod llm_proxy {
    pub mod v1 {
        tonic::include_proto!("openheim.llm_proxy.v1");
    }
}

pub mod tool_executor {
    pub mod v1 {
        tonic::include_proto!("openheim.tool_executor.v1");
    }
}

pub mod mcp_broker {
    pub mod v1 {
        tonic::include_proto!("openheim.mcp_broker.v1");
    }
}

pub mod agent_loop {
    pub mod v1 {
        tonic::include_proto!("openheim.agent_loop.v1");
    }
}

pub use transport::{ChannelError, GrpcChannel, TransportError};
