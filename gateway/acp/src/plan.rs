//! The session's task plan (`update_plan`) as ACP `plan` updates: live
//! from the turn's `plan` events, replayed with `session/load` where each
//! accepted call was, and the latest one with `session/resume`.

use agent_client_protocol::v1::schema::{
    Plan, PlanEntry, PlanEntryPriority, PlanEntryStatus, SessionUpdate,
};
use openheim_proto::agent_loop::v1::{self as wire, PlanPriority, PlanStatus};
use openheim_proto::common::v1::{Message, content_block::Block};
use openheim_proto::plan::{self, UPDATE_PLAN};

/// The `plan` update of a plan: every entry (ACP replaces the whole plan).
pub fn update(plan: &wire::Plan) -> SessionUpdate {
    let entries = plan
        .entries
        .iter()
        .map(|e| {
            PlanEntry::new(
                e.content.clone(),
                priority(e.priority()),
                status(e.status()),
            )
        })
        .collect();
    SessionUpdate::Plan(Plan::new(entries))
}

fn priority(priority: PlanPriority) -> PlanEntryPriority {
    match priority {
        PlanPriority::High => PlanEntryPriority::High,
        PlanPriority::Low => PlanEntryPriority::Low,
        PlanPriority::Medium | PlanPriority::Unspecified => PlanEntryPriority::Medium,
    }
}

fn status(status: PlanStatus) -> PlanEntryStatus {
    match status {
        PlanStatus::InProgress => PlanEntryStatus::InProgress,
        PlanStatus::Completed => PlanEntryStatus::Completed,
        PlanStatus::Pending | PlanStatus::Unspecified => PlanEntryStatus::Pending,
    }
}

/// The plan a replayed block set, if it is an accepted `update_plan` call.
pub fn replayed(block: &Block) -> Option<SessionUpdate> {
    match block {
        Block::ToolCall(call) if call.name == UPDATE_PLAN => {
            plan::parse(&call.arguments_json).ok().map(|p| update(&p))
        }
        _ => None,
    }
}

/// The plan a stored history ends with, as an update.
pub fn latest(messages: &[Message]) -> Option<SessionUpdate> {
    plan::latest(messages).map(|p| update(&p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openheim_proto::common::v1::ToolCall;

    #[test]
    fn a_stored_call_replays_as_the_plan_it_set() {
        let block = Block::ToolCall(ToolCall {
            id: "p1".into(),
            name: UPDATE_PLAN.into(),
            arguments_json:
                r#"{"entries":[{"content":"a","status":"in_progress","priority":"high"}]}"#.into(),
        });
        let Some(SessionUpdate::Plan(plan)) = replayed(&block) else {
            panic!("no plan");
        };
        assert_eq!(plan.entries.len(), 1);
        assert_eq!(plan.entries[0].status, PlanEntryStatus::InProgress);
        assert_eq!(plan.entries[0].priority, PlanEntryPriority::High);
        assert!(replayed(&Block::Text("x".into())).is_none());
    }
}
