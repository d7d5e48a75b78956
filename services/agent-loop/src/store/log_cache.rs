//! Reading a session's JSON-lines log through the [`RecordCache`]: only
//! the bytes appended since the last load are read and parsed. Only whole
//! lines are cached; a torn last line (a crash mid-write, or a write in
//! progress) is skipped, or returned if it is a whole record without its
//! newline, and read again next time.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::record_cache::{Added, RecordCache, locked};
use super::{Record, SessionMeta, StoreError};

/// A log as read: header, records, and the file's modification time.
pub(super) struct Log {
    pub meta: SessionMeta,
    pub records: Vec<Record>,
    pub mtime_ms: i64,
}

fn corrupt(id: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        reason,
    }
}

/// The whole lines of `text` parsed (line numbers counted on from
/// `lines_before`), and the remainder if it is a whole record.
fn parse_lines(id: &str, text: &str, lines_before: usize) -> Result<Added, StoreError> {
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
    Ok(Added {
        records,
        advance: consumed as u64,
        lines: line_no,
        weight: consumed as u64,
        tail,
    })
}

pub(super) fn mtime_ms(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The log at `path` from byte `from` on, parsed.
async fn read_from(path: &Path, id: &str, from: u64, lines: usize) -> Result<Added, StoreError> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(from)).await?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await?;
    let text =
        String::from_utf8(bytes).map_err(|_| corrupt(id, "the log is not valid UTF-8".into()))?;
    parse_lines(id, &text, lines)
}

/// Session `id`'s log at `path`, reading only what was appended since the
/// last load when the cache knows the file (by inode and length).
pub(super) async fn read(
    cache: &Mutex<RecordCache>,
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
    let (inode, mtime_ms) = (metadata.ino(), mtime_ms(&metadata));
    let known = locked(cache)?.known(id, inode, metadata.len());
    if let Some(known) = known {
        let added = read_from(path, id, known.position, known.lines).await?;
        if let Some((meta, records)) = locked(cache)?.extend(id, &known, added) {
            return Ok(Log {
                meta,
                records,
                mtime_ms,
            });
        }
        // Replaced or evicted while read: parse the whole log.
    }
    let mut added = read_from(path, id, 0, 0).await?;
    // The header: the first whole line, or a log of one unfinished line.
    let first = if added.records.is_empty() {
        added.tail.take()
    } else {
        Some(added.records.remove(0))
    };
    let meta = match first {
        Some(Record::Session(meta)) => meta,
        Some(_) => return Err(corrupt(id, "first record is not the session header".into())),
        None => return Err(corrupt(id, "empty log".into())),
    };
    let records = if added.advance == 0 {
        // Nothing whole yet: nothing to cache.
        added.records
    } else {
        locked(cache)?.insert(id, inode, &meta, added)
    };
    Ok(Log {
        meta,
        records,
        mtime_ms,
    })
}
