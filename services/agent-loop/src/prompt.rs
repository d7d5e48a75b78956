//! The system prompt, assembled per turn in a fixed order
//! (docs/configuration.md, "System prompt"): the introduction line, `---`,
//! the identity from `system.md`, `---`, each skill as `### <name>`
//! followed by its markdown, then the project's instructions (`AGENTS.md`
//! and `project_instructions`) under `## Project instructions`.

use std::path::{Path, PathBuf};

use openheim_config::check_skill_name;

/// The file of project instructions read from every workspace's root.
pub const AGENTS_FILE: &str = "AGENTS.md";

/// The most bytes of project instructions one system prompt carries, all
/// files together; the rest is cut with a note.
pub const PROJECT_INSTRUCTIONS_MAX_BYTES: usize = 32 * 1024;

/// Heading of the project-instructions section.
pub const PROJECT_INSTRUCTIONS_HEADING: &str = "## Project instructions";

/// First line of every system prompt.
pub const INTRODUCTION: &str = "You are openheim, a general-purpose agent that works with any of several LLM providers and uses tools in the user's workspace.";

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("identity file {0} is missing: run `openheim init` to create it")]
    MissingIdentity(PathBuf),
    #[error("skill {name:?} not found in {dir} (available: {available})")]
    UnknownSkill {
        name: String,
        dir: PathBuf,
        available: String,
    },
    #[error("{0}")]
    InvalidSkill(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where identity and skills are read from.
#[derive(Debug, Clone)]
pub struct PromptSources {
    pub identity_file: PathBuf,
    pub skills_dir: PathBuf,
}

impl PromptSources {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            identity_file: data_dir.join("system.md"),
            skills_dir: data_dir.join("skills"),
        }
    }
}

/// `defaults` then `extra`, without duplicates, in that order.
pub fn merge_skills(defaults: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(defaults.len() + extra.len());
    for name in defaults.iter().chain(extra) {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// Checks that every skill exists, so a typo fails when the session is
/// created rather than on its first turn.
pub async fn check_skills(sources: &PromptSources, skills: &[String]) -> Result<(), PromptError> {
    for name in skills {
        read_skill(sources, name).await?;
    }
    Ok(())
}

/// Builds the system prompt for one turn.
pub async fn assemble(
    sources: &PromptSources,
    skills: &[String],
    work_dir: &str,
) -> Result<String, PromptError> {
    let identity = match tokio::fs::read_to_string(&sources.identity_file).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PromptError::MissingIdentity(sources.identity_file.clone()));
        }
        Err(source) => {
            return Err(PromptError::Io {
                path: sources.identity_file.clone(),
                source,
            });
        }
    };
    let mut prompt = String::with_capacity(1024 + identity.len());
    prompt.push_str(INTRODUCTION);
    prompt.push_str("\nThe workspace is ");
    prompt.push_str(work_dir);
    prompt.push_str("; give file tools paths relative to it.\n---\n");
    prompt.push_str(identity.trim_end());
    prompt.push('\n');
    if !skills.is_empty() {
        prompt.push_str("---\n");
        for name in skills {
            let text = read_skill(sources, name).await?;
            prompt.push_str("### ");
            prompt.push_str(name);
            prompt.push('\n');
            prompt.push_str(text.trim_end());
            prompt.push('\n');
        }
    }
    Ok(prompt)
}

/// One file of project instructions as read from the workspace: `text`
/// holds at most the bytes it was allowed, `size` is the whole file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionFile {
    /// The path as configured, relative to the workspace.
    pub name: String,
    pub text: String,
    pub size: u64,
}

/// Appends the project instructions (if any) after the skills: a `---`,
/// the heading, then each file as `### <path>` with its text, and a note
/// where a file was cut to fit [`PROJECT_INSTRUCTIONS_MAX_BYTES`].
pub fn push_project_instructions(prompt: &mut String, files: &[InstructionFile]) {
    let files: Vec<&InstructionFile> = files.iter().filter(|f| f.size > 0).collect();
    if files.is_empty() {
        return;
    }
    prompt.push_str("---\n");
    prompt.push_str(PROJECT_INSTRUCTIONS_HEADING);
    prompt.push('\n');
    for file in files {
        prompt.push_str("### ");
        prompt.push_str(&file.name);
        prompt.push('\n');
        prompt.push_str(file.text.trim_end());
        prompt.push('\n');
        if (file.text.len() as u64) < file.size {
            prompt.push_str(&format!(
                "[{} truncated: {} of its {} bytes shown (limit {} bytes for all project instructions)]\n",
                file.name,
                file.text.len(),
                file.size,
                PROJECT_INSTRUCTIONS_MAX_BYTES
            ));
        }
    }
}

/// The longest prefix of `bytes` (at most `limit` long) that is whole
/// UTF-8, as text; invalid sequences inside become U+FFFD.
pub fn text_prefix(bytes: &[u8], limit: usize) -> String {
    let mut end = bytes.len().min(limit);
    // A cut inside a multi-byte character: back up to its start.
    while end > 0 && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

async fn read_skill(sources: &PromptSources, name: &str) -> Result<String, PromptError> {
    check_skill_name(name).map_err(PromptError::InvalidSkill)?;
    let path = sources.skills_dir.join(format!("{name}.md"));
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PromptError::UnknownSkill {
            name: name.to_owned(),
            dir: sources.skills_dir.clone(),
            available: available_skills(&sources.skills_dir).await.join(", "),
        }),
        Err(source) => Err(PromptError::Io { path, source }),
    }
}

/// Names of the skills in `dir` (`*.md`), sorted.
pub async fn available_skills(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some("md")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                names.push(stem.to_owned());
            }
        }
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PromptSources) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("system.md"), "I am Ada.\n").unwrap();
        std::fs::create_dir(dir.path().join("skills")).unwrap();
        std::fs::write(dir.path().join("skills/rust.md"), "Use clippy.\n").unwrap();
        std::fs::write(dir.path().join("skills/tests.md"), "Test first.").unwrap();
        let sources = PromptSources::in_data_dir(dir.path());
        (dir, sources)
    }

    #[tokio::test]
    async fn assembles_in_the_specified_order() {
        let (_dir, sources) = setup();
        let skills = merge_skills(&["rust".into()], &["tests".into(), "rust".into()]);
        let prompt = assemble(&sources, &skills, "/w").await.unwrap();
        assert_eq!(
            prompt,
            format!(
                "{INTRODUCTION}\nThe workspace is /w; give file tools paths relative to it.\n---\nI am Ada.\n---\n### rust\nUse clippy.\n### tests\nTest first.\n"
            )
        );
    }

    #[test]
    fn project_instructions_follow_the_skills_and_say_when_cut() {
        let mut prompt = "skills\n".to_owned();
        push_project_instructions(&mut prompt, &[]);
        assert_eq!(prompt, "skills\n");
        let files = [
            InstructionFile {
                name: "AGENTS.md".into(),
                text: "Run make check.\n".into(),
                size: 16,
            },
            InstructionFile {
                name: "docs/empty.md".into(),
                text: String::new(),
                size: 0,
            },
            InstructionFile {
                name: "docs/long.md".into(),
                text: "abc".into(),
                size: 10,
            },
        ];
        push_project_instructions(&mut prompt, &files);
        assert_eq!(
            prompt,
            format!(
                "skills\n---\n## Project instructions\n### AGENTS.md\nRun make check.\n### docs/long.md\nabc\n[docs/long.md truncated: 3 of its 10 bytes shown (limit {PROJECT_INSTRUCTIONS_MAX_BYTES} bytes for all project instructions)]\n"
            )
        );
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        assert_eq!(text_prefix("aé".as_bytes(), 2), "a");
        assert_eq!(text_prefix("aé".as_bytes(), 3), "aé");
        assert_eq!(text_prefix(b"abc", 10), "abc");
    }

    #[tokio::test]
    async fn errors_name_what_to_fix() {
        let (dir, sources) = setup();
        let err = assemble(&sources, &["nope".into()], "/w")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("available: rust, tests"), "{err}");
        let err = assemble(&sources, &["../system".into()], "/w")
            .await
            .unwrap_err();
        assert!(matches!(err, PromptError::InvalidSkill(_)));
        std::fs::remove_file(dir.path().join("system.md")).unwrap();
        let err = assemble(&sources, &[], "/w").await.unwrap_err();
        assert!(err.to_string().contains("openheim init"), "{err}");
    }
}
