//! The hosts view (F2): where the TUI's jobs run — this machine's runner, or a `pallaidium
//! serve` listed in the config file (`<PALLAIDIUM_HOME>/config.toml`):
//!
//! ```toml
//! [[hosts]]
//! name = "gpu-box"
//! url = "http://gpu-box:7860"
//! token_file = "/home/me/.config/pallaidium/gpu-box.token"  # optional
//! ```
//!
//! Choosing another host ends the session on the current one (its jobs go on where they run)
//! and starts one on the chosen host.

use std::path::{Path, PathBuf};

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};
use serde::Deserialize;

use super::theme::Theme;

/// One remote server of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    hosts: Vec<HostEntry>,
}

/// Where a session's jobs run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local,
    Remote(HostEntry),
}

/// The config file's hosts; none when the file does not exist. A file that is there but
/// wrong is refused with what to fix (exit 2, before the terminal is taken).
pub fn load(path: &Path) -> crate::Result<Vec<HostEntry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::Error::io(path, e)),
    };
    parse(&text).map_err(|why| {
        crate::Error::bad_input(format!(
            "{}: {why}; each [[hosts]] takes name, url (http://HOST:PORT) and an optional \
             token_file",
            path.display()
        ))
    })
}

fn parse(text: &str) -> Result<Vec<HostEntry>, String> {
    let config: ConfigFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let mut names = std::collections::BTreeSet::new();
    for host in &config.hosts {
        if host.name.trim().is_empty() {
            return Err("a host has an empty name".to_owned());
        }
        if !names.insert(host.name.as_str()) {
            return Err(format!("two hosts are named {:?}", host.name));
        }
        if !(host.url.starts_with("http://") || host.url.starts_with("https://")) {
            return Err(format!(
                "host {:?}: url {:?} is no http:// or https:// URL",
                host.name, host.url
            ));
        }
    }
    Ok(config.hosts)
}

/// What a key in the view asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostsKey {
    Stay,
    Close,
    /// Run jobs on choice `index` (0: this machine, then the hosts in order).
    Switch(usize),
}

/// The list and its selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsView {
    hosts: Vec<HostEntry>,
    /// The choice the session runs on.
    current: usize,
    selected: usize,
    config: PathBuf,
}

impl Default for HostsView {
    fn default() -> Self {
        Self::new(Vec::new(), &Target::Local, PathBuf::from("config.toml"))
    }
}

impl HostsView {
    /// The view of `hosts` with `current` marked; a remote target that the file does not list
    /// (`--host URL` on the command line) is added to the list.
    pub fn new(mut hosts: Vec<HostEntry>, current: &Target, config: PathBuf) -> Self {
        let current = match current {
            Target::Local => 0,
            Target::Remote(host) => match hosts.iter().position(|h| h.url == host.url) {
                Some(i) => i + 1,
                None => {
                    hosts.push(host.clone());
                    hosts.len()
                }
            },
        };
        Self {
            hosts,
            current,
            selected: current,
            config,
        }
    }

    /// Where choice `index` runs jobs.
    pub fn target(&self, index: usize) -> Target {
        match index.checked_sub(1).and_then(|i| self.hosts.get(i)) {
            Some(host) => Target::Remote(host.clone()),
            None => Target::Local,
        }
    }

    pub fn is_local(&self) -> bool {
        self.current == 0
    }

    pub fn open(&mut self) {
        self.selected = self.current;
    }

    pub fn key(&mut self, code: KeyCode) -> HostsKey {
        let last = self.hosts.len();
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = last,
            KeyCode::Enter if self.selected == self.current => return HostsKey::Close,
            KeyCode::Enter => return HostsKey::Switch(self.selected),
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::F(2) => return HostsKey::Close,
            _ => {}
        }
        HostsKey::Stay
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let mut lines = Vec::new();
        let choices = std::iter::once(("this machine".to_owned(), "local runner".to_owned()))
            .chain(self.hosts.iter().map(|h| (h.name.clone(), h.url.clone())));
        for (i, (name, place)) in choices.enumerate() {
            let mark = if i == self.current { "●" } else { " " };
            let style = if i == self.selected {
                theme.selected()
            } else {
                theme.text()
            };
            lines.push(Line::from(vec![
                Span::styled(format!(" {mark} {name:<16} "), style),
                Span::styled(place, theme.muted()),
            ]));
        }
        lines.push(Line::default());
        if self.hosts.is_empty() {
            lines.push(Line::styled(
                " no servers: add [[hosts]] (name, url, token_file) to",
                theme.muted(),
            ));
            lines.push(Line::styled(
                format!(" {}", self.config.display()),
                theme.muted(),
            ));
        }
        lines.push(Line::from(vec![
            Span::styled(" ↑↓ ", Style::new().fg(theme.accent)),
            Span::raw("select  "),
            Span::styled("Enter ", Style::new().fg(theme.accent)),
            Span::raw("run jobs there  "),
            Span::styled("Esc ", Style::new().fg(theme.accent)),
            Span::raw("close"),
        ]));
        let height = (lines.len() as u16 + 2).min(area.height);
        let width = 72.min(area.width);
        let r = Rect::new(
            area.x + (area.width - width) / 2,
            area.y + (area.height - height) / 2,
            width,
            height,
        );
        frame.render_widget(Clear, r);
        let block = Block::bordered()
            .border_type(BorderType::Double)
            .border_style(Style::new().fg(theme.border_focused))
            .title(Line::styled(
                " Hosts: where jobs run ",
                theme.title(true).add_modifier(Modifier::BOLD),
            ))
            .style(theme.text());
        frame.render_widget(Paragraph::new(lines).block(block), r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, url: &str) -> HostEntry {
        HostEntry {
            name: name.into(),
            url: url.into(),
            token_file: None,
        }
    }

    #[test]
    fn the_config_file_lists_hosts_and_wrong_ones_say_what_to_fix() {
        let hosts = parse(
            "[[hosts]]\nname = \"gpu\"\nurl = \"http://gpu:7860\"\ntoken_file = \"/t\"\n\
             [[hosts]]\nname = \"mac\"\nurl = \"https://mac:7860\"\n",
        )
        .unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].token_file.as_deref(), Some(Path::new("/t")));
        assert_eq!(hosts[1], host("mac", "https://mac:7860"));
        assert!(parse("").unwrap().is_empty());
        let bad = |text: &str| parse(text).unwrap_err();
        assert!(bad("[[hosts]]\nname = \"a\"\nurl = \"gpu:7860\"\n").contains("no http://"));
        assert!(bad("[[hosts]]\nname = \"\"\nurl = \"http://a\"\n").contains("empty name"));
        assert!(
            bad("[[hosts]]\nname = \"a\"\nurl = \"http://a\"\n[[hosts]]\nname = \"a\"\nurl = \"http://b\"\n")
                .contains("two hosts")
        );
        assert!(bad("[[hosts]]\nname = \"a\"\nurl = \"http://a\"\nport = 3\n").contains("port"));
    }

    #[test]
    fn a_missing_file_is_no_hosts_and_a_broken_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert!(load(&path).unwrap().is_empty());
        std::fs::write(&path, "[[hosts]]\nname = 3\n").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("config.toml"), "{err}");
    }

    #[test]
    fn keys_move_the_selection_and_enter_switches_elsewhere() {
        let hosts = vec![host("gpu", "http://gpu:7860")];
        let mut view = HostsView::new(hosts.clone(), &Target::Local, "c.toml".into());
        assert!(view.is_local());
        view.open();
        assert_eq!(view.key(KeyCode::Enter), HostsKey::Close, "already here");
        assert_eq!(view.key(KeyCode::Down), HostsKey::Stay);
        assert_eq!(view.key(KeyCode::Down), HostsKey::Stay, "stops at the last");
        assert_eq!(view.key(KeyCode::Enter), HostsKey::Switch(1));
        assert_eq!(view.target(1), Target::Remote(hosts[0].clone()));
        assert_eq!(view.target(0), Target::Local);
        assert_eq!(view.key(KeyCode::Esc), HostsKey::Close);

        // A --host the file does not list joins the list, marked current.
        let other = host("--host", "http://elsewhere:1");
        let view = HostsView::new(hosts, &Target::Remote(other.clone()), "c.toml".into());
        assert!(!view.is_local());
        assert_eq!(view.target(2), Target::Remote(other));
    }
}
