//! What a note is, who sees it, and the rules a new note must pass. The
//! limits here are the ones the tools describe to the model
//! (`docs/memory.md`).

use std::fmt;

use crate::error::MemoryError;

/// Longest note text, in characters (Unicode scalar values).
pub const MAX_NOTE_CHARS: usize = 4_000;
/// Most tags one note may carry.
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 40;
/// Results `search_memory` returns when the call does not say.
pub const DEFAULT_SEARCH_LIMIT: usize = 5;
/// Most results one search may return.
pub const MAX_SEARCH_LIMIT: usize = 20;
/// Longest owner key.
pub const MAX_OWNER_CHARS: usize = 128;
/// Longest project key (a workspace path or a configured project id).
pub const MAX_PROJECT_CHARS: usize = 1_024;
/// The owner of every note until deployments know their users: the one
/// local user of a CLI, or everyone a deployment serves.
pub const DEFAULT_OWNER: &str = "default";

/// Where a note applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every workspace of its owner.
    User,
    /// One project (a workspace path or a configured project id).
    Project,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Project => "project",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(Self::User),
            "project" => Some(Self::Project),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored note.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub id: String,
    pub text: String,
    pub tags: Vec<String>,
    pub owner: String,
    pub scope: Scope,
    /// The project key of a project note; empty for a user note.
    pub project: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Note {
    /// The scope this note lives in.
    pub fn scope_key(&self) -> ScopeKey {
        match self.scope {
            Scope::User => ScopeKey::user(&self.owner),
            Scope::Project => ScopeKey::project(&self.owner, &self.project),
        }
    }
}

/// One (owner, scope, project) partition of the notes, as a string that
/// backends use as a column value or key part: `u:<owner>` or
/// `p:<owner>:<project>`. Owners never contain `:`, so it is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey(String);

impl ScopeKey {
    pub fn user(owner: &str) -> Self {
        Self(format!("u:{owner}"))
    }

    pub fn project(owner: &str, project: &str) -> Self {
        Self(format!("p:{owner}:{project}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_project(&self) -> bool {
        self.0.starts_with("p:")
    }
}

/// Whose notes a caller sees: the owner's user notes and, when `project`
/// is set, that project's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub owner: String,
    pub project: Option<String>,
}

impl View {
    /// A checked view: the owner and project keys follow the rules of
    /// [`check_owner`] and [`check_project`].
    pub fn new(owner: &str, project: Option<&str>) -> Result<Self, MemoryError> {
        check_owner(owner)?;
        if let Some(project) = project {
            check_project(project)?;
        }
        Ok(Self {
            owner: owner.to_owned(),
            project: project.map(str::to_owned),
        })
    }

    /// The scopes visible here, project first.
    pub fn scope_keys(&self) -> Vec<ScopeKey> {
        let mut keys = Vec::with_capacity(2);
        if let Some(project) = &self.project {
            keys.push(ScopeKey::project(&self.owner, project));
        }
        keys.push(ScopeKey::user(&self.owner));
        keys
    }

    /// Whether `note` is visible in this view.
    pub fn sees(&self, note: &Note) -> bool {
        note.owner == self.owner
            && match note.scope {
                Scope::User => true,
                Scope::Project => self.project.as_deref() == Some(note.project.as_str()),
            }
    }
}

/// Which notes a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// What a view sees.
    View(View),
    /// Every note of an owner, whatever its project.
    Owner(String),
}

/// A note as a caller asks for it, before it is checked and stored.
#[derive(Debug, Clone)]
pub struct NewNote {
    pub owner: String,
    pub scope: Scope,
    /// Required for a project note, ignored for a user note.
    pub project: Option<String>,
    pub text: String,
    pub tags: Vec<String>,
}

/// Checks a new note: text present and within [`MAX_NOTE_CHARS`], tags
/// within their limits. Returns the text trimmed and the tags trimmed and
/// without duplicates (first spelling kept).
pub fn check_new(note: &NewNote) -> Result<(String, Vec<String>), MemoryError> {
    check_owner(&note.owner)?;
    if note.scope == Scope::Project {
        match &note.project {
            Some(project) => check_project(project)?,
            None => {
                return Err(MemoryError::Invalid(
                    "a project note needs a project (a workspace or `memory.project`)".into(),
                ));
            }
        }
    }
    let text = note.text.trim();
    if text.is_empty() {
        return Err(MemoryError::Invalid(
            "the note is empty: give the text to remember".into(),
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(MemoryError::Invalid(format!(
            "the note has {chars} characters; the limit is {MAX_NOTE_CHARS}: shorten it or split it into several notes"
        )));
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in &note.tags {
        let tag = tag.trim();
        if tag.is_empty() {
            return Err(MemoryError::Invalid("a tag is empty".into()));
        }
        if tag.chars().count() > MAX_TAG_CHARS || tag.chars().any(char::is_control) {
            return Err(MemoryError::Invalid(format!(
                "tag {:?} is invalid: at most {MAX_TAG_CHARS} characters, no control characters",
                tag.chars().take(MAX_TAG_CHARS + 10).collect::<String>()
            )));
        }
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            tags.push(tag.to_owned());
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(MemoryError::Invalid(format!(
            "{} tags given; the limit is {MAX_TAGS}",
            tags.len()
        )));
    }
    Ok((text.to_owned(), tags))
}

/// An owner key: 1 to [`MAX_OWNER_CHARS`] of `A-Z a-z 0-9 _ - . @`, so it
/// fits a key or column and never contains the scope key's separator.
pub fn check_owner(owner: &str) -> Result<(), MemoryError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@');
    if owner.is_empty() || owner.len() > MAX_OWNER_CHARS || !owner.chars().all(allowed) {
        return Err(MemoryError::Invalid(format!(
            "invalid owner {:?}",
            owner.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// A project key: non-empty, at most [`MAX_PROJECT_CHARS`], no control
/// characters.
pub fn check_project(project: &str) -> Result<(), MemoryError> {
    if project.is_empty()
        || project.chars().count() > MAX_PROJECT_CHARS
        || project.chars().any(char::is_control)
    {
        return Err(MemoryError::Invalid(format!(
            "invalid project key {:?}",
            project.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// Note ids are generated by us (12 lowercase hex digits); anything else
/// is refused before it reaches a query or a key.
pub fn check_id(id: &str) -> Result<(), MemoryError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(MemoryError::NotFound(id.chars().take(80).collect()))
    }
}

/// A fresh note id: 48 random bits as 12 hex digits, short enough for a
/// model to copy into `forget`.
pub fn new_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYY-MM-DD` (UTC) of a Unix time in milliseconds, as notes show their
/// dates (tool results, the CLI, the TUI).
pub fn utc_date(ms: i64) -> String {
    openheim_time::UtcTime::from_unix_ms(ms).date()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(text: &str, tags: &[&str]) -> NewNote {
        NewNote {
            owner: DEFAULT_OWNER.into(),
            scope: Scope::User,
            project: None,
            text: text.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn text_must_be_present_and_within_the_limit() {
        assert!(check_new(&new("  \n ", &[])).is_err());
        let at_limit = "é".repeat(MAX_NOTE_CHARS);
        assert!(check_new(&new(&at_limit, &[])).is_ok());
        let over = format!("{at_limit}x");
        let error = check_new(&new(&over, &[])).unwrap_err().to_string();
        assert!(
            error.contains("4001 characters") && error.contains("4000"),
            "{error}"
        );
    }

    #[test]
    fn tags_are_trimmed_deduplicated_and_bounded() {
        let (_, tags) = check_new(&new("x", &[" ci ", "CI", "build"])).unwrap();
        assert_eq!(tags, ["ci", "build"]);
        assert!(check_new(&new("x", &[""])).is_err());
        assert!(check_new(&new("x", &[&"t".repeat(41)])).is_err());
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(check_new(&new("x", &many)).is_err());
    }

    #[test]
    fn project_notes_need_a_project_and_views_see_their_scopes() {
        let mut note = new("x", &[]);
        note.scope = Scope::Project;
        assert!(check_new(&note).is_err());
        let view = View::new("default", Some("/w/a")).unwrap();
        assert_eq!(
            view.scope_keys(),
            [
                ScopeKey::project("default", "/w/a"),
                ScopeKey::user("default")
            ]
        );
        assert!(View::new("a:b", None).is_err());
        assert!(View::new("me", Some("bad\nproject")).is_err());
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(1_796_083_200_000), "2026-12-01");
        assert_eq!(utc_date(-86_400_000), "1969-12-31");
    }

    #[test]
    fn ids_are_short_hex_and_checked() {
        let id = new_id();
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(check_id(&id).is_ok());
        assert!(check_id("../x").is_err());
        assert!(check_id("").is_err());
    }
}
