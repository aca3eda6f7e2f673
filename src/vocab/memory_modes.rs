//! Memory modes a job may pin (`--attention-slicing`, `--vae-tiling`, `--residency`); auto leaves
//! them to the planner.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// On, off, or the planner's choice (`--vae-tiling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    Auto,
    On,
    Off,
}

impl Toggle {
    /// The setting asked for, or None for auto.
    pub fn forced(self) -> Option<bool> {
        match self {
            Self::Auto => None,
            Self::On => Some(true),
            Self::Off => Some(false),
        }
    }
}

/// Which components stay in memory during a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Residency {
    /// Text encoders, UNet and VAE all loaded at once (fastest for batches).
    #[default]
    Resident,
    /// Text encoders loaded, run and dropped before the UNet loads; the VAE after the UNet is dropped.
    Staged,
}

/// `--residency` (and a job's `residency` key): a residency, or auto for the planner's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResidencyChoice {
    Auto,
    Resident,
    Staged,
}

impl ResidencyChoice {
    /// The residency asked for, or None for auto.
    pub fn forced(self) -> Option<Residency> {
        match self {
            Self::Auto => None,
            Self::Resident => Some(Residency::Resident),
            Self::Staged => Some(Residency::Staged),
        }
    }
}

/// `--attention-slicing`: the planner's choice, none, or a query chunk size in tokens. Stored as
/// the text the flag takes (`auto`, `off`, `256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionSlicing {
    #[default]
    Auto,
    Off,
    Tokens(u64),
}

impl AttentionSlicing {
    /// Parses the flag's text; the error says what the flag takes.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            n => match n.parse::<u64>() {
                Ok(size) if size > 0 => Ok(Self::Tokens(size)),
                _ => Err(format!(
                    "--attention-slicing {n:?}: use auto, off, or a query chunk size in tokens \
                     such as 256"
                )),
            },
        }
    }

    /// clap's value parser (the message without the flag, which clap names itself).
    pub fn parse_flag(text: &str) -> Result<Self, String> {
        Self::parse(text)
            .map_err(|_| "use auto, off, or a query chunk size in tokens such as 256".to_owned())
    }

    /// What the plan is pinned to: None for auto, Some(None) for off, Some(Some(n)) for n tokens.
    pub fn forced(self) -> Option<Option<u64>> {
        match self {
            Self::Auto => None,
            Self::Off => Some(None),
            Self::Tokens(n) => Some(Some(n)),
        }
    }
}

impl std::fmt::Display for AttentionSlicing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Off => f.write_str("off"),
            Self::Tokens(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for AttentionSlicing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AttentionSlicing {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A job file may write the chunk size as a number or as text.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Self::parse(&n.to_string()),
            Raw::Text(t) => Self::parse(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_forces_nothing() {
        assert_eq!(Toggle::Auto.forced(), None);
        assert_eq!(Toggle::On.forced(), Some(true));
        assert_eq!(Toggle::Off.forced(), Some(false));
        assert_eq!(ResidencyChoice::Auto.forced(), None);
        assert_eq!(ResidencyChoice::Staged.forced(), Some(Residency::Staged));
        assert_eq!(
            ResidencyChoice::Resident.forced(),
            Some(Residency::Resident)
        );
    }

    #[test]
    fn attention_slicing_reads_and_writes_the_flag_text() {
        assert_eq!(AttentionSlicing::parse("auto"), Ok(AttentionSlicing::Auto));
        assert_eq!(AttentionSlicing::parse(" off"), Ok(AttentionSlicing::Off));
        assert_eq!(
            AttentionSlicing::parse("64"),
            Ok(AttentionSlicing::Tokens(64))
        );
        for bad in ["0", "lots", "-3", ""] {
            let err = AttentionSlicing::parse(bad).unwrap_err();
            assert!(err.contains("auto, off"), "{err}");
        }
        assert_eq!(AttentionSlicing::Auto.forced(), None);
        assert_eq!(AttentionSlicing::Off.forced(), Some(None));
        assert_eq!(AttentionSlicing::Tokens(9).forced(), Some(Some(9)));
        let json = serde_json::to_string(&AttentionSlicing::Tokens(256)).unwrap();
        assert_eq!(json, "\"256\"");
        let back: AttentionSlicing = serde_json::from_str(&json).unwrap();
        assert_eq!(back, AttentionSlicing::Tokens(256));
        let number: AttentionSlicing = serde_json::from_str("128").unwrap();
        assert_eq!(number, AttentionSlicing::Tokens(128));
        assert!(serde_json::from_str::<AttentionSlicing>("\"x\"").is_err());
    }
}
