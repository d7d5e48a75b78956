//! Session logs parsed once: the file backend keeps each recently loaded
//! log's records and reads only the bytes appended since, so a turn of a
//! long conversation does not re-read and re-parse its whole history
//! (docs/performance.md, long sessions).
//!
//! The file stays the truth: a log that shrank or was replaced (another
//! inode) is parsed again from the start, and one appended to by another
//! process is read from where this one stopped. Only complete lines are
//! cached; a torn last line is re-read on the next load. The cache is
//! bounded by session count and bytes; the least recently loaded log goes
//! first.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Record, SessionMeta, StoreError};

/// Logs kept at most, and their total size on disk.
const MAX_SESSIONS: usize = 64;
const MAX_BYTES: u64 = 64 << 20;

struct Entry {
    inode: u64,
    /// Bytes of the file parsed into `records` (whole lines only).
    consumed: u64,
    /// Lines parsed so far, for error messages.
    lines: usize,
    meta: SessionMeta,
    records: Vec<Record>,
    used: u64,
}

#[derive(Default)]
pub(super) struct LogCache {
    entries: HashMap<String, Entry>,
    clock: u64,
}

/// A log as read: header, records, and the file's modification time.
pub(super) struct Log {
    pub meta: SessionMeta,
    pub records: Vec<Record>,
    pub mtime_ms: i64,
}

/// What the cache knew about a log before reading it.
struct Known {
    inode: u64,
    consumed: u64,
    lines: usize,
    /// Records cached then: a prefix of the entry for as long as the file
    /// only grows.
    count: usize,
}

/// The complete lines of `text` parsed, how many bytes they took, how many
/// lines they were, and the parsed remainder if it is a whole record
/// without its newline (a torn one is skipped).
struct Parsed {
    records: Vec<Record>,
    consumed: usize,
    lines: usize,
    tail: Option<Record>,
}

fn corrupt(id: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        reason,
    }
}

fn parse_lines(id: &str, text: &str, lines_before: usize) -> Result<Parsed, StoreError> {
    let consumed = text.rfind('\n').map_or(0, |i| i + 1);
    let (whole, rest) = text.split_at(consumed);
    let mut records = Vec::new();
    let mut line_no = lines_before;
    for line in whole.split_inclusive('\n') {
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(record) => records.push(record),
            Err(e) => return Err(corrupt(id, format!("line {line_no}: {e}"))),
        }
    }
    let tail = match serde_json::from_str::<Record>(rest) {
        _ if rest.trim().is_empty() => None,
        Ok(record) => Some(record),
        Err(_) => {
            tracing::warn!(session = id, "skipping a torn last record");
            None
        }
    };
    Ok(Parsed {
        records,
        consumed,
        lines: line_no,
        tail,
    })
}

/// Splits the header record off a whole log.
fn header(id: &str, records: &mut Vec<Record>) -> Result<SessionMeta, StoreError> {
    if records.is_empty() {
        return Err(corrupt(id, "empty log".into()));
    }
    match records.remove(0) {
        Record::Session(meta) => Ok(meta),
        _ => Err(corrupt(id, "first record is not the session header".into())),
    }
}

pub(super) fn mtime_ms(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn locked(cache: &Mutex<LogCache>) -> Result<std::sync::MutexGuard<'_, LogCache>, StoreError> {
    cache
        .lock()
        .map_err(|_| std::io::Error::other("session log cache poisoned").into())
}

/// The log at `path` from byte `from` on, parsed.
async fn read_from(path: &Path, id: &str, from: u64, lines: usize) -> Result<Parsed, StoreError> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(from)).await?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await?;
    let text =
        String::from_utf8(bytes).map_err(|_| corrupt(id, "the log is not valid UTF-8".into()))?;
    parse_lines(id, &text, lines)
}

impl LogCache {
    /// Session `id`'s log at `path`, reading only what was appended since
    /// the last load when the cache knows the file.
    pub(super) async fn read(
        cache: &Mutex<Self>,
        id: &str,
        path: &Path,
    ) -> Result<Log, StoreError> {
        let metadata = match tokio::fs::metadata(path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(id.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let inode = metadata.ino();
        let mtime_ms = mtime_ms(&metadata);
        let known = locked(cache)?.known(id, inode, metadata.len());
        if let Some(known) = known {
            let parsed = read_from(path, id, known.consumed, known.lines).await?;
            if let Some(log) = locked(cache)?.extend(id, &known, parsed, mtime_ms) {
                return Ok(log);
            }
            // Replaced or evicted while read: parse the whole log.
        }
        let parsed = read_from(path, id, 0, 0).await?;
        locked(cache)?.insert(id, inode, parsed, mtime_ms)
    }

    fn known(&mut self, id: &str, inode: u64, len: u64) -> Option<Known> {
        match self.entries.get(id) {
            Some(e) if e.inode == inode && e.consumed <= len => Some(Known {
                inode,
                consumed: e.consumed,
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

    fn insert(
        &mut self,
        id: &str,
        inode: u64,
        parsed: Parsed,
        mtime_ms: i64,
    ) -> Result<Log, StoreError> {
        let Parsed {
            mut records,
            consumed,
            lines,
            tail,
        } = parsed;
        // A log without a newline yet holds at most its header.
        if records.is_empty() {
            records.extend(tail);
            let meta = header(id, &mut records)?;
            return Ok(Log {
                meta,
                records,
                mtime_ms,
            });
        }
        let meta = header(id, &mut records)?;
        let mut log = Log {
            meta: meta.clone(),
            records: records.clone(),
            mtime_ms,
        };
        log.records.extend(tail);
        self.clock += 1;
        let entry = Entry {
            inode,
            consumed: consumed as u64,
            lines,
            meta,
            records,
            used: self.clock,
        };
        self.entries.insert(id.to_owned(), entry);
        self.evict();
        Ok(log)
    }

    /// The cached records plus those `parsed` from where `known` stopped;
    /// `None` when the cache no longer holds that log as it was.
    fn extend(&mut self, id: &str, known: &Known, parsed: Parsed, mtime_ms: i64) -> Option<Log> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(id)?;
        if entry.inode != known.inode || entry.records.len() < known.count {
            return None;
        }
        entry.used = clock;
        if entry.consumed == known.consumed {
            entry.records.extend(parsed.records);
            entry.consumed += parsed.consumed as u64;
            entry.lines = parsed.lines;
            let mut records = entry.records.clone();
            records.extend(parsed.tail);
            return Some(Log {
                meta: entry.meta.clone(),
                records,
                mtime_ms,
            });
        }
        // Another load of this log got here first; what it added after
        // `known` may differ from what this one read, so use this one's.
        let mut records = entry.records[..known.count].to_vec();
        records.extend(parsed.records);
        records.extend(parsed.tail);
        Some(Log {
            meta: entry.meta.clone(),
            records,
            mtime_ms,
        })
    }

    fn evict(&mut self) {
        loop {
            let bytes: u64 = self.entries.values().map(|e| e.consumed).sum();
            if self.entries.len() <= MAX_SESSIONS && bytes <= MAX_BYTES {
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
