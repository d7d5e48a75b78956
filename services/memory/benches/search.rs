//! Benchmark (not a test) of `search_memory`'s storage work: the latency of
//! [`Memory::search`] over 10 000 notes on each backend (SQLite in a
//! temporary directory; Redis on loopback, its own `redis-server`), full
//! text only, as a turn's tool call pays it.
//!
//! Two workloads, both built from the relevance corpus
//! (`tests/corpus/notes.tsv`, `tests/corpus/queries.tsv`):
//! - *topical*: each note is one of the corpus's developer notes followed by
//!   5 to 20 words of other notes (about 45 variants of each topic), and the
//!   queries are the corpus's real queries;
//! - *random words* (a stress case): notes of 15 to 60 words drawn from the
//!   corpus's words by their frequency, queries of 2 to 5 such words, so a
//!   query matches thousands of notes.
//!
//! A quarter of the notes belong to the searched project, half to the user
//! scope, a quarter to other projects.
//!
//! Run: `cargo bench -p openheim-memory --bench search [NOTES] [QUERIES]`.
//! Results go to `docs/performance.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use openheim_memory::{
    DEFAULT_OWNER, DEFAULT_SEARCH_LIMIT, Memory, MemoryStore, NewNote, RedisMemory,
    RedisMemoryOptions, Scope, SqliteMemory, View,
};
use openheim_test_redis::RedisServer;

const NOTES: &str = include_str!("../tests/corpus/notes.tsv");
const QUERIES: &str = include_str!("../tests/corpus/queries.tsv");
const PROJECT: &str = "/home/dev/ledgerly";
const WARM_UP: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Topical,
    RandomWords,
}

/// Column `column` of every row of a corpus file.
fn column(file: &'static str, column: usize) -> Vec<&'static str> {
    file.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split('\t').nth(column))
        .collect()
}

/// Every word of the corpus notes, repeats kept (sampling from it follows
/// the words' frequencies).
fn word_stream() -> Vec<&'static str> {
    column(NOTES, 2)
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect()
}

fn sentence(rng: &mut fastrand::Rng, words: &[&str], len: usize) -> String {
    (0..len)
        .map(|_| words[rng.usize(..words.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

struct Corpus {
    words: Vec<&'static str>,
    notes: Vec<&'static str>,
    queries: Vec<&'static str>,
}

impl Corpus {
    fn load() -> Self {
        Self {
            words: word_stream(),
            notes: column(NOTES, 2),
            queries: column(QUERIES, 0),
        }
    }

    fn note(&self, rng: &mut fastrand::Rng, workload: Workload, i: usize) -> NewNote {
        let (scope, project) = match i % 4 {
            0 => (Scope::Project, Some(PROJECT.to_owned())),
            1 => (Scope::Project, Some(format!("/home/dev/other-{}", i % 13))),
            _ => (Scope::User, None),
        };
        let text = match workload {
            Workload::Topical => {
                let extra = rng.usize(5..=20);
                let base = self.notes[i % self.notes.len()];
                format!("{base} {}", sentence(rng, &self.words, extra))
            }
            Workload::RandomWords => {
                let len = rng.usize(15..=60);
                sentence(rng, &self.words, len)
            }
        };
        NewNote {
            owner: DEFAULT_OWNER.into(),
            scope,
            project,
            text,
            tags: vec![self.words[rng.usize(..self.words.len())].to_owned()],
        }
    }

    fn query(&self, rng: &mut fastrand::Rng, workload: Workload, i: usize) -> String {
        match workload {
            Workload::Topical => self.queries[i % self.queries.len()].to_owned(),
            Workload::RandomWords => {
                let len = rng.usize(2..=5);
                sentence(rng, &self.words, len)
            }
        }
    }
}

struct Measured {
    insert: Duration,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    mean_hits: f64,
}

async fn measure(
    store: Arc<dyn MemoryStore>,
    workload: Workload,
    notes: usize,
    queries: usize,
) -> Measured {
    let memory = Memory::new(store, None);
    let corpus = Corpus::load();
    let mut rng = fastrand::Rng::with_seed(7);
    let started = Instant::now();
    for i in 0..notes {
        let note = corpus.note(&mut rng, workload, i);
        memory.remember(note).await.unwrap();
    }
    let insert = started.elapsed();
    let view = View::new(DEFAULT_OWNER, Some(PROJECT)).unwrap();
    let mut times = Vec::with_capacity(queries);
    let mut hits = 0;
    for i in 0..WARM_UP + queries {
        let query = corpus.query(&mut rng, workload, i);
        let started = Instant::now();
        let found = match memory.search(&view, &query, DEFAULT_SEARCH_LIMIT).await {
            Ok(found) => found.len(),
            // A query of stopwords only: nothing to search for.
            Err(_) => continue,
        };
        let took = started.elapsed();
        if i >= WARM_UP {
            times.push(took);
            hits += found;
        }
    }
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    Measured {
        insert,
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
        mean_hits: hits as f64 / times.len() as f64,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn row(backend: &str, workload: Workload, notes: usize, m: &Measured) {
    let workload = match workload {
        Workload::Topical => "topical",
        Workload::RandomWords => "random words",
    };
    println!(
        "| {backend} | {workload} | {notes} | {} | {} | {} | {} | {:.1} s | {:.1} |",
        ms(m.p50),
        ms(m.p90),
        ms(m.p99),
        ms(m.max),
        m.insert.as_secs_f64(),
        m.mean_hits
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let notes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let queries: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    println!(
        "search_memory over {notes} notes, {queries} queries (after {WARM_UP} warm-up), limit {DEFAULT_SEARCH_LIMIT}\n"
    );
    println!(
        "| backend | workload | notes | p50 | p90 | p99 | max | storing them | hits per query |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let server = RedisServer::start();
    for (i, workload) in [Workload::Topical, Workload::RandomWords]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteMemory::new(dir.path().join("memory.db")));
        let measured = measure(sqlite, workload, notes, queries).await;
        row("SQLite (FTS5)", workload, notes, &measured);
        let redis = RedisMemory::open(&RedisMemoryOptions {
            url: server.url().to_owned(),
            prefix: format!("{}-{i}", server.prefix()),
        })
        .unwrap();
        let measured = measure(Arc::new(redis), workload, notes, queries).await;
        row("Redis (loopback)", workload, notes, &measured);
    }
}
