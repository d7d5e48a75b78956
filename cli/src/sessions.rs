//! `openheim sessions`: the stored sessions, newest first, with what each
//! used and cost (docs/automation.md, "Costs"), through the agent loop's
//! `ListSessions`, in-process or remote alike.

use std::io::Write;

use openheim_proto::agent_loop::v1::{ListSessionsRequest, SessionInfo};
use openheim_proto::common::v1::Usage;
use serde_json::json;

use crate::Runtime;
use crate::run::exit;
use crate::tui::status::compact;
use openheim_config::pricing::format_usd;

/// Characters of a title shown in a listing.
const TITLE_CHARS: usize = 60;

/// Lists up to `limit` sessions on stdout: a line each, or a JSON array.
pub async fn run(runtime: &Runtime, limit: u32, json: bool) -> anyhow::Result<u8> {
    let request = ListSessionsRequest {
        all_users: false,
        caller: None,
        page_size: limit,
        cursor: String::new(),
    };
    let sessions = runtime
        .agent_loop()
        .list_sessions(request)
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner()
        .sessions;
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<_> = sessions.iter().map(session_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(list))?;
        return Ok(exit::OK);
    }
    if sessions.is_empty() {
        eprintln!("no sessions yet");
    }
    for session in &sessions {
        writeln!(out, "{}", session_line(session))?;
    }
    Ok(exit::OK)
}

/// `ID  12 msgs  3.4k in · 210 out  $0.012300  title`.
fn session_line(s: &SessionInfo) -> String {
    let usage = s.usage.unwrap_or_else(Usage::zero);
    let cost = match usage.cost_pico_usd {
        Some(pico) => format_usd(pico),
        None => "cost unknown".to_owned(),
    };
    let mut title: String = s.title.chars().take(TITLE_CHARS).collect();
    if s.title.chars().count() > TITLE_CHARS {
        title.push('…');
    }
    format!(
        "{}  {} msgs  {} in · {} out  {}  {}",
        s.id,
        s.message_count,
        compact(usage.input_tokens),
        compact(usage.output_tokens),
        cost,
        title
    )
}

fn session_json(s: &SessionInfo) -> serde_json::Value {
    let usage = s.usage.unwrap_or_else(Usage::zero);
    json!({
        "id": s.id,
        "title": s.title,
        "work_dir": s.work_dir,
        "model": s.model,
        "updated_at_ms": s.updated_at_ms,
        "message_count": s.message_count,
        "llm_calls": s.llm_calls,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost_pico_usd": usage.cost_pico_usd,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_tokens_and_cost_or_that_it_is_unknown() {
        let mut s = SessionInfo {
            id: "abc".into(),
            title: "write hello".into(),
            message_count: 4,
            usage: Some(Usage {
                input_tokens: 3400,
                output_tokens: 210,
                cost_pico_usd: Some(12_300_000_000),
                ..Usage::default()
            }),
            ..SessionInfo::default()
        };
        assert_eq!(
            session_line(&s),
            "abc  4 msgs  3.4k in · 210 out  $0.012300  write hello"
        );
        s.usage = Some(Usage::default());
        assert!(session_line(&s).contains("cost unknown"));
        assert_eq!(session_json(&s)["usage"]["cost_pico_usd"], json!(null));
    }
}
