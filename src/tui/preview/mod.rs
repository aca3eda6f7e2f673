//! Which image protocol the preview uses: a terminal query with a deadline (`probe`, tmux
//! passthrough aware), environment hints, halfblocks last; or the protocol the user forces.

pub mod control;
pub mod probe;
pub mod typed_ahead;
pub mod video;
pub mod waveform;

use std::str::FromStr;
use std::time::Duration;

use crossterm::event::Event;
use ratatui_image::picker::{Picker, ProtocolType};

/// `--preview-protocol` (or PALLAIDIUM_PREVIEW_PROTOCOL, `Switches::preview_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreviewProtocol {
    #[default]
    Auto,
    Kitty,
    Iterm,
    Sixel,
    Halfblocks,
    None,
}

impl FromStr for PreviewProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "kitty" => Self::Kitty,
            "iterm" | "iterm2" => Self::Iterm,
            "sixel" => Self::Sixel,
            "halfblocks" => Self::Halfblocks,
            "none" | "off" => Self::None,
            other => {
                return Err(format!(
                    "preview protocol {other:?} is unknown; use auto, kitty, iterm, sixel, halfblocks or none"
                ));
            }
        })
    }
}

/// How long the terminal gets to answer the capability query (tmux over SSH can be slow).
const QUERY_TIMEOUT: Duration = Duration::from_millis(800);

/// The preview's picker (`None`: previews off) and the keys typed while the terminal was asked.
pub struct PreviewSetup {
    pub picker: Option<Picker>,
    pub typed: Vec<Event>,
}

impl PreviewProtocol {
    /// Builds the picker. Must run after entering raw mode and before the input reader starts
    /// (the query reads stdin); the keys it read meanwhile come back in `typed`.
    pub fn picker(self) -> PreviewSetup {
        let forced = match self {
            Self::None => {
                return PreviewSetup {
                    picker: None,
                    typed: Vec::new(),
                };
            }
            // Nothing to ask: halfblocks need no cell size.
            Self::Halfblocks => {
                return PreviewSetup {
                    picker: Some(Picker::halfblocks()),
                    typed: Vec::new(),
                };
            }
            Self::Auto => None,
            Self::Kitty => Some(ProtocolType::Kitty),
            Self::Iterm => Some(ProtocolType::Iterm2),
            Self::Sixel => Some(ProtocolType::Sixel),
        };
        let probed = probe::probe(QUERY_TIMEOUT, forced);
        PreviewSetup {
            picker: Some(probed.picker),
            typed: probed.typed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_rejects_others() {
        for (s, p) in [
            ("auto", PreviewProtocol::Auto),
            ("Kitty", PreviewProtocol::Kitty),
            ("iterm", PreviewProtocol::Iterm),
            ("sixel", PreviewProtocol::Sixel),
            ("halfblocks", PreviewProtocol::Halfblocks),
            ("none", PreviewProtocol::None),
        ] {
            assert_eq!(s.parse::<PreviewProtocol>(), Ok(p));
        }
        // Every word PALLAIDIUM_PREVIEW_PROTOCOL accepts at start parses here too.
        for word in crate::platform::switches::PREVIEW_PROTOCOLS {
            assert!(word.parse::<PreviewProtocol>().is_ok(), "{word}");
        }
        assert!(
            "png"
                .parse::<PreviewProtocol>()
                .unwrap_err()
                .contains("halfblocks")
        );
        assert!(PreviewProtocol::None.picker().picker.is_none());
        assert_eq!(
            PreviewProtocol::Halfblocks
                .picker()
                .picker
                .map(|p| p.protocol_type()),
            Some(ProtocolType::Halfblocks)
        );
    }
}
