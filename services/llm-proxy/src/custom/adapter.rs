//! [`Registered`]: a custom [`LlmProvider`] behind the service's internal
//! [`ProviderClient`] seam, so that the completion policy in `service.rs`
//! drives it like any built-in client.
//!
//! The implementation's future and the stream the service reads are one
//! object ([`Events`]): polling the stream polls the future, which writes
//! into a small bounded channel the stream drains. Nothing is spawned, so
//! dropping the stream (cancellation, the idle timeout, the deadline) drops
//! the implementation's future at once. Per event the adapter moves the
//! strings it was given; it allocates only per attempt.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, Stream};
use openheim_config::ProviderConfig;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::{CompletionRequest, EventSink, FinishReason, LlmProvider, ProviderError};
use crate::error::LlmError;
use crate::provider::{ProviderClient, ProviderEvent, ProviderRequest};

/// Events an implementation may write ahead of the reader.
const SINK_CAPACITY: usize = 16;

/// A custom provider as the service sees it.
pub(crate) struct Registered {
    name: Arc<str>,
    implementation: Arc<dyn LlmProvider>,
    idle_timeout: Duration,
    max_tokens: Option<u32>,
}

impl Registered {
    pub(crate) fn new(
        name: &str,
        implementation: Arc<dyn LlmProvider>,
        settings: &ProviderConfig,
    ) -> Self {
        Self {
            name: Arc::from(name),
            implementation,
            idle_timeout: Duration::from_secs(settings.timeout_secs.max(1)),
            max_tokens: settings.max_tokens,
        }
    }
}

/// The error for a request that selects a `custom` provider that nobody
/// registered: a standalone llm-proxy, the CLI, or a config shared with
/// the embedding application.
pub(crate) fn not_registered(name: &str) -> LlmError {
    LlmError::config(format!(
        "provider {name} is a custom provider (kind = \"custom\") and this llm-proxy has no \
         implementation of it: custom providers are implemented by an application that embeds \
         openheim and are served only by that application's in-process llm-proxy"
    ))
}

type Outcome = Result<Result<FinishReason, ProviderError>, Box<dyn Any + Send>>;

impl ProviderClient for Registered {
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>> {
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let model = request.model.clone();
        let request = CompletionRequest::new(request.model, request.conversation, self.max_tokens);
        let implementation = Arc::clone(&self.implementation);
        let mut sink = EventSink::new(tx, Arc::clone(&self.name));
        let call = async move { implementation.stream(&request, &mut sink).await };
        Box::pin(Events {
            provider: Arc::clone(&self.name),
            model,
            call: Some(Box::pin(AssertUnwindSafe(call).catch_unwind())),
            rx,
            idle: Box::pin(tokio::time::sleep(self.idle_timeout)),
            idle_timeout: self.idle_timeout,
            outcome: None,
            done: false,
        })
    }
}

/// One attempt of a custom provider, as the stream the service reads.
struct Events {
    provider: Arc<str>,
    model: String,
    /// The implementation's call; `None` once it returned (or was dropped).
    call: Option<Pin<Box<dyn Future<Output = Outcome> + Send>>>,
    rx: mpsc::Receiver<Result<ProviderEvent, LlmError>>,
    /// Fires when the implementation has been silent for `idle_timeout`.
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    /// How the call ended, handed out after the events it wrote.
    outcome: Option<Result<ProviderEvent, LlmError>>,
    done: bool,
}

impl Stream for Events {
    type Item = Result<ProviderEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // What the call wrote comes first.
        if let Poll::Ready(Some(item)) = this.rx.poll_recv(cx) {
            return Poll::Ready(Some(this.forward(item)));
        }
        if let Some(call) = this.call.as_mut() {
            match call.as_mut().poll(cx) {
                Poll::Pending => {
                    // It may have written before it paused.
                    if let Poll::Ready(Some(item)) = this.rx.poll_recv(cx) {
                        return Poll::Ready(Some(this.forward(item)));
                    }
                    if this.idle.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(this.end(Err(this.idle_error()))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(outcome) => {
                    this.call = None;
                    this.outcome = Some(this.terminal(outcome));
                }
            }
        }
        // The call returned: the events still queued, then its outcome.
        if let Ok(item) = this.rx.try_recv() {
            return Poll::Ready(Some(this.forward(item)));
        }
        this.done = true;
        Poll::Ready(this.outcome.take())
    }
}

impl Events {
    fn forward(
        &mut self,
        item: Result<ProviderEvent, LlmError>,
    ) -> Result<ProviderEvent, LlmError> {
        match item {
            Ok(event) => {
                let next = Instant::now() + self.idle_timeout;
                self.idle.as_mut().reset(next);
                Ok(event)
            }
            Err(error) => self.end(Err(error)),
        }
    }

    /// Ends the attempt early, dropping the implementation's call.
    fn end(&mut self, item: Result<ProviderEvent, LlmError>) -> Result<ProviderEvent, LlmError> {
        self.done = true;
        self.call = None;
        item
    }

    fn terminal(&self, outcome: Outcome) -> Result<ProviderEvent, LlmError> {
        match outcome {
            Ok(Ok(finish)) => Ok(ProviderEvent::Finished(finish.stop_reason())),
            Ok(Err(error)) => Err(error.into_llm_error(&self.provider, &self.model)),
            Err(panic) => Err(LlmError::Provider {
                provider: self.provider.to_string(),
                status: None,
                message: format!("its implementation panicked: {}", panic_message(&*panic)),
                retryable: false,
                retry_after: None,
            }),
        }
    }

    fn idle_error(&self) -> LlmError {
        LlmError::Timeout {
            provider: self.provider.to_string(),
            status: None,
            message: format!(
                "no data for {} s while waiting for the next event (timeout_secs)",
                self.idle_timeout.as_secs()
            ),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}
