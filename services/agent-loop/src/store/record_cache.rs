//! Session records parsed once, for both stores: each recently loaded
//! session keeps its header and records, and a later load reads only what
//! was appended since (bytes of a file, items of a Redis list), so a turn
//! of a long conversation does not re-read and re-parse its whole history
//! (docs/performance.md, long sessions).
//!
//! The storage stays the truth: a session whose storage shrank or was
//! replaced (another `source`: a file's inode) is read again from the
//! start, and records appended by another process or replica are read from
//! where this one stopped, since logs only grow. The cache is bounded by
//! session count and weight (bytes read); the least recently loaded session
//! goes first.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{Record, SessionMeta, StoreError};

/// Sessions kept at most, and their total weight.
const MAX_SESSIONS: usize = 64;
const MAX_WEIGHT: u64 = 64 << 20;

struct Entry {
    source: u64,
    /// Where the next read starts (a byte offset, an item index).
    position: u64,
    /// Lines or items read so far, for error messages.
    lines: usize,
    weight: u64,
    meta: SessionMeta,
    records: Vec<Record>,
    used: u64,
}

/// What the cache knew about a session before a read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Known {
    pub source: u64,
    pub position: u64,
    pub lines: usize,
    /// Records cached then: a prefix of the entry for as long as the
    /// storage only grows.
    count: usize,
}

/// What one read found past a position.
#[derive(Debug)]
pub(super) struct Added {
    /// Whole records, to be cached.
    pub records: Vec<Record>,
    /// How far they advance the position.
    pub advance: u64,
    /// Lines or items read in total after them.
    pub lines: usize,
    /// Bytes they took in storage, toward the cache's bound.
    pub weight: u64,
    /// A last record not yet complete in storage terms (a file's line
    /// without its newline): returned, never cached.
    pub tail: Option<Record>,
}

#[derive(Default)]
pub(super) struct RecordCache {
    entries: HashMap<String, Entry>,
    clock: u64,
}

pub(super) fn locked(
    cache: &Mutex<RecordCache>,
) -> Result<MutexGuard<'_, RecordCache>, StoreError> {
    cache
        .lock()
        .map_err(|_| std::io::Error::other("session record cache poisoned").into())
}

impl RecordCache {
    /// Where to read session `id` from, if the cache holds it from the same
    /// `source` and the storage (`len` long) did not shrink; a stale entry
    /// is dropped.
    pub(super) fn known(&mut self, id: &str, source: u64, len: u64) -> Option<Known> {
        match self.entries.get(id) {
            Some(e) if e.source == source && e.position <= len => Some(Known {
                source,
                position: e.position,
                lines: e.lines,
                count: e.records.len(),
            }),
            Some(_) => {
                self.entries.remove(id);
                None
            }
            None => None,
        }
    }

    /// The cached records plus `added`, read from where `known` stopped;
    /// `None` when the cache no longer holds that session as it was (read
    /// it whole).
    pub(super) fn extend(
        &mut self,
        id: &str,
        known: &Known,
        added: Added,
    ) -> Option<(SessionMeta, Vec<Record>)> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(id)?;
        if entry.source != known.source || entry.records.len() < known.count {
            return None;
        }
        entry.used = clock;
        let mut records = if entry.position == known.position {
            entry.records.extend(added.records);
            entry.position += added.advance;
            entry.weight += added.weight;
            entry.lines = added.lines;
            entry.records.clone()
        } else {
            // Another load got here first; what it added after `known` may
            // differ from what this one read, so use this one's.
            let mut records = entry.records[..known.count].to_vec();
            records.extend(added.records);
            records
        };
        records.extend(added.tail);
        let meta = entry.meta.clone();
        self.evict();
        Some((meta, records))
    }

    /// Caches session `id` read whole from `source`: its header and the
    /// records after it; returns those records (with the tail).
    pub(super) fn insert(
        &mut self,
        id: &str,
        source: u64,
        meta: &SessionMeta,
        added: Added,
    ) -> Vec<Record> {
        self.clock += 1;
        let mut records = added.records.clone();
        records.extend(added.tail);
        let entry = Entry {
            source,
            position: added.advance,
            lines: added.lines,
            weight: added.weight,
            meta: meta.clone(),
            records: added.records,
            used: self.clock,
        };
        self.entries.insert(id.to_owned(), entry);
        self.evict();
        records
    }

    fn evict(&mut self) {
        loop {
            let weight: u64 = self.entries.values().map(|e| e.weight).sum();
            if self.entries.len() <= MAX_SESSIONS && weight <= MAX_WEIGHT {
                return;
            }
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    self.entries.remove(&id);
                }
                None => return,
            }
        }
    }
}
