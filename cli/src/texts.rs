//! What the front ends of this crate (`run` and the terminal UI) say about
//! how a turn went, written once so they cannot drift apart.

use openheim_proto::common::v1::StopReason;

/// The line shown when a turn stopped other than with a final answer, or
/// `None` when it just ended. `max_iterations`, when known, is named in the
/// line of a turn that ran out of model calls.
pub(crate) fn stop_line(stop: StopReason, max_iterations: Option<u32>) -> Option<String> {
    Some(match stop {
        StopReason::Cancelled => "cancelled".to_owned(),
        StopReason::MaxTurnRequests => match max_iterations {
            Some(n) => format!("stopped: reached max_iterations ({n}) before a final answer"),
            None => "stopped: reached max_iterations before a final answer".to_owned(),
        },
        StopReason::MaxTokens => "note: the answer was cut at the model's output limit".to_owned(),
        StopReason::Refusal => "note: the model refused to answer".to_owned(),
        StopReason::EndTurn | StopReason::ToolUse | StopReason::Unspecified => return None,
    })
}

/// The notice shown where a reply broke off and is redone from its start
/// (the provider's stream dropped mid-reply and the call was retried).
pub(crate) fn retracted_notice(reason: &str) -> String {
    format!("the reply was interrupted ({reason}); it restarts here")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unusual_stops_have_a_line() {
        assert_eq!(stop_line(StopReason::EndTurn, Some(3)), None);
        assert_eq!(stop_line(StopReason::ToolUse, None), None);
        assert_eq!(
            stop_line(StopReason::MaxTurnRequests, Some(3)).as_deref(),
            Some("stopped: reached max_iterations (3) before a final answer")
        );
        assert_eq!(
            stop_line(StopReason::MaxTurnRequests, None).as_deref(),
            Some("stopped: reached max_iterations before a final answer")
        );
        assert_eq!(
            stop_line(StopReason::Cancelled, None).as_deref(),
            Some("cancelled")
        );
    }
}
