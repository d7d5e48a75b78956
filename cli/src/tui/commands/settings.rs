//! `/theme` and `/thinking`: how the UI looks and how hard the model
//! reasons.

use super::super::app::App;
use super::super::theme::{Role, Styler, Theme};

impl App {
    pub(super) fn theme(&mut self, name: Option<String>) -> anyhow::Result<()> {
        let Some(name) = name else {
            let mut out = String::new();
            for theme in Theme::ALL {
                let styler = Styler::new(theme, self.styler.color());
                out.push_str(if theme == self.styler.theme() {
                    "  ● "
                } else {
                    "    "
                });
                styler.paint(Role::Heading, theme.name(), &mut out);
                out.push('\n');
            }
            self.screen.write(&out)?;
            return self.dim(&format!(
                "theme: {} · switch with /theme NAME",
                self.styler.theme()
            ));
        };
        let theme = match name.parse::<Theme>() {
            Ok(theme) => theme,
            Err(e) => return self.error(&e.to_string()),
        };
        self.styler = Styler::new(theme, self.styler.color());
        self.config.ui.theme = theme.name().to_owned();
        let file = self.options.config_file.clone();
        match openheim_config::set_file_value(&file, "ui.theme", theme.name()) {
            Ok(()) => self.line(
                Some(Role::Accent),
                &format!("theme: {theme} (saved to {})", file.display()),
            )?,
            Err(e) => self.error(&format!("theme: {theme}, but it could not be saved: {e}"))?,
        }
        if !self.styler.color() {
            self.dim("colours are off here (NO_COLOR or not a terminal)")?;
        }
        Ok(())
    }

    /// `/thinking [setting]`: shows or sets the session's reasoning
    /// setting, sent with each of its turns.
    pub(super) fn thinking(&mut self, setting: Option<String>) -> anyhow::Result<()> {
        let label = |t: Option<openheim_config::Thinking>| {
            t.map_or_else(|| "default (as configured)".to_owned(), |t| t.to_string())
        };
        let Some(setting) = setting else {
            let current = label(self.options.thinking);
            self.line(Some(Role::Accent), &format!("thinking: {current}"))?;
            return self.dim("set with /thinking off|low|medium|high|TOKENS|default");
        };
        let parsed = match setting.as_str() {
            "default" => Ok(None),
            other => openheim_config::Thinking::parse(other).map(Some),
        };
        match parsed {
            Ok(thinking) => {
                self.options.thinking = thinking;
                let label = label(thinking);
                self.line(Some(Role::Accent), &format!("thinking: {label}"))
            }
            Err(reason) => self.error(&reason.to_string()),
        }
    }
}
