//! The gRPC adapter: maps tonic requests to [`Proxy`] calls and back. The
//! only module of this crate that names tonic types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use openheim_proto::llm_proxy::v1::llm_proxy_server::{LlmProxy, LlmProxyServer};
use openheim_proto::llm_proxy::v1::{
    CompleteRequest, CompletionEvent, EmbedRequest, EmbedResponse, ErrorKind, ListModelsRequest,
    ListModelsResponse, ResolveModelRequest, ResolveModelResponse,
};
use openheim_proto::transport::MAX_MESSAGE_BYTES;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::error::{LlmError, LlmProxyError};
use crate::service::Proxy;

/// [`Proxy`] as a tonic service.
pub struct GrpcProxy {
    proxy: Arc<Proxy>,
}

type CompletionStream = Pin<Box<dyn Stream<Item = Result<CompletionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl LlmProxy for GrpcProxy {
    type CompleteStream = CompletionStream;

    async fn complete(
        &self,
        request: Request<CompleteRequest>,
    ) -> Result<Response<Self::CompleteStream>, Status> {
        // Every failure travels inside the stream as a typed `Error` event,
        // so this call itself always succeeds.
        let events = self.proxy.complete(request.into_inner());
        let stream = ReceiverStream::new(events).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_models(
        &self,
        _request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        Ok(Response::new(self.proxy.list_models()))
    }

    async fn resolve_model(
        &self,
        request: Request<ResolveModelRequest>,
    ) -> Result<Response<ResolveModelResponse>, Status> {
        // Resolution fails only on the configuration (unknown provider or
        // model), which the caller cannot fix by retrying.
        self.proxy
            .resolve_model(&request.into_inner().model)
            .map(Response::new)
            .map_err(|e| Status::failed_precondition(e.to_string()))
    }

    async fn embed(
        &self,
        request: Request<EmbedRequest>,
    ) -> Result<Response<EmbedResponse>, Status> {
        self.proxy
            .embed(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| embed_status(&e))
    }
}

/// How an embeddings failure reaches the caller: retryable provider trouble
/// is UNAVAILABLE, our configuration FAILED_PRECONDITION, a refused key
/// UNAUTHENTICATED, a refused request INVALID_ARGUMENT.
fn embed_status(error: &LlmError) -> Status {
    let message = error.to_string();
    if error.is_retryable() {
        return Status::unavailable(message);
    }
    match error.kind() {
        ErrorKind::Config | ErrorKind::NotFound => Status::failed_precondition(message),
        ErrorKind::Auth => Status::unauthenticated(message),
        ErrorKind::BadRequest | ErrorKind::ContextTooLong => Status::invalid_argument(message),
        ErrorKind::Internal => Status::invalid_argument(message),
        ErrorKind::RateLimited
        | ErrorKind::Overloaded
        | ErrorKind::Timeout
        | ErrorKind::Network
        | ErrorKind::Provider => Status::unavailable(message),
        ErrorKind::Protocol | ErrorKind::Unspecified => Status::internal(message),
    }
}

pub(crate) fn server(proxy: Arc<Proxy>) -> LlmProxyServer<GrpcProxy> {
    LlmProxyServer::new(GrpcProxy { proxy })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub(crate) async fn serve(
    server: LlmProxyServer<GrpcProxy>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LlmProxyError> {
    openheim_proto::transport::serve(server, listener, shutdown)
        .await
        .map_err(|e| LlmProxyError::Serve(Box::new(e)))
}
