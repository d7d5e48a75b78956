//! Anthropic Messages client: one streaming `POST {api_base}/messages` with
//! `x-api-key` and `anthropic-version`, read as server-sent events.

mod events;
mod request;

use std::sync::Arc;

use futures::stream::BoxStream;
use openheim_config::{ProviderConfig, ThinkingStyle};
use reqwest::header::{HeaderName, HeaderValue};

use self::events::EventDecoder;
use super::http::{self, Endpoint, KeyHeader};
use super::{ProviderClient, ProviderEvent, ProviderRequest, ThinkingDefaults};
use crate::error::LlmError;
use crate::http_clients::HttpClients;

/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when neither the request nor the
/// provider's `max_tokens` sets it.
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 8192;

/// A provider speaking the Anthropic Messages API.
pub struct Anthropic {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Arc<Endpoint>,
    url: reqwest::Url,
    max_tokens: u32,
    thinking: ThinkingDefaults,
    thinking_style: Option<ThinkingStyle>,
    headers: [(HeaderName, HeaderValue); 1],
}

impl Anthropic {
    /// Validates the provider's settings; no network access happens here.
    pub fn new(
        name: &str,
        config: &ProviderConfig,
        clients: &HttpClients,
    ) -> Result<Self, LlmError> {
        let endpoint = Endpoint::new(name, config, clients, KeyHeader::Named("x-api-key"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: endpoint.url("/messages"),
                endpoint: Arc::new(endpoint),
                max_tokens: config.max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS),
                thinking: ThinkingDefaults::of(config),
                thinking_style: config.thinking_style,
                headers: [(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                )],
            }),
        })
    }
}

impl ProviderClient for Anthropic {
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        let inner = Arc::clone(&self.inner);
        http::stream_with(Arc::clone(&inner.endpoint), async move {
            let conversation = &request.conversation;
            let thinking = inner.thinking.resolve(conversation, &request.model);
            let body = request::encode(
                &request.model,
                conversation,
                inner.max_tokens,
                thinking,
                inner.thinking_style,
            )?;
            let endpoint = &inner.endpoint;
            let response = endpoint.post(&inner.url, &inner.headers, body).await?;
            if !response.status().is_success() {
                let answer = endpoint.read_error(response).await;
                return Err(endpoint.http_error(&answer, &request.model, inner.url.as_str()));
            }
            let response = endpoint.expect_event_stream(response)?;
            Ok((response, EventDecoder::new(&endpoint.name, &request.model)))
        })
    }
}
