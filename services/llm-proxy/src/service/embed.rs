//! `Embed`: vectors from an embeddings model, retried like a completion on
//! the provider's retry policy (within the total deadline), never falling
//! back to another model, whose vectors would not compare with the stored
//! ones.

use openheim_proto::llm_proxy::v1::{EmbedRequest as WireRequest, EmbedResponse, Embedding};

use super::{Deadline, Proxy};
use crate::error::LlmError;
use crate::provider::{EmbedRequest, MAX_INPUTS};
use crate::resolve;

impl Proxy {
    /// One vector per input of `request`, in order.
    pub async fn embed(&self, request: WireRequest) -> Result<EmbedResponse, LlmError> {
        let purpose = request.purpose();
        if request.inputs.is_empty() || request.inputs.len() > MAX_INPUTS {
            return Err(LlmError::Internal {
                message: format!(
                    "an embeddings request needs 1 to {MAX_INPUTS} inputs, got {}",
                    request.inputs.len()
                ),
            });
        }
        let target = resolve::resolve(&self.config, &request.model)?;
        let entry = self.providers.get(&target.provider).ok_or_else(|| {
            LlmError::config(format!("provider {} is not configured", target.provider))
        })?;
        let provider = entry.client.as_ref().map_err(Clone::clone)?;
        let call = EmbedRequest {
            model: target.model.clone(),
            inputs: request.inputs,
            purpose,
        };
        let deadline = Deadline::starting_now(self.config.total_timeout);
        let mut retries = 0;
        loop {
            let error = match provider.embed(call.clone()).await {
                Ok(vectors) => {
                    return Ok(EmbedResponse {
                        provider: target.provider,
                        model: target.model,
                        embeddings: vectors
                            .into_iter()
                            .map(|values| Embedding { values })
                            .collect(),
                    });
                }
                Err(LlmError::Config { message }) => {
                    return Err(LlmError::config(format!(
                        "provider {}: {message}",
                        target.provider
                    )));
                }
                Err(error) => error,
            };
            let delay = entry.policy.delay_for(retries + 1, error.retry_after());
            if !error.is_retryable()
                || retries >= entry.policy.max_retries
                || !deadline.allows(delay)
            {
                return Err(error);
            }
            retries += 1;
            tracing::warn!(provider = %target.provider, model = %target.model, %error, retry = retries, "retrying an embeddings call");
            tokio::time::sleep(delay).await;
        }
    }
}
