//! OpenAI Responses API client (`wire_api = "responses"`): one streaming
//! `POST {api_base}/responses`, read as server-sent events.

mod events;
mod request;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use openheim_config::ProviderConfig;

use self::events::EventDecoder;
use super::embeddings::{self, EmbedRequest};
use super::http::{self, Endpoint, KeyHeader};
use super::{ProviderClient, ProviderEvent, ProviderRequest, ThinkingDefaults};
use crate::error::LlmError;
use crate::http_clients::HttpClients;

/// A provider speaking the Responses API.
pub struct OpenAiResponses {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Arc<Endpoint>,
    url: reqwest::Url,
    max_tokens: Option<u32>,
    thinking: ThinkingDefaults,
}

impl OpenAiResponses {
    /// Validates the provider's settings; no network access happens here.
    pub fn new(
        name: &str,
        config: &ProviderConfig,
        clients: &HttpClients,
    ) -> Result<Self, LlmError> {
        let endpoint = Endpoint::new(name, config, clients, KeyHeader::Bearer)?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: endpoint.url("/responses"),
                endpoint: Arc::new(endpoint),
                max_tokens: config.max_tokens,
                thinking: ThinkingDefaults::of(config),
            }),
        })
    }
}

impl ProviderClient for OpenAiResponses {
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        let inner = Arc::clone(&self.inner);
        http::stream_with(Arc::clone(&inner.endpoint), async move {
            let endpoint = &inner.endpoint;
            let thinking = inner
                .thinking
                .resolve(&request.conversation, &request.model);
            let body = request::encode(
                &request.model,
                &request.conversation,
                inner.max_tokens,
                thinking,
            )?;
            let response = endpoint.post(&inner.url, &[], body).await?;
            if !response.status().is_success() {
                let answer = endpoint.read_error(response).await;
                return Err(endpoint.http_error(&answer, &request.model, inner.url.as_str()));
            }
            let response = endpoint.expect_event_stream(response)?;
            Ok((response, EventDecoder::new(&endpoint.name, &request.model)))
        })
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'static, Result<Vec<Vec<f32>>, LlmError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { embeddings::openai(&inner.endpoint, &request).await })
    }
}
