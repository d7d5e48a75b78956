//! The embeddings endpoints of the mock: OpenAI (`POST /v1/embeddings`),
//! Ollama (`POST /api/embed`) and Gemini
//! (`POST /v1beta/models/{model}:batchEmbedContents` and `:embedContent`).
//! Each request is validated like the real API would, recorded apart from
//! completions (it never consumes the script), and answered with
//! deterministic vectors: a hashed bag of words in which the synonyms of
//! [`SYNONYMS`] share their first word's dimension, so a test can tell a
//! semantic match ("automobile" finds "car") from a full-text one.

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{RecordedRequest, Shared, wire};

/// Dimension of every mock vector.
pub const DIMENSION: usize = 64;

/// Words embedded as their group's first word.
pub const SYNONYMS: &[&[&str]] = &[
    &["car", "automobile", "vehicle", "auto"],
    &["invoice", "bill", "receipt"],
    &["fast", "quick", "speedy", "rapid"],
    &["database", "postgres", "postgresql", "db"],
    &["deploy", "deployment", "release", "ship"],
];

/// The mock's vector of `text`: unit length, deterministic.
pub fn embedding(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0_f32; DIMENSION];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let canonical = SYNONYMS
            .iter()
            .find(|group| group.contains(&word))
            .map_or(word, |group| group[0]);
        // FNV-1a: stable across runs and platforms.
        let hash = canonical.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        vector[(hash % DIMENSION as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// Which embeddings API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedWire {
    OpenAi,
    Ollama,
    GeminiBatch,
    GeminiSingle,
}

impl EmbedWire {
    pub fn from_path(path: &str) -> Option<Self> {
        if path.ends_with("/embeddings") {
            Some(Self::OpenAi)
        } else if path == "/api/embed" {
            Some(Self::Ollama)
        } else if path.ends_with(":batchEmbedContents") {
            Some(Self::GeminiBatch)
        } else if path.ends_with(":embedContent") {
            Some(Self::GeminiSingle)
        } else {
            None
        }
    }
}

/// Answers one embeddings request.
pub(super) fn answer(
    shared: &Shared,
    embed_wire: EmbedWire,
    uri: &Uri,
    headers: &HeaderMap,
    raw: &[u8],
) -> Response {
    let body = serde_json::from_slice::<Value>(raw)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()));
    let n = {
        let mut state = shared.lock();
        state.embedding_requests.push(RecordedRequest {
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: headers.clone(),
            body: body.clone(),
            received_at: std::time::Instant::now(),
        });
        state.embedding_requests.len()
    };
    let gemini = matches!(embed_wire, EmbedWire::GeminiBatch | EmbedWire::GeminiSingle);
    let error_wire = if gemini {
        wire::Wire::Gemini
    } else {
        wire::Wire::Chat
    };
    let reject = |status: StatusCode, message: String| {
        shared.violation(format!("embeddings request {n}: {message}"));
        let body = wire::error_body(
            error_wire,
            status.as_u16(),
            &message,
            "invalid_request_error",
        );
        (status, axum::Json(body)).into_response()
    };
    if let Some(key) = &shared.api_key {
        let (name, expected) = match gemini {
            true => ("x-goog-api-key", key.clone()),
            false => ("authorization", format!("Bearer {key}")),
        };
        let got = headers.get(name).and_then(|v| v.to_str().ok());
        if got != Some(expected.as_str()) {
            return reject(StatusCode::UNAUTHORIZED, format!("{name} is {got:?}"));
        }
    }
    if let Some(status) = shared.lock().embeddings_failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = wire::error_body(
            error_wire,
            status.as_u16(),
            "embeddings are failing (injected)",
            "server_error",
        );
        return (status, axum::Json(body)).into_response();
    }
    let texts = match inputs(embed_wire, uri.path(), &body) {
        Ok(texts) => texts,
        Err(problem) => return reject(StatusCode::BAD_REQUEST, problem),
    };
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| embedding(t)).collect();
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let answer = match embed_wire {
        EmbedWire::OpenAi => json!({
            "object": "list",
            "data": vectors.iter().enumerate().map(|(i, v)| json!({
                "object": "embedding", "index": i, "embedding": v,
            })).collect::<Vec<_>>(),
            "model": model,
            "usage": { "prompt_tokens": texts.len(), "total_tokens": texts.len() },
        }),
        EmbedWire::Ollama => json!({ "model": model, "embeddings": vectors }),
        EmbedWire::GeminiBatch => json!({
            "embeddings": vectors.iter().map(|v| json!({ "values": v })).collect::<Vec<_>>(),
        }),
        EmbedWire::GeminiSingle => json!({ "embedding": { "values": vectors[0] } }),
    };
    axum::Json(answer).into_response()
}

/// The texts of a request, or what is wrong with it.
fn inputs(embed_wire: EmbedWire, path: &str, body: &Value) -> Result<Vec<String>, String> {
    match embed_wire {
        EmbedWire::OpenAi | EmbedWire::Ollama => {
            let model = body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if model.is_empty() {
                return Err("`model` is missing or empty".into());
            }
            if embed_wire == EmbedWire::OpenAi
                && let Some(format) = body.get("encoding_format")
                && format != "float"
                && format != "base64"
            {
                return Err(format!("`encoding_format` is {format}"));
            }
            let texts = match body.get("input") {
                Some(Value::String(text)) => vec![text.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .ok_or("`input` holds a non-string")
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err("`input` must be a string or an array of strings".into()),
            };
            check_texts(texts)
        }
        EmbedWire::GeminiBatch => {
            let model = path
                .rsplit('/')
                .next()
                .and_then(|action| action.split_once(':'))
                .map(|(m, _)| format!("models/{m}"))
                .unwrap_or_default();
            let requests = body
                .get("requests")
                .and_then(Value::as_array)
                .ok_or("`requests` must be an array")?;
            let mut texts = Vec::new();
            for request in requests {
                if request.get("model").and_then(Value::as_str) != Some(model.as_str()) {
                    return Err(format!("each request's `model` must be {model:?}"));
                }
                texts.push(gemini_text(request)?);
            }
            check_texts(texts)
        }
        EmbedWire::GeminiSingle => check_texts(vec![gemini_text(body)?]),
    }
}

fn gemini_text(request: &Value) -> Result<String, String> {
    if let Some(task) = request.get("taskType").and_then(Value::as_str) {
        const TASKS: &[&str] = &[
            "TASK_TYPE_UNSPECIFIED",
            "RETRIEVAL_QUERY",
            "RETRIEVAL_DOCUMENT",
            "SEMANTIC_SIMILARITY",
            "CLASSIFICATION",
            "CLUSTERING",
            "QUESTION_ANSWERING",
            "FACT_VERIFICATION",
            "CODE_RETRIEVAL_QUERY",
        ];
        if !TASKS.contains(&task) {
            return Err(format!("unknown taskType {task:?}"));
        }
    }
    let parts = request
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .ok_or("`content.parts` must be an array")?;
    Ok(parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect())
}

fn check_texts(texts: Vec<String>) -> Result<Vec<String>, String> {
    if texts.is_empty() {
        return Err("no input to embed".into());
    }
    if texts.iter().any(|t| t.is_empty()) {
        return Err("an input is empty".into());
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn synonyms_are_close_and_unrelated_words_are_not() {
        let car = embedding("car");
        assert!((cosine(&car, &embedding("Automobile")) - 1.0).abs() < 1e-6);
        assert!(cosine(&car, &embedding("invoice")) < 0.5);
        assert_eq!(embedding("the car"), embedding("the car"));
        assert_eq!(embedding("").iter().sum::<f32>(), 0.0);
    }

    #[test]
    fn paths_name_their_wire() {
        assert_eq!(
            EmbedWire::from_path("/v1/embeddings"),
            Some(EmbedWire::OpenAi)
        );
        assert_eq!(EmbedWire::from_path("/api/embed"), Some(EmbedWire::Ollama));
        assert_eq!(
            EmbedWire::from_path("/v1beta/models/e:batchEmbedContents"),
            Some(EmbedWire::GeminiBatch)
        );
        assert_eq!(EmbedWire::from_path("/v1/chat/completions"), None);
    }
}
