//! The proxy's domain logic, free of gRPC: resolving the model, streaming a
//! provider's answer as `CompletionEvent`s, retrying and falling back.
//!
//! Event protocol of one completion (see `llm_proxy.proto`):
//! - every attempt starts with `ModelSelected`;
//! - a retryable failure before any output gives `Retrying{attempt, delay}`,
//!   then a wait, then a new attempt (`attempt` = retries so far, from 1);
//! - a failure after output gives `Interrupted{will_retry}`; the caller drops
//!   what it received since the last `ModelSelected`;
//! - once the target's retries are exhausted (or at once when it is
//!   overloaded), the provider's `fallbacks` are tried in order, each with
//!   its own provider's retry policy;
//! - a target that failed over to a fallback cools down (`cooldown_secs` of
//!   its provider): until then, later completions start at the next target
//!   of the chain (the last one is always tried);
//! - the stream ends with exactly one `Finished` or `Error`;
//! - the whole completion has a deadline (`total_timeout`): no retry or
//!   fallback starts that would end after it, and an attempt still running
//!   at the deadline ends the stream with a `Timeout` error.
//!
//! Cancellation: each completion runs in its own task that writes to a
//! bounded channel. When the receiver is dropped (the gRPC client went away)
//! the task stops at once, even mid-wait, and dropping it drops the provider
//! stream, which aborts the upstream HTTP request.

use std::collections::BTreeMap;
use std::sync::Arc;

use openheim_config::Thinking;
use std::time::Duration;

use futures::StreamExt;
use openheim_config::ProviderKind;
use openheim_proto::common::v1::StopReason;
use openheim_proto::llm_proxy::v1::completion_event::Event;
use openheim_proto::llm_proxy::v1::{
    CompleteRequest, CompletionEvent, Finished, Interrupted, ListModelsResponse, ModelSelected,
    ResolveModelResponse, Retrying, ThinkingDelta, ToolCallDelta,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::custom::Registered;
use crate::error::LlmError;
use crate::http_clients::HttpClients;
use crate::provider::{self, Conversation, ProviderClient, ProviderEvent, ProviderRequest};
use crate::resolve::{self, Target};
use crate::retry::RetryPolicy;
use crate::telemetry::{self, Attempt};
use crate::{CustomProviders, LlmProxyConfig};

/// Events buffered between a completion's task and its response stream: enough
/// to absorb bursts, small enough that a slow reader slows the provider read.
pub const EVENT_CHANNEL_CAPACITY: usize = 64;

/// The llm-proxy service: providers are built once and shared by every call.
pub struct Proxy {
    config: LlmProxyConfig,
    providers: BTreeMap<String, ProviderEntry>,
    /// Targets that failed over to a fallback, and until when later calls
    /// skip them (their provider's `cooldown_secs`).
    cooldowns: Cooldowns,
}

struct ProviderEntry {
    /// A provider whose settings are unusable keeps its error, reported to
    /// each request that selects it, so one bad entry does not stop the rest.
    client: Result<Arc<dyn ProviderClient>, LlmError>,
    policy: RetryPolicy,
    context_window: u64,
    cooldown: Duration,
}

/// Models cooling down after a failure their fallback took over from; as
/// LiteLLM's router does, later calls go straight to the fallback instead
/// of paying the failing model's retries again on every call of a turn.
#[derive(Default)]
struct Cooldowns(std::sync::Mutex<BTreeMap<(String, String), Instant>>);

impl Cooldowns {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Instant>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start(&self, target: &Target, period: Duration) {
        if period.is_zero() {
            return;
        }
        let key = (target.provider.clone(), target.model.clone());
        self.lock().insert(key, Instant::now() + period);
    }

    /// Whether `target` is still cooling down; forgets expired entries.
    fn active(&self, target: &Target) -> bool {
        let now = Instant::now();
        let mut cooling = self.lock();
        cooling.retain(|_, until| *until > now);
        cooling.contains_key(&(target.provider.clone(), target.model.clone()))
    }
}

/// The caller dropped the stream; stop working.
struct Gone;

/// When one completion must be over.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    fn starting_now(total: Duration) -> Self {
        Self {
            at: Instant::now() + total,
            total,
        }
    }

    /// Whether something that takes `wait` and then more work can still
    /// start.
    fn allows(&self, wait: Duration) -> bool {
        Instant::now() + wait < self.at
    }

    fn error(&self, provider: &str) -> LlmError {
        LlmError::Deadline {
            provider: provider.to_owned(),
            after: self.total,
        }
    }
}

enum Outcome {
    Finished,
    Failed(LlmError),
}

type Events = mpsc::Sender<CompletionEvent>;

impl Proxy {
    /// Builds every configured provider on the shared HTTP `client`, and
    /// puts the `custom` implementations under the same policy. A custom
    /// provider needs no entry in `config.providers` (one gives it its
    /// policy settings: models, context window, retries, fallbacks); its
    /// entry is marked `kind = "custom"` and replaces a built-in provider
    /// of the same name.
    pub fn new(
        mut config: LlmProxyConfig,
        clients: &HttpClients,
        custom: &CustomProviders,
    ) -> Self {
        for name in custom.keys() {
            let settings = config.providers.entry(name.clone()).or_default();
            settings.kind = Some(ProviderKind::Custom);
        }
        let providers = config
            .providers
            .iter()
            .map(|(name, settings)| {
                let client = match custom.get(name) {
                    Some(implementation) => {
                        let registered =
                            Registered::new(name, Arc::clone(implementation), settings);
                        Ok(Arc::new(registered) as Arc<dyn ProviderClient>)
                    }
                    None => provider::build(name, settings, clients),
                };
                if let Err(error) = &client {
                    tracing::warn!(provider = %name, %error, "provider unusable");
                }
                (name.clone(), entry(client, settings))
            })
            .collect();
        Self {
            config,
            providers,
            cooldowns: Cooldowns::default(),
        }
    }

    /// Uses the given provider implementations (custom providers, test
    /// fakes) instead of building them from the config. Each must still be
    /// listed in `config.providers`, which drives model resolution, retry
    /// policies and context windows.
    pub fn with_providers(
        config: LlmProxyConfig,
        providers: BTreeMap<String, Arc<dyn ProviderClient>>,
    ) -> Self {
        let providers = providers
            .into_iter()
            .map(|(name, client)| {
                let settings = config.providers.get(&name).cloned().unwrap_or_default();
                (name, entry(Ok(client), &settings))
            })
            .collect();
        Self {
            config,
            providers,
            cooldowns: Cooldowns::default(),
        }
    }

    /// The configured providers and models, never their keys.
    pub fn list_models(&self) -> ListModelsResponse {
        resolve::list_models(&self.config)
    }

    /// Which target a completion of `model` would call first, and its
    /// limits; calls nothing.
    pub fn resolve_model(&self, model: &str) -> Result<ResolveModelResponse, LlmError> {
        resolve::resolve_model(&self.config, model)
    }

    /// Starts a completion; its events arrive on the returned receiver.
    /// Dropping the receiver cancels the completion.
    pub fn complete(self: &Arc<Self>, request: CompleteRequest) -> mpsc::Receiver<CompletionEvent> {
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let proxy = Arc::clone(self);
        let completion = async move {
            tokio::select! {
                // Also ends a wait on a silent provider or a backoff sleep.
                () = tx.closed() => tracing::debug!("caller went away; completion cancelled"),
                () = proxy.run(request, &tx) => {}
            }
        };
        // In the caller's span (the gRPC call): the attempts' spans go under it.
        tokio::spawn(tracing::Instrument::in_current_span(completion));
        rx
    }

    async fn run(&self, request: CompleteRequest, tx: &Events) {
        let requested = request.model.clone();
        let conversation = Arc::new(conversation(request));
        let deadline = Deadline::starting_now(self.config.total_timeout);
        let chain = match self.chain(&requested) {
            Ok(chain) => chain,
            Err(error) => {
                tracing::warn!(model = %requested, %error, "cannot resolve model");
                let _ = send(tx, Event::Error(error.to_wire("", &requested))).await;
                return;
            }
        };
        for (position, target) in chain.iter().enumerate() {
            let has_fallback = position + 1 < chain.len();
            // The last target is always tried: a cooldown only saves time
            // when something else can answer.
            if has_fallback && self.cooldowns.active(target) {
                tracing::debug!(provider = %target.provider, model = %target.model, "cooling down; skipped");
                continue;
            }
            let outcome = self
                .run_target(
                    target,
                    position > 0,
                    has_fallback,
                    &conversation,
                    deadline,
                    tx,
                )
                .await;
            match outcome {
                Ok(Outcome::Finished) | Err(Gone) => return,
                Ok(Outcome::Failed(error))
                    if error.is_retryable() && has_fallback && deadline.allows(Duration::ZERO) =>
                {
                    tracing::warn!(provider = %target.provider, model = %target.model, %error, "falling back");
                    if let Some(entry) = self.providers.get(&target.provider) {
                        self.cooldowns.start(target, entry.cooldown);
                    }
                }
                Ok(Outcome::Failed(error)) => {
                    let wire = error.to_wire(&target.provider, &target.model);
                    let _ = send(tx, Event::Error(wire)).await;
                    return;
                }
            }
        }
    }

    /// The resolved target followed by its provider's fallbacks.
    fn chain(&self, requested: &str) -> Result<Vec<Target>, LlmError> {
        let primary = resolve::resolve(&self.config, requested)?;
        let fallbacks = self
            .config
            .providers
            .get(&primary.provider)
            .map(|p| p.fallbacks.as_slice())
            .unwrap_or_default();
        let mut chain = vec![primary];
        for entry in fallbacks {
            // The config loader rejects bad entries; a config built in code
            // may still have one, which is skipped rather than fatal.
            match resolve::resolve_fallback(&self.config, entry) {
                Ok(target) if !chain.contains(&target) => chain.push(target),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "ignoring fallback"),
            }
        }
        Ok(chain)
    }

    /// One attempt against `target` in its own `chat` span; its result and
    /// whether output reached the caller.
    async fn traced_attempt(
        &self,
        provider: &dyn ProviderClient,
        target: &Target,
        conversation: &Arc<Conversation>,
        deadline: Deadline,
        tx: &Events,
    ) -> Result<(Result<StopReason, LlmError>, bool), Gone> {
        let kind = self.config.providers.get(&target.provider);
        let traced = Attempt::start(target, kind.map(|p| p.kind_for(&target.provider)));
        let pricing = &self.config.pricing;
        let call = attempt(
            provider,
            target,
            conversation,
            deadline,
            tx,
            &traced,
            pricing,
        );
        let (result, sent_output) =
            tracing::Instrument::instrument(call, traced.span().clone()).await?;
        traced.finish(&result);
        Ok((result, sent_output))
    }

    /// `conversation` as `target` may see it: images replaced with a note
    /// for a model without vision.
    fn as_seen_by(&self, target: &Target, conversation: &Arc<Conversation>) -> Arc<Conversation> {
        let sees_images = self
            .config
            .providers
            .get(&target.provider)
            .is_none_or(|p| p.vision_for(&target.provider, &target.model));
        crate::vision::for_model(conversation, sees_images, &target.model)
    }

    /// Runs attempts against one target until it answers, fails for good or
    /// runs out of retries.
    async fn run_target(
        &self,
        target: &Target,
        is_fallback: bool,
        has_fallback: bool,
        conversation: &Arc<Conversation>,
        deadline: Deadline,
        tx: &Events,
    ) -> Result<Outcome, Gone> {
        let Some(entry) = self.providers.get(&target.provider) else {
            let error = LlmError::config(format!("provider {} is not configured", target.provider));
            return Ok(Outcome::Failed(error));
        };
        let provider = match &entry.client {
            Ok(provider) => provider,
            Err(error) => return Ok(Outcome::Failed(error.clone())),
        };
        let conversation = &self.as_seen_by(target, conversation);
        let mut retries = 0;
        loop {
            let selected = ModelSelected {
                provider: target.provider.clone(),
                model: target.model.clone(),
                context_window: entry.context_window,
                is_fallback,
            };
            send(tx, Event::ModelSelected(selected)).await?;
            let (result, sent_output) = self
                .traced_attempt(provider.as_ref(), target, conversation, deadline, tx)
                .await?;
            let error = match result {
                Ok(stop_reason) => {
                    let finished = Finished {
                        stop_reason: stop_reason.into(),
                    };
                    send(tx, Event::Finished(finished)).await?;
                    return Ok(Outcome::Finished);
                }
                Err(error) => error,
            };
            let failure = Failure {
                error: &error,
                target,
                sent_output,
                has_fallback,
                deadline,
            };
            match failure.report(&entry.policy, retries, tx).await? {
                Some(delay) => {
                    retries += 1;
                    tokio::time::sleep(delay).await;
                }
                None => return Ok(Outcome::Failed(error)),
            }
        }
    }
}

/// The conversation of a request, as providers take it.
fn conversation(request: CompleteRequest) -> Conversation {
    let CompleteRequest {
        model: _,
        system_prompt,
        messages,
        tools,
        max_tokens,
        temperature,
        thinking,
    } = request;
    Conversation {
        system_prompt,
        messages,
        tools,
        max_tokens,
        temperature,
        thinking: thinking.and_then(thinking_from_wire),
    }
}

/// A failed attempt, and what the caller has seen of it.
struct Failure<'a> {
    error: &'a LlmError,
    target: &'a Target,
    sent_output: bool,
    has_fallback: bool,
    deadline: Deadline,
}

impl Failure<'_> {
    /// Decides whether to retry the same target after `retries` retries,
    /// tells the caller (`Interrupted` after output, `Retrying` before), and
    /// returns how long to wait when a retry follows.
    async fn report(
        &self,
        policy: &RetryPolicy,
        retries: u32,
        tx: &Events,
    ) -> Result<Option<Duration>, Gone> {
        let error = self.error;
        let (provider, model) = (&self.target.provider, &self.target.model);
        let attempt = retries + 1;
        let delay = policy.delay_for(attempt, error.retry_after());
        // An overloaded provider is left for a fallback rather than retried,
        // and nothing starts that could not finish before the deadline.
        let retry_here = error.is_retryable()
            && retries < policy.max_retries
            && !(error.is_overload() && self.has_fallback)
            && self.deadline.allows(delay);
        let fall_back =
            error.is_retryable() && self.has_fallback && self.deadline.allows(Duration::ZERO);
        if self.sent_output {
            let interrupted = Interrupted {
                error: Some(error.to_wire(provider, model)),
                will_retry: retry_here || fall_back,
            };
            send(tx, Event::Interrupted(interrupted)).await?;
        }
        if !retry_here {
            return Ok(None);
        }
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(%provider, %model, %error, retry = attempt, delay_ms, "retrying");
        telemetry::retried(self.target, error);
        if !self.sent_output {
            let retrying = Retrying {
                error: Some(error.to_wire(provider, model)),
                attempt,
                delay_ms,
            };
            send(tx, Event::Retrying(retrying)).await?;
        }
        Ok(Some(delay))
    }
}

fn entry(
    client: Result<Arc<dyn ProviderClient>, LlmError>,
    settings: &openheim_config::ProviderConfig,
) -> ProviderEntry {
    ProviderEntry {
        client,
        policy: RetryPolicy::from_provider(settings),
        context_window: settings.context_window.unwrap_or(0),
        cooldown: Duration::from_secs(settings.cooldown_secs),
    }
}

/// One call to the provider, forwarding its events (and reporting usage to
/// `traced`). Returns how it ended and whether any output reached the
/// caller.
async fn attempt(
    provider: &dyn ProviderClient,
    target: &Target,
    conversation: &Arc<Conversation>,
    deadline: Deadline,
    tx: &Events,
    traced: &Attempt,
    pricing: &openheim_config::Pricing,
) -> Result<(Result<StopReason, LlmError>, bool), Gone> {
    let mut stream = provider.stream(ProviderRequest {
        model: target.model.clone(),
        conversation: Arc::clone(conversation),
    });
    let mut sent_output = false;
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline.at, stream.next()).await else {
            return Ok((Err(deadline.error(&target.provider)), sent_output));
        };
        let Some(item) = next else { break };
        match item {
            Ok(ProviderEvent::Finished(stop_reason)) => return Ok((Ok(stop_reason), sent_output)),
            Ok(ProviderEvent::Usage(mut usage)) => {
                usage.cost_pico_usd = pricing.cost_pico_usd(
                    &target.provider,
                    &target.model,
                    openheim_config::Tokens {
                        input: usage.input_tokens,
                        output: usage.output_tokens,
                        cache_read: usage.cache_read_tokens,
                        cache_write: usage.cache_write_tokens,
                    },
                );
                traced.usage(&usage);
                send(tx, Event::Usage(usage)).await?;
                sent_output = true;
            }
            Ok(event) => {
                send(tx, wire_event(event)).await?;
                sent_output = true;
            }
            Err(error) => return Ok((Err(error), sent_output)),
        }
    }
    // Providers report an early end themselves; this guards against one that does not.
    let error = LlmError::Network {
        provider: target.provider.clone(),
        message: "stream ended early, before the answer was complete".into(),
    };
    Ok((Err(error), sent_output))
}

fn wire_event(event: ProviderEvent) -> Event {
    match event {
        ProviderEvent::TextDelta(text) => Event::TextDelta(text),
        ProviderEvent::ThinkingDelta { text, signature } => Event::ThinkingDelta(ThinkingDelta {
            text,
            signature,
            ..ThinkingDelta::default()
        }),
        ProviderEvent::ThinkingBlock { redacted } => Event::ThinkingDelta(ThinkingDelta {
            text: String::new(),
            new_block: true,
            redacted: redacted.is_some(),
            signature: redacted.unwrap_or_default(),
        }),
        ProviderEvent::ToolCallDelta {
            index,
            id,
            name,
            arguments_fragment,
        } => Event::ToolCallDelta(ToolCallDelta {
            index,
            id,
            name,
            arguments_fragment,
        }),
        ProviderEvent::Usage(usage) => Event::Usage(usage),
        ProviderEvent::Finished(stop_reason) => Event::Finished(Finished {
            stop_reason: stop_reason.into(),
        }),
    }
}

async fn send(tx: &Events, event: Event) -> Result<(), Gone> {
    tx.send(CompletionEvent { event: Some(event) })
        .await
        .map_err(|_| Gone)
}

mod embed;

#[cfg(test)]
mod tests;

/// A request's reasoning setting; `UNSPECIFIED` (and an unknown level) =
/// as configured.
fn thinking_from_wire(setting: openheim_proto::llm_proxy::v1::ThinkingSetting) -> Option<Thinking> {
    use openheim_proto::llm_proxy::v1::ThinkingLevel as L;
    match setting.level() {
        L::Unspecified => None,
        L::Off => Some(Thinking::Off),
        L::Low => Some(Thinking::Low),
        L::Medium => Some(Thinking::Medium),
        L::High => Some(Thinking::High),
        L::Budget => Some(Thinking::Budget(
            setting
                .budget_tokens
                .max(openheim_config::MIN_THINKING_BUDGET),
        )),
    }
}
