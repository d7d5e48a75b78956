//! Generates the tonic/prost code from `openheim/**/*.proto` with a vendored
//! protoc, so building needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Respect an explicit PROTOC (e.g. a distro build); otherwise use the vendored one.
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        set_protoc(&protoc);
    }
    let protos = [
        "openheim/common/v1/common.proto",
        "openheim/llm_proxy/v1/llm_proxy.proto",
        "openheim/tool_executor/v1/tool_executor.proto",
        "openheim/mcp_broker/v1/mcp_broker.proto",
        "openheim/agent_loop/v1/agent_loop.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&protos, &["."])?;
    Ok(())
}

/// `std::env::set_var` is `unsafe` in edition 2024; the build script runs
/// before any other thread exists, which is exactly its safety condition.
#[allow(unsafe_code)]
fn set_protoc(path: &std::path::Path) {
    // SAFETY: no other threads are running in this build script.
    unsafe { std::env::set_var("PROTOC", path) };
}
