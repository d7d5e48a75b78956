//! MCP failures in words: what failed, without the type names of the
//! transport library (`Transport [rmcp::transport::worker::…] error`).

use std::error::Error;

use rmcp::ServiceError;
use rmcp::service::ClientInitializeError;

/// Why `initialize` failed.
pub fn initialize(error: &ClientInitializeError) -> String {
    match error {
        ClientInitializeError::ConnectionClosed(_) => {
            "the server closed the connection before answering".to_owned()
        }
        ClientInitializeError::TransportError { error, .. } => {
            format!("could not talk to the server: {}", innermost(error))
        }
        ClientInitializeError::JsonRpcError(data) => {
            format!("the server refused: {}", data.message)
        }
        ClientInitializeError::NoCompatibleProtocolVersion {
            server_supported, ..
        } => format!(
            "no protocol version in common (the server speaks {})",
            server_supported
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "the server did not answer with an initialize result".to_owned(),
    }
}

/// Why a request to a connected server failed.
pub fn service(error: &ServiceError) -> String {
    match error {
        ServiceError::McpError(data) => data.message.to_string(),
        ServiceError::TransportSend(error) => {
            format!("could not send the request: {}", innermost(error))
        }
        ServiceError::TransportClosed => "the connection is closed".to_owned(),
        ServiceError::UnexpectedResponse => "the server answered with something else".to_owned(),
        ServiceError::Cancelled { .. } => "the request was cancelled".to_owned(),
        ServiceError::Timeout { timeout } => format!("no answer within {timeout:?}"),
        other => other.to_string(),
    }
}

/// The deepest cause of an error chain: the words of the OS or the HTTP
/// client (`Connection refused`, `dns error: …`), not the wrappers'.
fn innermost(error: &(dyn Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn transport_errors_name_the_cause_not_the_types() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let dynamic = rmcp::transport::DynamicTransportError::from_parts(
            "rmcp::transport::worker::WorkerTransport<rmcp::transport::streamable_http_client::X>",
            std::any::TypeId::of::<u8>(),
            Box::new(io),
        );
        let error = ClientInitializeError::TransportError {
            error: dynamic,
            context: Cow::Borrowed("send initialize request"),
        };
        let shown = initialize(&error);
        assert_eq!(shown, "could not talk to the server: Connection refused");
        assert!(!shown.contains("rmcp"), "{shown}");
        assert_eq!(
            service(&ServiceError::TransportClosed),
            "the connection is closed"
        );
    }
}
