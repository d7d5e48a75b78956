//! The reasoning parameters of each wire format, checked the way the real
//! APIs check them, and Anthropic's rule that the signed thinking block of
//! a reply that called tools comes back, unchanged, in the request that
//! answers those tools (when the request asks for thinking).

use std::collections::HashMap;

use serde_json::Value;

use super::wire::Wire;

const OPENAI_EFFORTS: [&str; 4] = ["minimal", "low", "medium", "high"];
const ANTHROPIC_EFFORTS: [&str; 4] = ["low", "medium", "high", "max"];

/// Problems with the reasoning parameters of `body`. `signed` maps the id of
/// every tool call the mock sent in an Anthropic reply with thinking to that
/// thinking block's signature.
pub(crate) fn check(
    wire: Wire,
    body: &Value,
    signed: &HashMap<String, Vec<(String, String)>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match wire {
        Wire::Chat => check_effort(
            body.get("reasoning_effort"),
            "reasoning_effort",
            &mut problems,
        ),
        Wire::Responses => check_responses(body, &mut problems),
        Wire::Anthropic => {
            check_anthropic(body, &mut problems);
            if body.get("thinking").is_some_and(thinking_on) {
                check_replay(body, signed, &mut problems);
            }
        }
        Wire::Gemini => check_gemini(body, &mut problems),
    }
    problems
}

fn check_effort(effort: Option<&Value>, key: &str, problems: &mut Vec<String>) {
    if let Some(effort) = effort
        && !effort.as_str().is_some_and(|e| OPENAI_EFFORTS.contains(&e))
    {
        problems.push(format!(
            "`{key}` must be one of {OPENAI_EFFORTS:?}, got {effort}"
        ));
    }
}

fn check_responses(body: &Value, problems: &mut Vec<String>) {
    if let Some(reasoning) = body.get("reasoning") {
        check_effort(reasoning.get("effort"), "reasoning.effort", problems);
        if let Some(summary) = reasoning.get("summary")
            && !summary
                .as_str()
                .is_some_and(|s| ["auto", "concise", "detailed"].contains(&s))
        {
            problems.push(format!(
                "`reasoning.summary` {summary} is not auto, concise or detailed"
            ));
        }
    }
    if let Some(include) = body.get("include")
        && !include.as_array().is_some_and(|list| {
            list.iter()
                .all(|i| i.as_str() == Some("reasoning.encrypted_content"))
        })
    {
        problems.push(format!(
            "`include` {include} names something the mock does not know"
        ));
    }
    let items = body.get("input").and_then(Value::as_array);
    let reasoning_items = items
        .into_iter()
        .flatten()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("reasoning"));
    for item in reasoning_items {
        let ok = item.get("id").is_some_and(Value::is_string)
            && item.get("encrypted_content").is_some_and(Value::is_string)
            && item.get("summary").is_some_and(Value::is_array);
        if !ok {
            problems.push(format!(
                "a reasoning input item needs `id`, `encrypted_content` and `summary`: {item}"
            ));
        }
        if body.get("store") != Some(&Value::Bool(false)) {
            problems.push("reasoning items replayed by content need `store: false`".to_owned());
        }
    }
}

fn thinking_on(thinking: &Value) -> bool {
    matches!(
        thinking.get("type").and_then(Value::as_str),
        Some("enabled" | "adaptive")
    )
}

fn check_anthropic(body: &Value, problems: &mut Vec<String>) {
    let thinking = body.get("thinking");
    match thinking.and_then(|t| t.get("type")).and_then(Value::as_str) {
        None if thinking.is_none() => {}
        Some("enabled") => {
            let budget = thinking
                .and_then(|t| t.get("budget_tokens"))
                .and_then(Value::as_u64);
            let max_tokens = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
            match budget {
                Some(b) if b >= 1024 && b < max_tokens => {}
                _ => problems.push(format!(
                    "`thinking.budget_tokens` must be at least 1024 and below max_tokens ({max_tokens}), got {budget:?}"
                )),
            }
        }
        Some("adaptive") => {
            if thinking.and_then(|t| t.get("budget_tokens")).is_some() {
                problems.push("`budget_tokens` is not allowed with adaptive thinking".to_owned());
            }
        }
        Some("disabled") => {}
        other => problems.push(format!(
            "`thinking.type` {other:?} is not enabled, adaptive or disabled"
        )),
    }
    if let Some(effort) = body.pointer("/output_config/effort")
        && !effort
            .as_str()
            .is_some_and(|e| ANTHROPIC_EFFORTS.contains(&e))
    {
        problems.push(format!(
            "`output_config.effort` {effort} is not one of {ANTHROPIC_EFFORTS:?}"
        ));
    }
    if thinking.is_some_and(thinking_on)
        && body
            .get("temperature")
            .is_some_and(|t| t.as_f64() != Some(1.0))
    {
        problems.push("`temperature` may not be changed while thinking is on".to_owned());
    }
}

/// The last assistant message, when it called tools the mock answered with
/// signed thinking blocks, must start with those blocks, in order, their
/// signatures (and redacted data) intact.
fn check_replay(
    body: &Value,
    signed: &HashMap<String, Vec<(String, String)>>,
    problems: &mut Vec<String>,
) {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let last_assistant = messages
        .iter()
        .enumerate()
        .rfind(|(_, m)| m.get("role").and_then(Value::as_str) == Some("assistant"));
    let Some((i, message)) = last_assistant else {
        return;
    };
    let blocks = message.get("content").and_then(Value::as_array);
    let blocks: Vec<&Value> = blocks.into_iter().flatten().collect();
    let expected = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .find_map(|b| {
            b.get("id")
                .and_then(Value::as_str)
                .and_then(|id| signed.get(id))
        });
    let Some(expected) = expected else {
        return;
    };
    let replayed = expected.len() <= blocks.len()
        && expected.iter().zip(&blocks).all(|((kind, value), b)| {
            let key = match kind.as_str() {
                "redacted_thinking" => "data",
                _ => "signature",
            };
            b.get("type").and_then(Value::as_str) == Some(kind.as_str())
                && b.get(key).and_then(Value::as_str) == Some(value.as_str())
        });
    if !replayed {
        problems.push(format!(
            "messages[{i}]: with thinking on, the assistant message that called tools must start with its thinking blocks {expected:?}, in order and unchanged, as the reply had them"
        ));
    }
}

fn check_gemini(body: &Value, problems: &mut Vec<String>) {
    let Some(config) = body.pointer("/generationConfig/thinkingConfig") else {
        return;
    };
    let level = config.get("thinkingLevel");
    let budget = config.get("thinkingBudget");
    if level.is_some() && budget.is_some() {
        problems.push("`thinkingLevel` and `thinkingBudget` cannot both be set".to_owned());
    }
    if let Some(level) = level
        && !level.as_str().is_some_and(|l| ["low", "high"].contains(&l))
    {
        problems.push(format!("`thinkingLevel` {level} is not low or high"));
    }
    if let Some(budget) = budget
        && budget.as_i64().is_none_or(|b| b < -1)
    {
        problems.push(format!("`thinkingBudget` {budget} is not a token count"));
    }
    if config
        .get("includeThoughts")
        .is_some_and(|v| !v.is_boolean())
    {
        problems.push("`includeThoughts` must be a boolean".to_owned());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_follow_up_without_the_signed_thinking_block_is_refused() {
        let signed = HashMap::from([(
            "toolu_1".to_owned(),
            vec![("thinking".to_owned(), "EqQBsig".to_owned())],
        )]);
        let request = |first: Value| {
            json!({
                "max_tokens": 32000,
                "thinking": {"type": "enabled", "budget_tokens": 2048},
                "messages": [
                    {"role": "user", "content": "go"},
                    {"role": "assistant", "content": [first, {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
                ],
            })
        };
        let with = request(json!({"type": "thinking", "thinking": "hm", "signature": "EqQBsig"}));
        assert!(check(Wire::Anthropic, &with, &signed).is_empty());
        let forged = request(json!({"type": "thinking", "thinking": "hm", "signature": "other"}));
        assert_eq!(check(Wire::Anthropic, &forged, &signed).len(), 1);
        let without = request(json!({"type": "text", "text": "hm"}));
        assert_eq!(check(Wire::Anthropic, &without, &signed).len(), 1);
        // Several blocks: all of them, in order, the redacted one's data intact.
        let split = HashMap::from([(
            "toolu_1".to_owned(),
            vec![
                ("thinking".to_owned(), "S1".to_owned()),
                ("redacted_thinking".to_owned(), "R".to_owned()),
            ],
        )]);
        let both = |data: &str| {
            let mut body = request(json!({"type": "thinking", "thinking": "a", "signature": "S1"}));
            let content = body.pointer_mut("/messages/1/content").unwrap();
            let content = content.as_array_mut().unwrap();
            content.insert(1, json!({"type": "redacted_thinking", "data": data}));
            body
        };
        assert!(check(Wire::Anthropic, &both("R"), &split).is_empty());
        assert_eq!(check(Wire::Anthropic, &both("changed"), &split).len(), 1);
        let first_only = request(json!({"type": "thinking", "thinking": "a", "signature": "S1"}));
        assert_eq!(check(Wire::Anthropic, &first_only, &split).len(), 1);
    }

    #[test]
    fn parameters_are_checked_per_format() {
        let none = HashMap::new();
        let bad_budget =
            json!({"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 4096}});
        assert_eq!(check(Wire::Anthropic, &bad_budget, &none).len(), 1);
        let adaptive =
            json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}});
        assert!(check(Wire::Anthropic, &adaptive, &none).is_empty());
        assert_eq!(
            check(Wire::Chat, &json!({"reasoning_effort": "extreme"}), &none).len(),
            1
        );
        let both = json!({"generationConfig": {"thinkingConfig": {"thinkingLevel": "low", "thinkingBudget": 10}}});
        assert_eq!(check(Wire::Gemini, &both, &none).len(), 1);
        let replay = json!({"store": true, "input": [{"type": "reasoning", "id": "rs_1", "encrypted_content": "x", "summary": []}]});
        assert_eq!(check(Wire::Responses, &replay, &none).len(), 1);
    }
}
