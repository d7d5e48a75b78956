//! Relevance: a corpus of realistic developer notes (`corpus/notes.tsv`)
//! and queries that name the note a person would want first
//! (`corpus/queries.tsv`). Full-text search alone (no embeddings) must put
//! that note first for at least 90 % of the queries, on both backends.

use std::sync::Arc;

use openheim_memory::{DEFAULT_OWNER, Memory, NewNote, Scope, View};

use crate::support::Backend;

const NOTES: &str = include_str!("../corpus/notes.tsv");
const QUERIES: &str = include_str!("../corpus/queries.tsv");
const PROJECT: &str = "/home/dev/ledgerly";
/// Share of queries whose note must rank first.
const REQUIRED: f64 = 0.90;

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').collect())
}

/// Stores the corpus: notes about the user (`user-*`) in the user scope,
/// the rest in the project. Returns (key, id) pairs.
async fn load(memory: &Memory) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for row in rows(NOTES) {
        let [key, tags, text] = row[..] else {
            panic!("bad corpus row {row:?}");
        };
        let user = key.starts_with("user-");
        let note = memory
            .remember(NewNote {
                owner: DEFAULT_OWNER.into(),
                scope: if user { Scope::User } else { Scope::Project },
                project: (!user).then(|| PROJECT.to_owned()),
                text: text.into(),
                tags: tags.split(',').map(str::to_owned).collect(),
            })
            .await
            .unwrap();
        ids.push((key.to_owned(), note.id));
    }
    ids
}

async fn first_hit_share(backend: Backend) {
    let memory = Memory::new(Arc::clone(&backend.store), None);
    let ids = load(&memory).await;
    assert!(ids.len() >= 200, "the corpus has {} notes", ids.len());
    let view = View::new(DEFAULT_OWNER, Some(PROJECT)).unwrap();
    let mut misses = Vec::new();
    let mut total = 0;
    for row in rows(QUERIES) {
        let [query, expected] = row[..] else {
            panic!("bad query row {row:?}");
        };
        total += 1;
        let hits = memory.search(&view, query, 5).await.unwrap();
        let first = hits
            .first()
            .and_then(|h| ids.iter().find(|(_, id)| *id == h.note.id));
        let first = first.map_or("(nothing)", |(key, _)| key.as_str());
        if first != expected {
            misses.push(format!("{query:?}: expected {expected}, got {first}"));
        }
    }
    let share = (total - misses.len()) as f64 / total as f64;
    eprintln!(
        "{} of {total} queries rank their note first ({:.1} %); misses:\n  {}",
        total - misses.len(),
        share * 100.0,
        misses.join("\n  ")
    );
    assert!(total >= 50, "only {total} queries");
    assert!(
        share >= REQUIRED,
        "only {:.1} % of queries rank their note first:\n  {}",
        share * 100.0,
        misses.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ranks_the_right_note_first_for_nine_queries_in_ten() {
    first_hit_share(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ranks_the_right_note_first_for_nine_queries_in_ten() {
    first_hit_share(Backend::redis()).await;
}
