//! Sending a turn's events to its caller: one rule for the turn and for the
//! work it hands out (client requests).

use openheim_proto::agent_loop::v1::{TurnEvent, turn_event::Event};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where a turn's events go, and the turn's cancellation: a caller that
/// stopped listening cancels the turn.
#[derive(Clone, Copy)]
pub(crate) struct EventSink<'a> {
    pub events: &'a mpsc::Sender<TurnEvent>,
    pub cancel: &'a CancellationToken,
}

impl EventSink<'_> {
    /// Sends an event; a caller that stopped listening cancels the turn.
    pub(crate) async fn emit(self, event: Event) {
        let event = TurnEvent { event: Some(event) };
        if self.events.send(event).await.is_err() {
            self.cancel.cancel();
        }
    }
}
