//! llm-proxy's `Embed` against the mock in each embeddings API openheim
//! speaks (OpenAI and compatible `/embeddings`, Gemini `batchEmbedContents`,
//! Ollama `/api/embed`), with keys where they belong, the purpose reaching
//! Gemini as its task type, retries on provider trouble and typed failures.

use openheim::Runtime;
use openheim_e2e::MockLlm;
use openheim_e2e::mock_llm::embed::{DIMENSION, embedding};
use openheim_proto::llm_proxy::v1::llm_proxy_client::LlmProxyClient;
use openheim_proto::llm_proxy::v1::{EmbedPurpose, EmbedRequest, EmbedResponse};
use serde_json::json;
use tonic::Code;

const KEY: &str = "sk-embeddings-key";

/// An in-process llm-proxy whose providers are `providers` (TOML tables).
fn proxy(providers: &str) -> (Runtime, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, providers).unwrap();
    let mut config = openheim_config::load(&openheim_config::LoadOptions {
        file: Some(file),
        file_required: true,
        ..Default::default()
    })
    .unwrap();
    config.work_dir = Some(dir.path().to_path_buf());
    config.data_dir = Some(dir.path().to_path_buf());
    (Runtime::start(&config).unwrap(), dir)
}

async fn embed(
    runtime: &Runtime,
    model: &str,
    inputs: &[&str],
    purpose: EmbedPurpose,
) -> Result<EmbedResponse, tonic::Status> {
    let mut client = LlmProxyClient::new(runtime.llm_proxy_channel().unwrap());
    let request = EmbedRequest {
        model: model.into(),
        inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
        purpose: purpose as i32,
    };
    client.embed(request).await.map(tonic::Response::into_inner)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_embeddings_come_back_in_order_with_the_key() {
    let mock = MockLlm::builder().expect_api_key(KEY).start(vec![]).await;
    let (runtime, _dir) = proxy(&format!(
        "[providers.oai]\nkind = \"openai\"\napi_base = \"{}\"\napi_key = \"{KEY}\"\n",
        mock.base_url()
    ));
    let inputs = ["car", "invoice", "automobile"];
    let answer = embed(
        &runtime,
        "oai/text-embedding-3-small",
        &inputs,
        EmbedPurpose::Document,
    )
    .await
    .unwrap();
    assert_eq!(
        (answer.provider.as_str(), answer.model.as_str()),
        ("oai", "text-embedding-3-small")
    );
    assert_eq!(answer.embeddings.len(), 3);
    for (input, vector) in inputs.iter().zip(&answer.embeddings) {
        assert_eq!(vector.values, embedding(input), "{input}");
        assert_eq!(vector.values.len(), DIMENSION);
    }
    let v = &answer.embeddings;
    assert!(cosine(&v[0].values, &v[2].values) > 0.99);
    let request = &mock.embedding_requests()[0];
    assert_eq!(request.path, "/v1/embeddings");
    assert_eq!(request.body["model"], "text-embedding-3-small");
    assert_eq!(request.body["input"], json!(inputs));
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        mock.request_count(),
        0,
        "an embedding consumed a completion"
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_embeddings_carry_the_task_type_and_the_key_header() {
    let mock = MockLlm::builder().expect_api_key(KEY).start(vec![]).await;
    let (runtime, _dir) = proxy(&format!(
        "[providers.g]\nkind = \"gemini\"\napi_base = \"{}\"\napi_key = \"{KEY}\"\n",
        mock.gemini_base_url()
    ));
    let answer = embed(
        &runtime,
        "g/gemini-embedding-001",
        &["quick", "fast"],
        EmbedPurpose::Query,
    )
    .await
    .unwrap();
    assert_eq!(answer.embeddings[0].values, answer.embeddings[1].values);
    let request = &mock.embedding_requests()[0];
    assert_eq!(
        request.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(request.header("x-goog-api-key"), Some(KEY));
    assert_eq!(request.body["requests"][0]["taskType"], "RETRIEVAL_QUERY");
    assert_eq!(
        request.body["requests"][1]["model"],
        "models/gemini-embedding-001"
    );
    assert!(request.query.is_none(), "the key went into the URL");
    embed(
        &runtime,
        "g/gemini-embedding-001",
        &["doc"],
        EmbedPurpose::Document,
    )
    .await
    .unwrap();
    let request = &mock.embedding_requests()[1];
    assert_eq!(
        request.body["requests"][0]["taskType"],
        "RETRIEVAL_DOCUMENT"
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_embeddings_use_its_own_api_next_to_the_v1_base() {
    let mock = MockLlm::start(vec![]).await;
    let (runtime, _dir) = proxy(&format!(
        "[providers.ollama]\nkind = \"openai_compatible\"\napi_base = \"{}\"\nembeddings_api = \"ollama\"\n",
        mock.base_url()
    ));
    let answer = embed(
        &runtime,
        "ollama/nomic-embed-text",
        &["ship it"],
        EmbedPurpose::Document,
    )
    .await
    .unwrap();
    assert_eq!(answer.embeddings[0].values, embedding("ship it"));
    let request = &mock.embedding_requests()[0];
    assert_eq!(request.path, "/api/embed");
    assert_eq!(
        request.body,
        json!({"model": "nomic-embed-text", "input": ["ship it"]})
    );
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed_retried_when_worth_it_and_never_leak_the_key() {
    let mock = MockLlm::builder().expect_api_key(KEY).start(vec![]).await;
    let (runtime, _dir) = proxy(&format!(
        "[providers.oai]\nkind = \"openai\"\napi_base = \"{base}\"\napi_key = \"{KEY}\"\n\
         max_retries = 2\nretry_base_delay_ms = 1\nretry_max_delay_ms = 5\n\n\
         [providers.wrong]\nkind = \"openai\"\napi_base = \"{base}\"\napi_key = \"sk-wrong\"\nmax_retries = 2\n\n\
         [providers.claude]\nkind = \"anthropic\"\napi_base = \"{base}\"\napi_key = \"{KEY}\"\n",
        base = mock.base_url()
    ));
    mock.fail_embeddings(Some(503));
    let error = embed(&runtime, "oai/e", &["x"], EmbedPurpose::Document)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert_eq!(
        mock.embedding_requests().len(),
        3,
        "one try and two retries"
    );
    mock.fail_embeddings(None);

    let error = embed(&runtime, "wrong/e", &["x"], EmbedPurpose::Document)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated, "{error:?}");
    assert!(!error.message().contains("sk-wrong"), "{error:?}");
    assert_eq!(
        mock.embedding_requests().len(),
        4,
        "a refused key is not retried"
    );

    let error = embed(&runtime, "claude/x", &["x"], EmbedPurpose::Document)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert!(
        error.message().contains("claude") && error.message().contains("no embeddings API"),
        "{error:?}"
    );

    let error = embed(&runtime, "oai/e", &[], EmbedPurpose::Document)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    assert_eq!(mock.embedding_requests().len(), 4);
}
