//! Google Gemini client: one streaming
//! `POST {api_base}/models/{model}:streamGenerateContent?alt=sse` with the key
//! in the `x-goog-api-key` header (never in the URL, where it would end up in
//! logs and error messages).

mod events;
mod request;
mod schema;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use openheim_config::ProviderConfig;

use self::events::ChunkDecoder;
use super::embeddings::{self, EmbedRequest};
use super::http::{self, Endpoint, KeyHeader};
use super::{ProviderClient, ProviderEvent, ProviderRequest, ThinkingDefaults};
use crate::error::LlmError;
use crate::http_clients::HttpClients;

/// A provider speaking the Gemini API.
pub struct Gemini {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Arc<Endpoint>,
    max_tokens: Option<u32>,
    thinking: ThinkingDefaults,
}

impl Gemini {
    /// Validates the provider's settings; no network access happens here.
    pub fn new(
        name: &str,
        config: &ProviderConfig,
        clients: &HttpClients,
    ) -> Result<Self, LlmError> {
        let endpoint = Endpoint::new(name, config, clients, KeyHeader::Named("x-goog-api-key"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint: Arc::new(endpoint),
                max_tokens: config.max_tokens,
                thinking: ThinkingDefaults::of(config),
            }),
        })
    }
}

impl ProviderClient for Gemini {
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        let inner = Arc::clone(&self.inner);
        http::stream_with(Arc::clone(&inner.endpoint), async move {
            let endpoint = &inner.endpoint;
            let url = endpoint.url(&model_path(&request.model)?);
            let thinking = inner
                .thinking
                .resolve(&request.conversation, &request.model);
            let body = request::encode(
                &request.model,
                &request.conversation,
                inner.max_tokens,
                thinking,
            )?;
            let response = endpoint.post(&url, &[], body).await?;
            if !response.status().is_success() {
                let mut answer = endpoint.read_error(response).await;
                // Google answers a bad key with 400 INVALID_ARGUMENT; the
                // typed reason says what it is.
                if answer.parsed.as_ref().and_then(|e| e.reason()) == Some("API_KEY_INVALID") {
                    answer.status = 401;
                }
                return Err(endpoint.http_error(&answer, &request.model, url.as_str()));
            }
            let response = endpoint.expect_event_stream(response)?;
            Ok((response, ChunkDecoder::new(&endpoint.name, &request.model)))
        })
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'static, Result<Vec<Vec<f32>>, LlmError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let model = model_name(&request.model)?;
            embeddings::gemini(&inner.endpoint, &request, &format!("models/{model}")).await
        })
    }
}

/// The streaming path of `model` (`gemini-2.5-flash` or `models/gemini-2.5-flash`)
/// under the API base.
fn model_path(model: &str) -> Result<String, LlmError> {
    Ok(format!(
        "/models/{}:streamGenerateContent?alt=sse",
        model_name(model)?
    ))
}

/// The model id without its `models/` prefix, checked to be safe in a URL
/// path.
fn model_name(model: &str) -> Result<&str, LlmError> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let valid = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(LlmError::config(format!(
            "{model:?} is not a valid Gemini model id (letters, digits, '-', '_' and '.')"
        )));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_model_and_never_a_key() {
        assert_eq!(
            model_path("models/gemini-2.5-flash").ok().as_deref(),
            Some("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        );
        assert!(model_path("../x").is_err());
        assert!(model_path("m?key=1").is_err());
    }
}
