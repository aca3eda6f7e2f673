//! Themes: `themes/*.toml` maps of colour keys. Dark is the base; any other theme (shipped or the
//! user's) sets only the keys it changes. A bad theme names the key and falls back to dark.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};

const DARK: &str = include_str!("../../themes/dark.toml");
const LIGHT: &str = include_str!("../../themes/light.toml");
const HIGH_CONTRAST: &str = include_str!("../../themes/high-contrast.toml");

/// Names of the themes compiled into the binary.
pub const BUILTIN: &[&str] = &["dark", "light", "high-contrast"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThemeError {
    #[error("theme {origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("theme {origin}: unknown key `{key}` (known keys: {known})")]
    UnknownKey {
        origin: String,
        key: String,
        known: String,
    },
    #[error(
        "theme {origin}: key `{key}` has a bad colour {value:?}; use a name (red), \"#rrggbb\" or 0..255"
    )]
    BadColor {
        origin: String,
        key: String,
        value: String,
    },
    #[error("theme `{name}` not found (built in: {builtin}; or a path to a .toml file)")]
    NotFound { name: String, builtin: String },
    #[error("theme {origin}: cannot read it: {message}")]
    Io { origin: String, message: String },
}

macro_rules! theme_struct {
    ($($key:ident),* $(,)?) => {
        /// Every colour the TUI draws with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Theme {
            $(pub $key: Color,)*
        }

        const KEYS: &[&str] = &[$(stringify!($key)),*];

        impl Theme {
            fn set(&mut self, key: &str, color: Color) -> bool {
                match key {
                    $(stringify!($key) => { self.$key = color; true })*
                    _ => false,
                }
            }
        }
    };
}

theme_struct!(
    background,
    foreground,
    muted,
    border,
    border_focused,
    title,
    title_focused,
    accent,
    selection_bg,
    selection_fg,
    ok,
    warn,
    error,
    info,
    gauge_fill,
    gauge_empty,
    gauge_high,
    progress,
);

impl Default for Theme {
    fn default() -> Self {
        Self::dark()
    }
}

impl Theme {
    /// The compiled-in dark theme; its file is checked by a unit test, so the fallback never fails.
    pub fn dark() -> Self {
        let mut theme = Self::plain();
        // A broken shipped file would leave the plain colours: readable, and the unit test catches it.
        let _ = theme.apply_toml(DARK, "dark");
        theme
    }

    /// Terminal default colours everywhere; the base the dark file is applied to.
    fn plain() -> Self {
        Self {
            background: Color::Reset,
            foreground: Color::Reset,
            muted: Color::DarkGray,
            border: Color::DarkGray,
            border_focused: Color::Cyan,
            title: Color::Reset,
            title_focused: Color::Cyan,
            accent: Color::Magenta,
            selection_bg: Color::Blue,
            selection_fg: Color::White,
            ok: Color::Green,
            warn: Color::Yellow,
            error: Color::Red,
            info: Color::Cyan,
            gauge_fill: Color::Blue,
            gauge_empty: Color::Black,
            gauge_high: Color::Red,
            progress: Color::Green,
        }
    }

    /// Applies the keys of a theme file over `self`; all or nothing.
    pub fn apply_toml(&mut self, text: &str, origin: &str) -> Result<(), ThemeError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ThemeError::Syntax {
            origin: origin.to_owned(),
            message: e.message().to_owned(),
        })?;
        let mut next = *self;
        for (key, value) in &table {
            let bad = || ThemeError::BadColor {
                origin: origin.to_owned(),
                key: key.clone(),
                value: value.to_string(),
            };
            let color = match value {
                toml::Value::String(s) => Color::from_str(s).map_err(|_| bad())?,
                toml::Value::Integer(i) => {
                    u8::try_from(*i).map(Color::Indexed).map_err(|_| bad())?
                }
                _ => return Err(bad()),
            };
            if !next.set(key, color) {
                return Err(ThemeError::UnknownKey {
                    origin: origin.to_owned(),
                    key: key.clone(),
                    known: KEYS.join(", "),
                });
            }
        }
        *self = next;
        Ok(())
    }

    /// Dark with the named theme merged over it. `name` is a built-in name, a path to a .toml
    /// file, or NAME looked up as `NAME.toml` in `search` folders.
    pub fn load(name: &str, search: &[PathBuf]) -> Result<Self, ThemeError> {
        let mut theme = Self::dark();
        let builtin = match name {
            "dark" => Some(DARK),
            "light" => Some(LIGHT),
            "high-contrast" => Some(HIGH_CONTRAST),
            _ => None,
        };
        if let Some(text) = builtin {
            theme.apply_toml(text, name)?;
            return Ok(theme);
        }
        let path = find_theme_file(name, search).ok_or_else(|| ThemeError::NotFound {
            name: name.to_owned(),
            builtin: BUILTIN.join(", "),
        })?;
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ThemeError::Io {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        theme.apply_toml(&text, &origin)?;
        Ok(theme)
    }

    /// `load`, falling back to dark; the error (if any) is returned for the status line.
    pub fn load_or_dark(name: &str, search: &[PathBuf]) -> (Self, Option<String>) {
        match Self::load(name, search) {
            Ok(theme) => (theme, None),
            Err(e) => {
                tracing::warn!("{e}; using the dark theme");
                (Self::dark(), Some(format!("{e}; using the dark theme")))
            }
        }
    }

    pub fn text(&self) -> Style {
        Style::new().fg(self.foreground).bg(self.background)
    }
    pub fn muted(&self) -> Style {
        Style::new().fg(self.muted)
    }
    pub fn border(&self, focused: bool) -> Style {
        Style::new().fg(if focused {
            self.border_focused
        } else {
            self.border
        })
    }
    pub fn title(&self, focused: bool) -> Style {
        if focused {
            Style::new()
                .fg(self.title_focused)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(self.title)
        }
    }
    pub fn selected(&self) -> Style {
        Style::new().fg(self.selection_fg).bg(self.selection_bg)
    }
}

fn find_theme_file(name: &str, search: &[PathBuf]) -> Option<PathBuf> {
    let as_path = Path::new(name);
    if as_path.extension().is_some_and(|e| e == "toml") && as_path.is_file() {
        return Some(as_path.to_path_buf());
    }
    search
        .iter()
        .map(|dir| dir.join(format!("{name}.toml")))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_themes_parse_and_set_every_key() {
        for (name, text) in [
            ("dark", DARK),
            ("light", LIGHT),
            ("high-contrast", HIGH_CONTRAST),
        ] {
            let table: toml::Table = toml::from_str(text).unwrap();
            assert_eq!(table.len(), KEYS.len(), "{name} sets every key");
            let mut theme = Theme::plain();
            theme.apply_toml(text, name).unwrap();
        }
        assert_eq!(Theme::dark().accent, Color::Rgb(0xbb, 0x9a, 0xf7));
        assert_eq!(
            Theme::load("high-contrast", &[]).unwrap().foreground,
            Color::White
        );
    }

    #[test]
    fn user_theme_sets_only_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine.toml"), "accent = \"red\"\n").unwrap();
        let theme = Theme::load("mine", &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(theme.accent, Color::Red);
        assert_eq!(theme.foreground, Theme::dark().foreground);
    }

    #[test]
    fn bad_theme_names_the_key_and_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.toml"),
            "accent = \"red\"\nfoo = \"blue\"\n",
        )
        .unwrap();
        let (theme, err) = Theme::load_or_dark("bad", &[dir.path().to_path_buf()]);
        assert_eq!(theme, Theme::dark());
        assert!(err.unwrap().contains("unknown key `foo`"));

        std::fs::write(dir.path().join("color.toml"), "error = \"notacolour\"\n").unwrap();
        let err = Theme::load("color", &[dir.path().to_path_buf()]).unwrap_err();
        assert!(
            err.to_string().contains("key `error` has a bad colour"),
            "{err}"
        );

        let err = Theme::load("nope", &[]).unwrap_err();
        assert!(matches!(err, ThemeError::NotFound { .. }));
    }
}
