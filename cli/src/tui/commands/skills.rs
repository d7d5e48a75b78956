//! `/skills`: the skills on disk, and the current session's.

use super::super::app::App;
use super::super::theme::Role;
use super::ParseError;

/// What `/skills` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SkillsAction {
    List,
    Add(String),
    Remove(String),
}

impl SkillsAction {
    pub(super) fn parse(args: &str) -> Result<Self, ParseError> {
        const USAGE: &str = "/skills [add NAME | remove NAME]";
        let mut words = args.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (None, _, _) => Ok(Self::List),
            (Some("add"), Some(name), None) => Ok(Self::Add(name.to_owned())),
            (Some("remove" | "rm"), Some(name), None) => Ok(Self::Remove(name.to_owned())),
            _ => Err(ParseError::Usage(USAGE)),
        }
    }
}

impl App {
    pub(in crate::tui) async fn refresh_skills(&mut self) -> Vec<String> {
        let skills = self.oh.skills().await.unwrap_or_default();
        if let Ok(mut vocabulary) = self.vocabulary.lock() {
            vocabulary.skills = skills.clone();
        }
        skills
    }

    fn active_skills(&self) -> Vec<String> {
        match &self.session {
            Some(session) => session.info().skills.clone(),
            None => {
                let mut skills = self.config.default_skills.clone();
                for skill in &self.pending.skills {
                    if !skills.contains(skill) {
                        skills.push(skill.clone());
                    }
                }
                skills
            }
        }
    }

    pub(super) async fn skills(&mut self, args: &str) -> anyhow::Result<()> {
        let action = match SkillsAction::parse(args) {
            Ok(action) => action,
            Err(e) => return self.error(&e.to_string()),
        };
        let available = self.refresh_skills().await;
        let mut active = self.active_skills();
        match action {
            SkillsAction::List => return self.list_skills(&available, &active),
            SkillsAction::Add(name) => {
                if !available.contains(&name) {
                    return self.error(&format!(
                        "no skill {name:?} (available: {})",
                        available.join(", ")
                    ));
                }
                if !active.contains(&name) {
                    active.push(name.clone());
                }
            }
            SkillsAction::Remove(name) => {
                if !active.contains(&name) {
                    return self.error(&format!("skill {name:?} is not active"));
                }
                active.retain(|s| *s != name);
            }
        }
        if let Err(e) = self.set_skills(&active).await {
            return self.error(&e.to_string());
        }
        let shown = if active.is_empty() {
            "(none)".to_owned()
        } else {
            active.join(", ")
        };
        self.line(Some(Role::Accent), &format!("skills: {shown}"))
    }

    fn list_skills(&mut self, available: &[String], active: &[String]) -> anyhow::Result<()> {
        if available.is_empty() {
            let dir = self.config.data_dir.as_ref().map(|d| d.join("skills"));
            let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
            return self.dim(&format!("no skills yet: add markdown files to {dir}"));
        }
        let mut out = String::new();
        for name in available {
            out.push_str("  ");
            if active.contains(name) {
                self.styler.paint(Role::Accent, "● ", &mut out);
            } else {
                self.styler.paint(Role::Dim, "○ ", &mut out);
            }
            out.push_str(name);
            out.push('\n');
        }
        self.screen.write(&out)?;
        self.dim("/skills add NAME · /skills remove NAME")
    }

    /// Makes `active` the session's skills, or the skills of the session
    /// the first prompt creates.
    async fn set_skills(&mut self, active: &[String]) -> anyhow::Result<()> {
        if let Some(session) = self.session.as_mut() {
            return Ok(session.set_skills(active.to_vec()).await?);
        }
        let defaults = &self.config.default_skills;
        self.pending.skills = active
            .iter()
            .filter(|s| !defaults.contains(s))
            .cloned()
            .collect();
        if defaults.iter().any(|d| !active.contains(d)) {
            // A default was removed: the session must be created with
            // exactly this list.
            let session = self.ensure_session().await?;
            session.set_skills(active.to_vec()).await?;
        }
        Ok(())
    }
}
