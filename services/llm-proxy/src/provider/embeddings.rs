//! Embeddings over the three wire formats openheim speaks: OpenAI and
//! compatible servers (`POST {api_base}/embeddings`), Gemini
//! (`POST {api_base}/models/{model}:batchEmbedContents`) and Ollama's own
//! API (`POST {host}/api/embed`). Each returns one vector per input, in
//! order; anything else a provider answers is a protocol error.

use openheim_proto::llm_proxy::v1::EmbedPurpose;
use serde_json::{Value, json};

use super::http::Endpoint;
use crate::error::LlmError;

/// Most texts one call may embed.
pub const MAX_INPUTS: usize = 256;

/// What to embed, with the model chosen by resolution.
#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub model: String,
    pub inputs: Vec<String>,
    pub purpose: EmbedPurpose,
}

/// `POST {api_base}/embeddings` with `{"model", "input": [...]}`; the
/// answer's `data[i].embedding`, ordered by `data[i].index`.
pub(crate) async fn openai(
    endpoint: &Endpoint,
    request: &EmbedRequest,
) -> Result<Vec<Vec<f32>>, LlmError> {
    let url = endpoint.url("/embeddings");
    let body = json!({
        "model": request.model,
        "input": request.inputs,
        "encoding_format": "float",
    });
    let answer = send(endpoint, &url, &body, &request.model).await?;
    let data = answer
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| endpoint.protocol_error("the answer has no `data` array".into()))?;
    let mut indexed = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .map_or(position, |i| usize::try_from(i).unwrap_or(usize::MAX));
        indexed.push((index, vector(endpoint, item.get("embedding"))?));
    }
    indexed.sort_by_key(|(index, _)| *index);
    if indexed
        .iter()
        .enumerate()
        .any(|(i, (index, _))| i != *index)
    {
        return Err(
            endpoint.protocol_error("the answer's `data[].index` values are not 0..n".into())
        );
    }
    checked(
        endpoint,
        request,
        indexed.into_iter().map(|(_, v)| v).collect(),
    )
}

/// `POST {host}/api/embed` with `{"model", "input": [...]}`; the answer's
/// `embeddings`. The host is `api_base` without a trailing `/v1`, so one
/// provider entry serves chat (`/v1/chat/completions`) and embeddings.
pub(crate) async fn ollama(
    endpoint: &Endpoint,
    request: &EmbedRequest,
) -> Result<Vec<Vec<f32>>, LlmError> {
    let url = endpoint.url_beside_v1("/api/embed");
    let body = json!({ "model": request.model, "input": request.inputs });
    let answer = send(endpoint, &url, &body, &request.model).await?;
    let vectors = answer
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| endpoint.protocol_error("the answer has no `embeddings` array".into()))?
        .iter()
        .map(|v| vector(endpoint, Some(v)))
        .collect::<Result<Vec<_>, _>>()?;
    checked(endpoint, request, vectors)
}

/// `POST {api_base}/models/{model}:batchEmbedContents` with one request per
/// input (and the task type of its purpose); the answer's
/// `embeddings[i].values`.
pub(crate) async fn gemini(
    endpoint: &Endpoint,
    request: &EmbedRequest,
    model_path: &str,
) -> Result<Vec<Vec<f32>>, LlmError> {
    let url = endpoint.url(&format!("/{model_path}:batchEmbedContents"));
    let task = match request.purpose {
        EmbedPurpose::Query => "RETRIEVAL_QUERY",
        EmbedPurpose::Document | EmbedPurpose::Unspecified => "RETRIEVAL_DOCUMENT",
    };
    let requests: Vec<Value> = request
        .inputs
        .iter()
        .map(|text| {
            json!({
                "model": model_path,
                "content": { "parts": [{ "text": text }] },
                "taskType": task,
            })
        })
        .collect();
    let body = json!({ "requests": requests });
    let answer = send(endpoint, &url, &body, &request.model).await?;
    let vectors = answer
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| endpoint.protocol_error("the answer has no `embeddings` array".into()))?
        .iter()
        .map(|e| vector(endpoint, e.get("values")))
        .collect::<Result<Vec<_>, _>>()?;
    checked(endpoint, request, vectors)
}

/// Posts `body` and reads the JSON answer, mapping a failure status to the
/// error the caller acts on (Google answers a bad key with 400
/// `API_KEY_INVALID`, which is an authentication failure).
async fn send(
    endpoint: &Endpoint,
    url: &reqwest::Url,
    body: &Value,
    model: &str,
) -> Result<Value, LlmError> {
    let bytes = serde_json::to_vec(body).map_err(|e| LlmError::Internal {
        message: format!("cannot encode the request: {e}"),
    })?;
    let response = endpoint.post_json(url, bytes).await?;
    if !response.status().is_success() {
        let mut answer = endpoint.read_error(response).await;
        if answer.parsed.as_ref().and_then(|e| e.reason()) == Some("API_KEY_INVALID") {
            answer.status = 401;
        }
        return Err(endpoint.http_error(&answer, model, url.as_str()));
    }
    endpoint.read_json(response).await
}

fn vector(endpoint: &Endpoint, value: Option<&Value>) -> Result<Vec<f32>, LlmError> {
    let values = value
        .and_then(Value::as_array)
        .ok_or_else(|| endpoint.protocol_error("an embedding is not an array of numbers".into()))?;
    values
        .iter()
        .map(|v| match v.as_f64() {
            Some(x) if x.is_finite() => Ok(x as f32),
            _ => {
                Err(endpoint.protocol_error(format!("an embedding holds {v}, not a finite number")))
            }
        })
        .collect()
}

/// One non-empty vector per input, all of one dimension.
fn checked(
    endpoint: &Endpoint,
    request: &EmbedRequest,
    vectors: Vec<Vec<f32>>,
) -> Result<Vec<Vec<f32>>, LlmError> {
    if vectors.len() != request.inputs.len() {
        return Err(endpoint.protocol_error(format!(
            "asked for {} embeddings, got {}",
            request.inputs.len(),
            vectors.len()
        )));
    }
    let dimension = vectors.first().map_or(0, Vec::len);
    if vectors.iter().any(|v| v.is_empty() || v.len() != dimension) {
        return Err(
            endpoint.protocol_error("the embeddings are empty or of different dimensions".into())
        );
    }
    Ok(vectors)
}
