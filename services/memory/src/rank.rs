//! Ranking, shared by the backends: BM25 (the Redis backend computes it
//! here; SQLite's FTS5 computes the same formula), the preference for
//! project notes, cosine similarity and reciprocal rank fusion of the
//! full-text and the semantic rankings (`docs/memory.md`).

use std::collections::HashMap;

/// BM25 term-frequency saturation (FTS5's value).
pub const K1: f64 = 1.2;
/// BM25 length normalisation (FTS5's value).
pub const B: f64 = 0.75;
/// A project note's relevance is multiplied by this before ranking, so it
/// comes first among notes of similar relevance ("project first").
pub const PROJECT_BOOST: f64 = 1.5;
/// The `k` of reciprocal rank fusion: 60, as in the original paper; it
/// damps the weight of the very first ranks.
pub const RRF_K: f64 = 60.0;

/// A candidate of a ranking: a note id, its score (higher is better) and
/// whether it is a project note.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub id: String,
    pub score: f64,
    pub project: bool,
}

/// Corpus statistics BM25 needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Corpus {
    /// Notes in the corpus.
    pub documents: u64,
    /// Sum of their lengths in terms.
    pub total_length: u64,
}

impl Corpus {
    fn average_length(self) -> f64 {
        if self.documents == 0 {
            1.0
        } else {
            (self.total_length as f64 / self.documents as f64).max(1.0)
        }
    }
}

/// One posting: a note holding a term `tf` times, `length` terms long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub tf: u32,
    pub length: u32,
}

/// Inverse document frequency as FTS5 computes it: never below a small
/// positive floor, so a term in most notes still counts a little.
pub fn idf(corpus: Corpus, document_frequency: u64) -> f64 {
    let n = corpus.documents as f64;
    let df = document_frequency as f64;
    (((n - df + 0.5) / (df + 0.5)).ln()).max(1e-6)
}

/// BM25 of notes over the postings of the query's terms (one map per
/// term: note id → posting). Returns every note that holds a term.
pub fn bm25(corpus: Corpus, postings: &[HashMap<String, Posting>]) -> HashMap<String, f64> {
    let average = corpus.average_length();
    let mut scores: HashMap<String, f64> = HashMap::new();
    for term in postings {
        let weight = idf(corpus, term.len() as u64);
        for (id, posting) in term {
            let tf = f64::from(posting.tf);
            let norm = 1.0 - B + B * f64::from(posting.length) / average;
            *scores.entry(id.clone()).or_default() += weight * tf * (K1 + 1.0) / (tf + K1 * norm);
        }
    }
    scores
}

/// Applies [`PROJECT_BOOST`] and sorts best first; ties go to project
/// notes, then to the greater id (a stable order).
pub fn rank(mut candidates: Vec<Scored>) -> Vec<Scored> {
    for candidate in &mut candidates {
        if candidate.project {
            candidate.score *= PROJECT_BOOST;
        }
    }
    sort(&mut candidates);
    candidates
}

fn sort(candidates: &mut [Scored]) {
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.project.cmp(&a.project))
            .then(b.id.cmp(&a.id))
    });
}

/// Scales `vector` to unit length (a zero vector stays zero), so cosine
/// similarity is a dot product.
pub fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in vector.iter_mut() {
            *x /= norm;
        }
    }
}

/// Cosine similarity of two unit vectors; 0 when their lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Reciprocal rank fusion of several rankings (each best first): a note
/// scores Σ 1 / (RRF_K + rank) over the rankings it appears in.
pub fn fuse(rankings: &[Vec<Scored>]) -> Vec<Scored> {
    let mut fused: HashMap<&str, Scored> = HashMap::new();
    for ranking in rankings {
        for (rank, candidate) in ranking.iter().enumerate() {
            let entry = fused.entry(&candidate.id).or_insert_with(|| Scored {
                id: candidate.id.clone(),
                score: 0.0,
                project: candidate.project,
            });
            entry.score += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut out: Vec<Scored> = fused.into_values().collect();
    sort(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(tf: u32, length: u32) -> Posting {
        Posting { tf, length }
    }

    #[test]
    fn rarer_terms_and_shorter_notes_score_higher() {
        let corpus = Corpus {
            documents: 100,
            total_length: 1000,
        };
        assert!(idf(corpus, 1) > idf(corpus, 50));
        assert!(idf(corpus, 100) > 0.0);
        let common: HashMap<String, Posting> =
            (0..60).map(|i| (format!("n{i}"), posting(1, 10))).collect();
        let rare: HashMap<String, Posting> = [
            ("short".to_owned(), posting(1, 5)),
            ("long".to_owned(), posting(1, 40)),
        ]
        .into();
        let scores = bm25(corpus, &[common, rare]);
        assert_eq!(scores.len(), 62);
        assert!(scores["short"] > scores["long"]);
        assert!(scores["long"] > scores["n1"]);
    }

    #[test]
    fn project_notes_win_close_calls_only() {
        let ranked = rank(vec![
            Scored {
                id: "user-strong".into(),
                score: 10.0,
                project: false,
            },
            Scored {
                id: "project-close".into(),
                score: 7.0,
                project: true,
            },
            Scored {
                id: "project-weak".into(),
                score: 2.0,
                project: true,
            },
        ]);
        let ids: Vec<&str> = ranked.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["project-close", "user-strong", "project-weak"]);
    }

    #[test]
    fn fusion_rewards_agreement() {
        let s = |id: &str| Scored {
            id: id.into(),
            score: 1.0,
            project: false,
        };
        let fused = fuse(&[vec![s("a"), s("b"), s("c")], vec![s("d"), s("b"), s("e")]]);
        let ids: Vec<&str> = fused.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids[0], "b");
        assert_eq!(ids.len(), 5);
    }

    #[test]
    fn cosine_of_unit_vectors() {
        let mut a = vec![3.0, 4.0];
        normalise(&mut a);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&a, &[1.0]), 0.0);
        let mut zero = vec![0.0, 0.0];
        normalise(&mut zero);
        assert_eq!(zero, [0.0, 0.0]);
    }
}
