//! The task plan of a session (`update_plan`): how the tool's arguments
//! become a [`Plan`], and which plan a stored history ends with. One place
//! for the rule, used by the agent loop (live turns) and the front ends
//! (replayed and resumed sessions).

use crate::agent_loop::v1::{Plan, PlanEntry, PlanPriority, PlanStatus};
use crate::common::v1::{Message, content_block::Block};

/// The built-in tool that sets the plan.
pub const UPDATE_PLAN: &str = "update_plan";
/// Entries one plan may hold.
pub const MAX_ENTRIES: usize = 50;
/// Characters one entry's content may hold.
pub const MAX_CONTENT_CHARS: usize = 500;

/// Why an `update_plan` call's arguments are not a plan (said to the model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the arguments are not a JSON object with an `entries` list")]
    NoEntries,
    #[error("entry {0} needs a non-empty `content` string")]
    Content(usize),
    #[error("entry {index}: unknown {field} {value:?}")]
    Value {
        index: usize,
        field: &'static str,
        value: String,
    },
    #[error("a plan holds at most {MAX_ENTRIES} entries")]
    TooMany,
}

/// Parses `update_plan` arguments: `{"entries": [{"content", "status"?,
/// "priority"?}]}`; status defaults to pending, priority to medium.
pub fn parse(arguments_json: &str) -> Result<Plan, PlanError> {
    let args: serde_json::Value =
        serde_json::from_str(arguments_json).map_err(|_| PlanError::NoEntries)?;
    let list = args
        .get("entries")
        .and_then(serde_json::Value::as_array)
        .ok_or(PlanError::NoEntries)?;
    if list.len() > MAX_ENTRIES {
        return Err(PlanError::TooMany);
    }
    let entries = list
        .iter()
        .enumerate()
        .map(|(i, item)| entry(i + 1, item))
        .collect::<Result<_, _>>()?;
    Ok(Plan { entries })
}

fn entry(index: usize, item: &serde_json::Value) -> Result<PlanEntry, PlanError> {
    let content = item
        .get("content")
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or(PlanError::Content(index))?;
    let field = |name: &'static str, default: &str| -> String {
        item.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    let status = match field("status", "pending").as_str() {
        "pending" => PlanStatus::Pending,
        "in_progress" => PlanStatus::InProgress,
        "completed" => PlanStatus::Completed,
        other => return Err(value_error(index, "status", other)),
    };
    let priority = match field("priority", "medium").as_str() {
        "high" => PlanPriority::High,
        "medium" => PlanPriority::Medium,
        "low" => PlanPriority::Low,
        other => return Err(value_error(index, "priority", other)),
    };
    Ok(PlanEntry {
        content: content.chars().take(MAX_CONTENT_CHARS).collect(),
        priority: priority as i32,
        status: status as i32,
    })
}

fn value_error(index: usize, field: &'static str, value: &str) -> PlanError {
    PlanError::Value {
        index,
        field,
        value: value.chars().take(40).collect(),
    }
}

/// The plan a history ends with: its last `update_plan` call whose
/// arguments are a plan, or `None` when it never set one.
pub fn latest(messages: &[Message]) -> Option<Plan> {
    messages
        .iter()
        .rev()
        .flat_map(|m| m.content.iter().rev())
        .find_map(|block| match &block.block {
            Some(Block::ToolCall(call)) if call.name == UPDATE_PLAN => {
                parse(&call.arguments_json).ok()
            }
            _ => None,
        })
}

/// The words of a status, as the tool takes them.
pub fn status_name(status: PlanStatus) -> &'static str {
    match status {
        PlanStatus::InProgress => "in_progress",
        PlanStatus::Completed => "completed",
        PlanStatus::Pending | PlanStatus::Unspecified => "pending",
    }
}

/// A one-line summary: "3 steps, 1 done".
pub fn summary(plan: &Plan) -> String {
    let done = plan
        .entries
        .iter()
        .filter(|e| e.status() == PlanStatus::Completed)
        .count();
    format!("{} steps, {done} done", plan.entries.len())
}

/// The plan as a checklist, one line per entry: `[x]` completed, `[>]` in
/// progress, `[ ]` pending; a high-priority entry is marked `(!)`.
pub fn checklist(plan: &Plan) -> Vec<String> {
    plan.entries
        .iter()
        .map(|e| {
            let mark = match e.status() {
                PlanStatus::Completed => "[x]",
                PlanStatus::InProgress => "[>]",
                PlanStatus::Pending | PlanStatus::Unspecified => "[ ]",
            };
            let high = match e.priority() {
                PlanPriority::High => " (!)",
                _ => "",
            };
            format!("{mark} {}{high}", e.content)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::v1::{ContentBlock, Role, ToolCall};

    #[test]
    fn arguments_become_a_plan_with_defaults() {
        let plan = parse(
            r#"{"entries":[{"content":" read ","status":"completed","priority":"high"},{"content":"write"}]}"#,
        )
        .unwrap();
        assert_eq!(plan.entries.len(), 2);
        assert_eq!(plan.entries[0].content, "read");
        assert_eq!(plan.entries[0].status(), PlanStatus::Completed);
        assert_eq!(plan.entries[1].status(), PlanStatus::Pending);
        assert_eq!(plan.entries[1].priority(), PlanPriority::Medium);
        assert_eq!(summary(&plan), "2 steps, 1 done");
        assert_eq!(checklist(&plan), ["[x] read (!)", "[ ] write"]);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert_eq!(parse("[]"), Err(PlanError::NoEntries));
        assert_eq!(
            parse(r#"{"entries":[{"content":""}]}"#),
            Err(PlanError::Content(1))
        );
        assert!(matches!(
            parse(r#"{"entries":[{"content":"a","status":"done"}]}"#),
            Err(PlanError::Value {
                field: "status",
                ..
            })
        ));
        let many = format!(
            r#"{{"entries":[{}]}}"#,
            vec![r#"{"content":"a"}"#; 51].join(",")
        );
        assert_eq!(parse(&many), Err(PlanError::TooMany));
    }

    #[test]
    fn the_latest_valid_call_is_the_plan() {
        let call = |id: &str, args: &str| ContentBlock {
            block: Some(Block::ToolCall(ToolCall {
                id: id.into(),
                name: UPDATE_PLAN.into(),
                arguments_json: args.into(),
            })),
        };
        let messages = vec![Message {
            role: Role::Assistant as i32,
            content: vec![
                call("1", r#"{"entries":[{"content":"one"}]}"#),
                call("2", r#"{"entries":[{"content":"two"}]}"#),
                call("3", "not json"),
            ],
        }];
        assert_eq!(latest(&messages).unwrap().entries[0].content, "two");
        assert_eq!(latest(&[]), None);
    }
}
