//! Memory modes a job may pin (`--vae-tiling`, `--residency`); auto leaves them to the planner.

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
}
