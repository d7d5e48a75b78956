//! The session's task plan (`update_plan`) as a checklist in the
//! transcript: a dim heading, then one line per step.

use openheim_proto::agent_loop::v1::Plan;
use openheim_proto::plan::{checklist, summary};

use super::render::TurnView;

/// Writes `plan` into the transcript.
pub fn show(view: &mut TurnView, plan: &Plan, out: &mut String) {
    view.info(&format!("plan: {}", summary(plan)), out);
    for line in checklist(plan) {
        view.info(&format!("  {line}"), out);
    }
}
