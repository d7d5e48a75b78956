//! `openheim memory list|search|forget`: the long-term memory of this
//! workspace (its project's notes and the user's), through the agent
//! loop's `ListMemory` and `ForgetMemory`, in-process or remote alike. The
//! note line is shared with the TUI's `/memory`.

use std::io::Write;
use std::path::Path;

use openheim_proto::agent_loop::v1::{
    ForgetMemoryRequest, ListMemoryRequest, MemoryNote, MemoryScope,
};

use crate::Runtime;
use crate::run::exit;

/// Characters of a note's first line shown in a listing.
const LINE_CHARS: usize = 100;

/// What `openheim memory` was asked to do.
#[derive(Debug, Clone)]
pub enum MemoryCommand {
    /// Newest first; every project's notes with `all`.
    List {
        all: bool,
        limit: u32,
        json: bool,
    },
    /// Best first.
    Search {
        query: String,
        limit: u32,
        json: bool,
    },
    Forget {
        id: String,
    },
}

/// Runs one command; notes go to stdout, messages to stderr.
pub async fn run(runtime: &Runtime, command: MemoryCommand, work_dir: &Path) -> anyhow::Result<u8> {
    let mut client = runtime.agent_loop();
    let work_dir = work_dir.display().to_string();
    let (request, json) = match command {
        MemoryCommand::Forget { id } => {
            let request = ForgetMemoryRequest {
                id,
                owner: String::new(),
            };
            let note = client
                .forget_memory(request)
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner();
            eprintln!("forgot {}", note_line(&note));
            return Ok(exit::OK);
        }
        MemoryCommand::List { all, limit, json } => (
            ListMemoryRequest {
                limit,
                work_dir,
                all_projects: all,
                ..ListMemoryRequest::default()
            },
            json,
        ),
        MemoryCommand::Search { query, limit, json } => (
            ListMemoryRequest {
                query,
                limit,
                work_dir,
                ..ListMemoryRequest::default()
            },
            json,
        ),
    };
    let searching = !request.query.is_empty();
    let response = client
        .list_memory(request)
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    print_notes(&response, json, searching)?;
    Ok(exit::OK)
}

/// Notes to stdout (as lines or one JSON array), what is missing to stderr.
fn print_notes(
    response: &openheim_proto::agent_loop::v1::ListMemoryResponse,
    json: bool,
    searching: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let notes: Vec<serde_json::Value> = response.notes.iter().map(note_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(notes))?;
        return Ok(());
    }
    for note in &response.notes {
        writeln!(out, "{}", note_line(note))?;
    }
    match (response.notes.is_empty(), searching) {
        (true, true) => eprintln!("no notes match"),
        (true, false) => eprintln!("no notes (project {})", response.project),
        (false, _) if !response.next_cursor.is_empty() => {
            eprintln!("more notes: raise --limit to see them");
        }
        (false, _) => {}
    }
    Ok(())
}

/// `ID  SCOPE  DATE  [tags]  first line of the text`.
pub fn note_line(note: &MemoryNote) -> String {
    let tags = match note.tags.is_empty() {
        true => String::new(),
        false => format!("[{}]  ", note.tags.join(", ")),
    };
    let first = note.text.lines().next().unwrap_or("").trim();
    let text = match first.char_indices().nth(LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &first[..cut]),
        None if note.text.trim().lines().count() > 1 => format!("{first} …"),
        None => first.to_owned(),
    };
    format!(
        "{}  {:<7}  {}  {tags}{text}",
        note.id,
        scope_name(note.scope()),
        openheim_memory::utc_date(note.updated_at_ms)
    )
}

fn scope_name(scope: MemoryScope) -> &'static str {
    match scope {
        MemoryScope::User => "user",
        MemoryScope::Project => "project",
        MemoryScope::Unspecified => "?",
    }
}

fn note_json(note: &MemoryNote) -> serde_json::Value {
    serde_json::json!({
        "id": note.id,
        "text": note.text,
        "tags": note.tags,
        "scope": scope_name(note.scope()),
        "project": note.project,
        "created_at_ms": note.created_at_ms,
        "updated_at_ms": note.updated_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_one_line() {
        let note = MemoryNote {
            id: "3f9a1c0b7d2e".into(),
            text: "First line\nsecond line".into(),
            tags: vec!["ci".into(), "lint".into()],
            scope: MemoryScope::User as i32,
            updated_at_ms: 1_796_083_200_000,
            ..MemoryNote::default()
        };
        assert_eq!(
            note_line(&note),
            "3f9a1c0b7d2e  user     2026-12-01  [ci, lint]  First line …"
        );
    }
}
