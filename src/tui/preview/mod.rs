//! Which image protocol the preview uses: guess from the environment, confirm with a terminal
//! query that has a timeout (ratatui-image's picker, tmux passthrough aware), halfblocks last.

pub mod waveform;

use std::str::FromStr;
use std::time::Duration;

use ratatui_image::picker::cap_parser::QueryStdioOptions;
use ratatui_image::picker::{Picker, ProtocolType};

/// `--preview-protocol` (or PALLAIDIUM_PREVIEW_PROTOCOL until the flag exists).
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

impl PreviewProtocol {
    /// Builds the picker. Must run after entering the alternate screen and before the input reader
    /// starts (the query reads stdin). `None` means previews are off.
    pub fn picker(self) -> Option<Picker> {
        let forced = match self {
            Self::None => return None,
            Self::Halfblocks => return Some(Picker::halfblocks()),
            Self::Auto => None,
            Self::Kitty => Some(ProtocolType::Kitty),
            Self::Iterm => Some(ProtocolType::Iterm2),
            Self::Sixel => Some(ProtocolType::Sixel),
        };
        let mut options = QueryStdioOptions::default();
        options.timeout = QUERY_TIMEOUT;
        let mut picker = match Picker::from_query_stdio_with_options(options) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!("terminal graphics query failed ({e}); previews use halfblocks");
                Picker::halfblocks()
            }
        };
        if let Some(p) = forced {
            picker.set_protocol_type(p);
        }
        tracing::info!(
            "preview protocol {:?} (font {:?})",
            picker.protocol_type(),
            picker.font_size()
        );
        Some(picker)
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
        assert!(
            "png"
                .parse::<PreviewProtocol>()
                .unwrap_err()
                .contains("halfblocks")
        );
        assert!(PreviewProtocol::None.picker().is_none());
        assert_eq!(
            PreviewProtocol::Halfblocks
                .picker()
                .map(|p| p.protocol_type()),
            Some(ProtocolType::Halfblocks)
        );
    }
}
