//! Spans and metrics of the completion path, named by the OpenTelemetry
//! GenAI semantic conventions.
//!
//! - span `chat {model}` per provider attempt (client kind): provider, the
//!   requested and the serving model, token usage, finish or error;
//! - `gen_ai.client.operation.duration` (s), per attempt;
//! - `gen_ai.client.token.usage` ({token}), per attempt and token type;
//! - `openheim.llm.retries`, the retries of the retry path.
//!
//! Attributes name providers, models, counts and error kinds, never a key
//! or the conversation. The instruments come from the global meter provider:
//! no-ops unless `openheim-boot` installed an exporter.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use openheim_config::ProviderKind;
use openheim_proto::common::v1::{StopReason, Usage};
use openheim_proto::trace::finish_reason;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use tracing::Span;
use tracing::field::Empty;

use crate::error::LlmError;
use crate::resolve::Target;

struct Instruments {
    duration: Histogram<f64>,
    tokens: Histogram<u64>,
    retries: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("openheim-llm-proxy");
        Instruments {
            duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("Duration of one call to an LLM provider")
                .build(),
            tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Tokens used per LLM call, by gen_ai.token.type")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            retries: meter
                .u64_counter("openheim.llm.retries")
                .with_unit("{retry}")
                .with_description("LLM calls retried after a retryable failure")
                .build(),
        }
    })
}

/// The GenAI convention's buckets for token counts.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// `gen_ai.provider.name` of a provider kind: the convention's well-known
/// values where one exists; `None` for a custom provider, which is named by
/// its own name.
fn provider_name(kind: Option<ProviderKind>) -> Option<&'static str> {
    match kind {
        Some(ProviderKind::Openai) => Some("openai"),
        Some(ProviderKind::Anthropic) => Some("anthropic"),
        Some(ProviderKind::Gemini) => Some("gcp.gemini"),
        Some(ProviderKind::OpenaiCompatible) | None => Some("openai_compatible"),
        Some(ProviderKind::Custom) => None,
    }
}

/// `error.type` of a failed call: the error's kind, e.g. `rate_limited`.
fn error_type(error: &LlmError) -> String {
    let name = error.kind().as_str_name();
    name.strip_prefix("ERROR_KIND_")
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// One attempt against a provider, traced: its span, its clock and the
/// usage it reported. Dropping it unfinished (the caller went away) ends it
/// as cancelled.
pub(crate) struct Attempt {
    span: Span,
    start: Instant,
    attributes: Vec<KeyValue>,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    finished: bool,
}

impl Attempt {
    /// Starts the attempt of `target`, a provider of `kind`.
    pub(crate) fn start(target: &Target, kind: Option<ProviderKind>) -> Self {
        let well_known = provider_name(kind);
        let provider = well_known.unwrap_or(&target.provider);
        let span = tracing::info_span!(
            "llm_request",
            otel.name = %format_args!("chat {}", target.model),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = provider,
            gen_ai.system = provider,
            gen_ai.request.model = target.model.as_str(),
            gen_ai.response.model = target.model.as_str(),
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.response.finish_reasons = Empty,
            openheim.provider = target.provider.as_str(),
            error.type = Empty,
        );
        let attributes = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            match well_known {
                Some(name) => KeyValue::new("gen_ai.provider.name", name),
                None => KeyValue::new("gen_ai.provider.name", target.provider.clone()),
            },
            KeyValue::new("gen_ai.request.model", target.model.clone()),
            KeyValue::new("openheim.provider", target.provider.clone()),
        ];
        Self {
            span,
            start: Instant::now(),
            attributes,
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            finished: false,
        }
    }

    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// The provider's usage report (the last one counts).
    pub(crate) fn usage(&self, usage: &Usage) {
        self.input_tokens
            .store(usage.input_tokens, Ordering::Relaxed);
        self.output_tokens
            .store(usage.output_tokens, Ordering::Relaxed);
        // Signed: the OpenTelemetry bridge exports unsigned values as text.
        let int = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
        self.span
            .record("gen_ai.usage.input_tokens", int(usage.input_tokens));
        self.span
            .record("gen_ai.usage.output_tokens", int(usage.output_tokens));
    }

    /// Ends the attempt with its outcome.
    pub(crate) fn finish(mut self, result: &Result<StopReason, LlmError>) {
        self.finished = true;
        let error = match result {
            Ok(stop) => {
                self.span
                    .record("gen_ai.response.finish_reasons", finish_reason(*stop));
                None
            }
            Err(error) => Some(error_type(error)),
        };
        self.end(error);
    }

    fn end(&self, error: Option<String>) {
        let instruments = instruments();
        let mut attributes = self.attributes.clone();
        if let Some(error) = error {
            self.span.record("otel.status_code", "error");
            self.span.record("error.type", error.as_str());
            attributes.push(KeyValue::new("error.type", error));
        }
        instruments
            .duration
            .record(self.start.elapsed().as_secs_f64(), &attributes);
        let (input, output) = (
            self.input_tokens.load(Ordering::Relaxed),
            self.output_tokens.load(Ordering::Relaxed),
        );
        for (kind, count) in [("input", input), ("output", output)] {
            if count > 0 {
                let mut attributes = self.attributes.clone();
                attributes.push(KeyValue::new("gen_ai.token.type", kind));
                instruments.tokens.record(count, &attributes);
            }
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.finished {
            self.end(Some("cancelled".to_owned()));
        }
    }
}

/// A retry of `target` after `error`, about to wait.
pub(crate) fn retried(target: &Target, error: &LlmError) {
    let attributes = [
        KeyValue::new("openheim.provider", target.provider.clone()),
        KeyValue::new("gen_ai.request.model", target.model.clone()),
        KeyValue::new("error.type", error_type(error)),
    ];
    instruments().retries.add(1, &attributes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_short_kind_names() {
        let error = LlmError::config("no key");
        let kind = error_type(&error);
        assert!(!kind.starts_with("error_kind"), "{kind}");
        assert_eq!(kind, kind.to_ascii_lowercase());
    }

    #[test]
    fn provider_names_follow_the_convention() {
        assert_eq!(
            provider_name(Some(ProviderKind::Gemini)),
            Some("gcp.gemini")
        );
        assert_eq!(provider_name(None), Some("openai_compatible"));
        assert_eq!(provider_name(Some(ProviderKind::Custom)), None);
    }
}
