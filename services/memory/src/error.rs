//! The memory's error type: what went wrong, in words a model (or a user)
//! can act on, and whether trying again may help.

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The request itself is wrong (empty or oversized note, bad tag): fix
    /// it and call again.
    #[error("{0}")]
    Invalid(String),
    /// No note with this id is visible to the caller.
    #[error("no note with id {0:?}")]
    NotFound(String),
    /// Another process holds the database's write lock beyond the wait.
    #[error("the memory database is busy (locked by another process): {0}")]
    Locked(String),
    /// The storage cannot be reached right now (Redis down, a file that
    /// cannot be opened): worth trying again later.
    #[error("memory storage is unavailable: {0}")]
    Unavailable(String),
    /// The stored data cannot be read (not a database, damaged records).
    #[error("memory storage is unreadable: {0}")]
    Corrupt(String),
    /// The storage refused a command for another reason.
    #[error("memory storage error: {0}")]
    Backend(String),
}

impl MemoryError {
    /// Whether the same call may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Locked(_) | Self::Unavailable(_) => true,
            Self::Invalid(_) | Self::NotFound(_) | Self::Corrupt(_) | Self::Backend(_) => false,
        }
    }
}

/// An [`crate::Embedder`] could not turn texts into vectors; the note is
/// stored (or the search run) without them.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EmbedError(Box<dyn std::error::Error + Send + Sync>);

impl EmbedError {
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(cause.into())
    }
}
