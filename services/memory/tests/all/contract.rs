//! The memory's promises, one function each, run against both backends
//! (`sqlite::*` and `redis::*`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use openheim_memory::{DEFAULT_OWNER, Listing, MemoryError, NewNote, Scope, View};

use crate::support::{Backend, SynonymEmbedder, found, project_note, remember, user_note, view};

macro_rules! for_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::sqlite()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::redis()).await;
                }
            )*
        }
    };
}

for_both_backends!(
    a_remembered_note_is_found_by_its_words_and_tags,
    notes_outlive_the_process_that_wrote_them,
    search_covers_the_user_and_this_project_project_first,
    other_projects_and_other_owners_stay_invisible,
    listing_is_newest_first_and_pages_with_a_cursor,
    forget_removes_a_note_from_search_and_listing,
    forget_refuses_unknown_and_invisible_notes,
    queries_with_search_syntax_are_plain_words,
    bad_notes_are_refused_and_nothing_is_stored,
    semantic_search_finds_synonyms_and_survives_a_failing_embedder,
    a_forgotten_note_leaves_the_ranking_of_others_intact,
    the_project_preference_reaches_past_many_better_user_matches,
);

async fn a_remembered_note_is_found_by_its_words_and_tags(backend: Backend) {
    let memory = backend.memory();
    let mut new = user_note("The staging database listens on port 5433.");
    new.tags = vec!["postgres".into(), "ports".into()];
    let note = remember(&memory, new).await;
    remember(&memory, user_note("Deploys happen on Tuesdays.")).await;
    assert_eq!(note.id.len(), 12);
    assert_eq!(note.tags, ["postgres", "ports"]);
    assert_eq!(note.scope, Scope::User);
    assert!(note.created_at_ms > 0 && note.created_at_ms == note.updated_at_ms);
    let v = view("/w/app");
    assert_eq!(
        found(&memory, &v, "which port does staging use").await,
        ["The staging database listens on port 5433."]
    );
    // Tags are searchable, and stemming joins "port" and "ports".
    let hits = memory.search(&v, "postgres", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].note, note);
    assert!(found(&memory, &v, "kubernetes").await.is_empty());
}

async fn notes_outlive_the_process_that_wrote_them(backend: Backend) {
    let note = remember(
        &backend.memory(),
        project_note("/w/app", "Use pnpm, not npm."),
    )
    .await;
    let later = openheim_memory::Memory::new(backend.reopen(), None);
    let hits = later.search(&view("/w/app"), "npm", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].note, note);
}

async fn search_covers_the_user_and_this_project_project_first(backend: Backend) {
    let memory = backend.memory();
    remember(&memory, user_note("Run the tests with cargo nextest.")).await;
    remember(
        &memory,
        project_note(
            "/w/app",
            "Run the tests with cargo nextest and the db feature.",
        ),
    )
    .await;
    // Equally relevant (close scores): the project note first.
    let texts = found(&memory, &view("/w/app"), "run tests nextest").await;
    assert_eq!(
        texts,
        [
            "Run the tests with cargo nextest and the db feature.",
            "Run the tests with cargo nextest."
        ]
    );
    // A much better user match still beats a weak project match.
    remember(
        &memory,
        user_note("Flamegraph: cargo flamegraph --bin server."),
    )
    .await;
    remember(
        &memory,
        project_note("/w/app", "The server binary is called api."),
    )
    .await;
    let texts = found(&memory, &view("/w/app"), "flamegraph server").await;
    assert_eq!(
        texts,
        [
            "Flamegraph: cargo flamegraph --bin server.",
            "The server binary is called api."
        ]
    );
    // Without a project, only user notes.
    let no_project = View::new(DEFAULT_OWNER, None).unwrap();
    assert_eq!(
        found(&memory, &no_project, "tests").await,
        ["Run the tests with cargo nextest."]
    );
}

async fn other_projects_and_other_owners_stay_invisible(backend: Backend) {
    let memory = backend.memory();
    remember(
        &memory,
        project_note("/w/other", "The other project uses yarn."),
    )
    .await;
    let mut someone_else = user_note("Someone else's yarn preference.");
    someone_else.owner = "alice".into();
    remember(&memory, someone_else).await;
    assert!(found(&memory, &view("/w/app"), "yarn").await.is_empty());
    assert_eq!(
        found(&memory, &view("/w/other"), "yarn").await,
        ["The other project uses yarn."]
    );
    let alice = View::new("alice", Some("/w/app")).unwrap();
    assert_eq!(
        found(&memory, &alice, "yarn").await,
        ["Someone else's yarn preference."]
    );
}

async fn listing_is_newest_first_and_pages_with_a_cursor(backend: Backend) {
    let memory = backend.memory();
    let mut ids = Vec::new();
    for i in 0..5 {
        let new = match i % 2 {
            0 => user_note(&format!("note {i}")),
            _ => project_note("/w/app", &format!("note {i}")),
        };
        ids.push(remember(&memory, new).await.id);
        // Distinct update times make the order observable.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    remember(&memory, project_note("/w/other", "elsewhere")).await;
    let listing = Listing::View(view("/w/app"));
    let first = memory.list(&listing, 2, None).await.unwrap();
    let texts: Vec<&str> = first.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["note 4", "note 3"]);
    let cursor = first.next_cursor.expect("more pages");
    let second = memory.list(&listing, 10, Some(&cursor)).await.unwrap();
    let texts: Vec<&str> = second.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["note 2", "note 1", "note 0"]);
    assert_eq!(second.next_cursor, None);
    // The owner's listing spans every project.
    let all = memory
        .list(&Listing::Owner(DEFAULT_OWNER.into()), 10, None)
        .await
        .unwrap();
    assert_eq!(all.notes.len(), 6);
    assert_eq!(all.notes[0].text, "elsewhere");
    let bad = memory.list(&listing, 2, Some("garbage")).await.unwrap_err();
    assert!(matches!(bad, MemoryError::Invalid(_)), "{bad:?}");
}

async fn forget_removes_a_note_from_search_and_listing(backend: Backend) {
    let memory = backend.memory();
    let keep = remember(&memory, user_note("Keep: the cache TTL is 15 minutes.")).await;
    let gone = remember(
        &memory,
        project_note("/w/app", "Gone: the cache is Memcached."),
    )
    .await;
    let v = view("/w/app");
    let forgotten = memory
        .forget(DEFAULT_OWNER, &gone.id, Some(&v))
        .await
        .unwrap();
    assert_eq!(forgotten, gone);
    assert_eq!(found(&memory, &v, "cache").await, [keep.text.as_str()]);
    let listed = memory
        .list(&Listing::View(v.clone()), 10, None)
        .await
        .unwrap();
    assert_eq!(listed.notes, std::slice::from_ref(&keep));
    // Also gone for a later process.
    let later = openheim_memory::Memory::new(backend.reopen(), None);
    assert_eq!(found(&later, &v, "memcached").await, Vec::<String>::new());
    let again = memory
        .forget(DEFAULT_OWNER, &gone.id, Some(&v))
        .await
        .unwrap_err();
    assert!(matches!(again, MemoryError::NotFound(_)), "{again:?}");
}

async fn forget_refuses_unknown_and_invisible_notes(backend: Backend) {
    let memory = backend.memory();
    let other = remember(&memory, project_note("/w/other", "Other project's note.")).await;
    let v = view("/w/app");
    for id in ["0123456789ab", "../../etc", ""] {
        let error = memory
            .forget(DEFAULT_OWNER, id, Some(&v))
            .await
            .unwrap_err();
        assert!(matches!(error, MemoryError::NotFound(_)), "{id}: {error:?}");
    }
    // Visible to its own project only, and to its owner without a view.
    let error = memory
        .forget(DEFAULT_OWNER, &other.id, Some(&v))
        .await
        .unwrap_err();
    assert!(matches!(error, MemoryError::NotFound(_)), "{error:?}");
    let error = memory.forget("alice", &other.id, None).await.unwrap_err();
    assert!(matches!(error, MemoryError::NotFound(_)), "{error:?}");
    assert_eq!(found(&memory, &view("/w/other"), "note").await.len(), 1);
    memory.forget(DEFAULT_OWNER, &other.id, None).await.unwrap();
    assert!(found(&memory, &view("/w/other"), "note").await.is_empty());
}

async fn queries_with_search_syntax_are_plain_words(backend: Backend) {
    let memory = backend.memory();
    remember(
        &memory,
        user_note("NEAR the OR gate: \"quoted\" text* (grouped)"),
    )
    .await;
    let v = view("/w/app");
    for query in [
        "\"",
        "NEAR(",
        "text*",
        "OR AND NOT",
        "(grouped",
        "col:val",
        "-x ^y",
    ] {
        let result = memory.search(&v, query, 5).await;
        assert!(
            matches!(result, Ok(_) | Err(MemoryError::Invalid(_))),
            "{query}: {result:?}"
        );
    }
    assert_eq!(found(&memory, &v, "\"quoted\" (grouped)").await.len(), 1);
    let empty = memory.search(&v, "  the of ", 5).await.unwrap_err();
    assert!(matches!(empty, MemoryError::Invalid(_)), "{empty:?}");
}

async fn bad_notes_are_refused_and_nothing_is_stored(backend: Backend) {
    let memory = backend.memory();
    let too_long = "x".repeat(openheim_memory::MAX_NOTE_CHARS + 1);
    let bad: Vec<NewNote> = vec![
        user_note("   "),
        user_note(&too_long),
        NewNote {
            tags: vec!["".into()],
            ..user_note("fine text")
        },
        NewNote {
            scope: Scope::Project,
            project: None,
            ..user_note("fine text")
        },
        NewNote {
            owner: "bad:owner".into(),
            ..user_note("fine text")
        },
    ];
    for new in bad {
        let error = memory.remember(new).await.unwrap_err();
        assert!(matches!(error, MemoryError::Invalid(_)), "{error:?}");
    }
    let listed = memory
        .list(&Listing::Owner(DEFAULT_OWNER.into()), 10, None)
        .await
        .unwrap();
    assert!(listed.notes.is_empty(), "{listed:?}");
}

async fn semantic_search_finds_synonyms_and_survives_a_failing_embedder(backend: Backend) {
    let embedder = SynonymEmbedder::new();
    let memory = backend.memory_with(Arc::clone(&embedder) as _);
    let v = view("/w/app");
    remember(&memory, user_note("Park the car in level 2 of the garage.")).await;
    remember(&memory, user_note("Invoices are numbered per tenant.")).await;
    // No word in common: only the vectors connect them.
    assert_eq!(
        found(&memory, &v, "automobile").await,
        ["Park the car in level 2 of the garage."]
    );
    // Both rankings agree: first.
    let texts = found(&memory, &v, "bill numbering").await;
    assert_eq!(texts[0], "Invoices are numbered per tenant.");
    // The embedder fails: notes are still stored and found by their words.
    embedder.failing.store(true, Ordering::SeqCst);
    remember(&memory, user_note("The vehicle fleet API is rate limited.")).await;
    assert_eq!(
        found(&memory, &v, "fleet").await,
        ["The vehicle fleet API is rate limited."]
    );
    embedder.failing.store(false, Ordering::SeqCst);
    // A note stored without a vector is still found by full text next to
    // the semantic match (each tops one ranking, so fusion ties them).
    let texts = found(&memory, &v, "vehicle fleet").await;
    assert!(
        texts.contains(&"The vehicle fleet API is rate limited.".to_owned()),
        "{texts:?}"
    );
}

async fn a_forgotten_note_leaves_the_ranking_of_others_intact(backend: Backend) {
    let memory = backend.memory();
    let mut notes = Vec::new();
    for text in ["alpha bravo charlie", "alpha bravo", "alpha", "delta echo"] {
        notes.push(remember(&memory, user_note(text)).await);
    }
    let v = view("/w/app");
    assert_eq!(
        found(&memory, &v, "bravo charlie").await[0],
        "alpha bravo charlie"
    );
    memory
        .forget(DEFAULT_OWNER, &notes[0].id, None)
        .await
        .unwrap();
    assert_eq!(found(&memory, &v, "bravo charlie").await, ["alpha bravo"]);
    assert_eq!(found(&memory, &v, "alpha").await.len(), 2);
    assert_eq!(found(&memory, &v, "echo").await, ["delta echo"]);
}

async fn the_project_preference_reaches_past_many_better_user_matches(backend: Backend) {
    let memory = backend.memory();
    for _ in 0..30 {
        remember(&memory, user_note("alpha beta")).await;
    }
    // A weaker match on its own (a longer note), but a project note: with
    // the preference it beats every user note, although 30 rank above it
    // by BM25 alone.
    remember(&memory, project_note("/w/app", "alpha gamma delta epsilon")).await;
    let hits = memory.search(&view("/w/app"), "alpha", 3).await.unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].note.text, "alpha gamma delta epsilon");
    assert!(hits[0].score > hits[1].score, "{hits:?}");
}
