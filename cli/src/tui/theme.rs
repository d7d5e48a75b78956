//! Colour themes and the [`Styler`] that turns semantic roles into SGR
//! escape sequences, or into nothing at all when colour is off (`NO_COLOR`,
//! `TERM=dumb`, output that is not a terminal).

use std::fmt;
use std::str::FromStr;

/// A named colour theme: the accent used for the prompt, headings, bullets
/// and tool markers. Diff and status colours are the same in every theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Theme {
    #[default]
    Green,
    Blue,
    Red,
    White,
    Cyan,
    Magenta,
    Yellow,
}

impl Theme {
    pub(super) const ALL: [Theme; 7] = [
        Theme::Green,
        Theme::Blue,
        Theme::Red,
        Theme::White,
        Theme::Cyan,
        Theme::Magenta,
        Theme::Yellow,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Theme::Green => "green",
            Theme::Blue => "blue",
            Theme::Red => "red",
            Theme::White => "white",
            Theme::Cyan => "cyan",
            Theme::Magenta => "magenta",
            Theme::Yellow => "yellow",
        }
    }
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown theme {0:?} (themes: green, blue, red, white, cyan, magenta, yellow)")]
pub(super) struct UnknownTheme(pub String);

impl FromStr for Theme {
    type Err = UnknownTheme;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Theme::ALL
            .into_iter()
            .find(|t| t.name() == wanted)
            .ok_or_else(|| UnknownTheme(s.to_owned()))
    }
}

/// What a piece of text is; the [`Styler`] decides how it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Prompt marker, bullets, list numbers, tool markers.
    Accent,
    /// Markdown headings.
    Heading,
    /// Inline code and code blocks.
    Code,
    /// Thinking, secondary details, durations, quotes.
    Dim,
    Bold,
    Italic,
    /// Links (underlined).
    Link,
    /// Diff: added lines.
    Added,
    /// Diff: removed lines.
    Removed,
    /// ✓ of a finished tool call.
    Success,
    /// ✗ of a failed tool call, errors.
    Error,
    /// Notices and warnings.
    Warning,
}

/// Writes styled text. With colour off it writes the text only, never an
/// escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Styler {
    theme: Theme,
    color: bool,
}

impl Styler {
    pub(super) fn new(theme: Theme, color: bool) -> Self {
        Self { theme, color }
    }

    /// No colour at all.
    #[cfg(test)]
    pub(super) fn plain() -> Self {
        Self::new(Theme::default(), false)
    }

    pub(super) fn theme(&self) -> Theme {
        self.theme
    }

    pub(super) fn color(&self) -> bool {
        self.color
    }

    /// Appends `text` in `role`, then resets.
    pub(super) fn paint(&self, role: Role, text: &str, out: &mut String) {
        self.set(&[role], out);
        out.push_str(text);
        self.set(&[], out);
    }

    /// `text` in `role` as a new string.
    #[cfg(test)]
    pub(super) fn painted(&self, role: Role, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 12);
        self.paint(role, text, &mut out);
        out
    }

    /// Makes `roles` (combined) the current style: a reset followed by
    /// their attributes. `&[]` is a plain reset. Writes nothing without
    /// colour.
    pub(super) fn set(&self, roles: &[Role], out: &mut String) {
        if !self.color {
            return;
        }
        out.push_str("\x1b[0");
        for role in roles {
            for code in self.codes(*role) {
                out.push(';');
                out.push_str(code);
            }
        }
        out.push('m');
    }

    fn codes(&self, role: Role) -> &'static [&'static str] {
        match role {
            Role::Accent => accent_codes(self.theme, false),
            Role::Heading => accent_codes(self.theme, true),
            Role::Code => code_codes(self.theme),
            Role::Dim => &["2"],
            Role::Bold => &["1"],
            Role::Italic => &["3"],
            Role::Link => &["4"],
            Role::Added => &["32"],
            Role::Removed => &["31"],
            Role::Success => &["32"],
            Role::Error => &["31"],
            Role::Warning => &["33"],
        }
    }
}

fn accent_codes(theme: Theme, bold: bool) -> &'static [&'static str] {
    // Bright variants: readable on dark and light backgrounds alike.
    match (theme, bold) {
        (Theme::Green, false) => &["92"],
        (Theme::Green, true) => &["1", "92"],
        (Theme::Blue, false) => &["94"],
        (Theme::Blue, true) => &["1", "94"],
        (Theme::Red, false) => &["91"],
        (Theme::Red, true) => &["1", "91"],
        (Theme::White, false) => &["97"],
        (Theme::White, true) => &["1", "97"],
        (Theme::Cyan, false) => &["96"],
        (Theme::Cyan, true) => &["1", "96"],
        (Theme::Magenta, false) => &["95"],
        (Theme::Magenta, true) => &["1", "95"],
        (Theme::Yellow, false) => &["93"],
        (Theme::Yellow, true) => &["1", "93"],
    }
}

/// Code stands out in every theme: yellow, or cyan where yellow is the accent.
fn code_codes(theme: Theme) -> &'static [&'static str] {
    match theme {
        Theme::Yellow => &["36"],
        _ => &["33"],
    }
}

/// Whether to colour output: `NO_COLOR` (any non-empty value) and
/// `TERM=dumb` turn colour off, as does output that is not a terminal.
pub(super) fn color_enabled(is_tty: bool, no_color: Option<&str>, term: Option<&str>) -> bool {
    is_tty && no_color.is_none_or(str::is_empty) && term != Some("dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn themes_parse_case_insensitively_and_round_trip() {
        for theme in Theme::ALL {
            assert_eq!(theme.name().parse::<Theme>(), Ok(theme));
            assert_eq!(theme.name().to_uppercase().parse::<Theme>(), Ok(theme));
        }
        let err = "purple".parse::<Theme>().unwrap_err();
        assert!(err.to_string().contains("green, blue"), "{err}");
    }

    #[test]
    fn plain_styler_writes_no_escape_codes() {
        let s = Styler::plain();
        let mut out = String::new();
        s.paint(Role::Heading, "Title", &mut out);
        s.set(&[Role::Bold, Role::Code], &mut out);
        out.push('x');
        s.set(&[], &mut out);
        assert_eq!(out, "Titlex");
    }

    #[test]
    fn each_theme_has_its_own_accent() {
        let mut seen = std::collections::HashSet::new();
        for theme in Theme::ALL {
            let painted = Styler::new(theme, true).painted(Role::Accent, "›");
            assert!(painted.starts_with("\x1b[0;"), "{painted:?}");
            assert!(painted.ends_with("\x1b[0m"), "{painted:?}");
            assert!(
                seen.insert(painted),
                "{theme} repeats another theme's accent"
            );
        }
    }

    #[test]
    fn roles_combine_into_one_sequence() {
        let mut out = String::new();
        Styler::new(Theme::Blue, true).set(&[Role::Heading, Role::Italic], &mut out);
        assert_eq!(out, "\x1b[0;1;94;3m");
    }

    #[test]
    fn no_color_and_dumb_terminals_turn_colour_off() {
        assert!(color_enabled(true, None, Some("xterm-256color")));
        assert!(color_enabled(true, Some(""), None));
        assert!(!color_enabled(true, Some("1"), None));
        assert!(!color_enabled(true, None, Some("dumb")));
        assert!(!color_enabled(false, None, None));
    }
}
