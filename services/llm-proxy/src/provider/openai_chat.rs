//! OpenAI Chat Completions client, for OpenAI itself and every
//! OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp, …): one
//! streaming `POST {api_base}/chat/completions`, read as server-sent events.

mod chunk;
mod request;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use openheim_config::{EmbeddingsApi, ProviderConfig, ProviderKind};

use self::chunk::ChunkDecoder;
use self::request::BodyOptions;
use super::embeddings::{self, EmbedRequest};
use super::http::{self, Endpoint, KeyHeader};
use super::{ProviderClient, ProviderEvent, ProviderRequest, ThinkingDefaults};
use crate::error::LlmError;
use crate::http_clients::HttpClients;

/// A provider speaking Chat Completions.
pub struct OpenAiChat {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Arc<Endpoint>,
    kind: ProviderKind,
    url: reqwest::Url,
    max_tokens: Option<u32>,
    thinking: ThinkingDefaults,
    /// How this server is asked for embeddings.
    embeddings_api: EmbeddingsApi,
    /// Cleared the first time an OpenAI-compatible server rejects
    /// `stream_options`, so later requests do not pay a failed round trip.
    stream_options: AtomicBool,
}

impl OpenAiChat {
    /// Validates the provider's settings; no network access happens here.
    pub fn new(
        name: &str,
        kind: ProviderKind,
        config: &ProviderConfig,
        clients: &HttpClients,
    ) -> Result<Self, LlmError> {
        let endpoint = Endpoint::new(name, config, clients, KeyHeader::Bearer)?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: endpoint.url("/chat/completions"),
                endpoint: Arc::new(endpoint),
                kind,
                max_tokens: config.max_tokens,
                thinking: ThinkingDefaults::of(config),
                embeddings_api: config.embeddings_api,
                stream_options: AtomicBool::new(true),
            }),
        })
    }
}

impl ProviderClient for OpenAiChat {
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        let inner = Arc::clone(&self.inner);
        http::stream_with(Arc::clone(&inner.endpoint), async move {
            let response = inner.open(&request).await?;
            let decoder = ChunkDecoder::new(&inner.endpoint.name, &request.model);
            Ok((response, decoder))
        })
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'static, Result<Vec<Vec<f32>>, LlmError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            match inner.embeddings_api {
                EmbeddingsApi::Openai => embeddings::openai(&inner.endpoint, &request).await,
                EmbeddingsApi::Ollama => embeddings::ollama(&inner.endpoint, &request).await,
            }
        })
    }
}

impl Inner {
    /// Sends the request and returns the successful (streaming) response.
    async fn open(&self, request: &ProviderRequest) -> Result<reqwest::Response, LlmError> {
        let compatible = self.kind == ProviderKind::OpenaiCompatible;
        let mut stream_options = !compatible || self.stream_options.load(Ordering::Relaxed);
        loop {
            let body = request::encode(
                &request.model,
                &request.conversation,
                BodyOptions {
                    stream_options,
                    max_completion_tokens: self.kind == ProviderKind::Openai,
                    default_max_tokens: self.max_tokens,
                    thinking: self.thinking.resolve(&request.conversation, &request.model),
                },
            )?;
            let response = self.endpoint.post(&self.url, &[], body).await?;
            if response.status().is_success() {
                return self.endpoint.expect_event_stream(response);
            }
            let answer = self.endpoint.read_error(response).await;
            // Some compatible servers reject the field outright; the only
            // signal is their message. Drop it once, for good.
            if compatible
                && stream_options
                && answer.status == 400
                && answer.message().contains("stream_options")
            {
                tracing::info!(provider = %self.endpoint.name, "server rejects stream_options; retrying without it");
                self.stream_options.store(false, Ordering::Relaxed);
                stream_options = false;
                continue;
            }
            return Err(self
                .endpoint
                .http_error(&answer, &request.model, self.url.as_str()));
        }
    }
}
