//! The system prompt, assembled per turn in a fixed order (SPEC §3):
//! the introduction line, `---`, the identity from `system.md`, `---`, then
//! each skill as `### <name>` followed by its markdown.

use std::path::{Path, PathBuf};

use openheim_config::check_skill_name;

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
    assemble_as(sources, None, skills, work_dir).await
}

/// Builds the system prompt with `identity` (a sub-agent profile's text)
/// in place of `system.md` when it is given and not empty.
pub async fn assemble_as(
    sources: &PromptSources,
    identity: Option<&str>,
    skills: &[String],
    work_dir: &str,
) -> Result<String, PromptError> {
    let given = identity.filter(|text| !text.trim().is_empty());
    let read = match given {
        Some(text) => Ok(text.to_owned()),
        None => tokio::fs::read_to_string(&sources.identity_file).await,
    };
    let identity = match read {
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
