//! Scheduler names: the CLI's, common aliases (A1111/ComfyUI style) and diffusers class names.

use crate::{Error, Result};

/// The names `--scheduler` documents.
pub const SCHEDULER_NAMES: &[&str] = &[
    "ddim",
    "euler",
    "euler-a",
    "dpm++2m",
    "dpm++2m-karras",
    "unipc",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    Ddim,
    Euler,
    EulerAncestral,
    /// DPM-Solver++ 2M: algorithm dpmsolver++ and solver order 2 forced, Karras sigmas as named.
    DpmPp2m {
        karras: bool,
    },
    /// `DPMSolverMultistepScheduler` named by class: solver order and Karras sigmas from the config.
    DpmSolverFromConfig,
    UniPc,
}

impl SchedulerKind {
    /// Parse a name, case-insensitively, ignoring `-`, `_` and spaces.
    pub fn parse(name: &str) -> Result<Self> {
        let key: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        let kind = match key.as_str() {
            "ddim" | "ddimscheduler" => Self::Ddim,
            "euler" | "eulerdiscrete" | "eulerdiscretescheduler" | "keuler" => Self::Euler,
            "eulera"
            | "eulerancestral"
            | "eulerancestraldiscrete"
            | "eulerancestraldiscretescheduler"
            | "keulera"
            | "keulerancestral" => Self::EulerAncestral,
            "dpm++2m" | "dpmpp2m" | "dpmsolver++" | "dpmsolverpp" | "kdpm++2m" | "kdpmpp2m" => {
                Self::DpmPp2m { karras: false }
            }
            "dpm++2mkarras" | "dpmpp2mkarras" | "kdpm++2mkarras" | "kdpmpp2mkarras" => {
                Self::DpmPp2m { karras: true }
            }
            "dpmsolvermultistep" | "dpmsolvermultistepscheduler" => Self::DpmSolverFromConfig,
            "unipc" | "unipcmultistep" | "unipcmultistepscheduler" => Self::UniPc,
            _ => {
                return Err(Error::bad_input(format!(
                    "unknown scheduler \"{name}\"; valid: {}",
                    SCHEDULER_NAMES.join(", ")
                )));
            }
        };
        Ok(kind)
    }

    /// The canonical CLI name.
    pub fn cli_name(self) -> &'static str {
        match self {
            Self::Ddim => "ddim",
            Self::Euler => "euler",
            Self::EulerAncestral => "euler-a",
            Self::DpmPp2m { karras: false } | Self::DpmSolverFromConfig => "dpm++2m",
            Self::DpmPp2m { karras: true } => "dpm++2m-karras",
            Self::UniPc => "unipc",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cli_names_and_aliases_parse() {
        for name in SCHEDULER_NAMES {
            assert_eq!(SchedulerKind::parse(name).unwrap().cli_name(), *name);
        }
        assert_eq!(
            SchedulerKind::parse("dpmpp_2m").unwrap(),
            SchedulerKind::DpmPp2m { karras: false }
        );
        assert_eq!(
            SchedulerKind::parse("DPMPP_2M_Karras").unwrap(),
            SchedulerKind::DpmPp2m { karras: true }
        );
        assert_eq!(
            SchedulerKind::parse("euler_a").unwrap(),
            SchedulerKind::EulerAncestral
        );
        assert_eq!(
            SchedulerKind::parse("DDIMScheduler").unwrap(),
            SchedulerKind::Ddim
        );
        assert_eq!(
            SchedulerKind::parse("EulerAncestralDiscreteScheduler").unwrap(),
            SchedulerKind::EulerAncestral
        );
        assert_eq!(
            SchedulerKind::parse("eulerdiscretescheduler").unwrap(),
            SchedulerKind::Euler
        );
        assert_eq!(
            SchedulerKind::parse("UniPCMultistepScheduler").unwrap(),
            SchedulerKind::UniPc
        );
        assert_eq!(
            SchedulerKind::parse("DPMSolverMultistepScheduler").unwrap(),
            SchedulerKind::DpmSolverFromConfig
        );
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = SchedulerKind::parse("PNDMScheduler").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(
            msg.contains("PNDMScheduler")
                && msg.contains("dpm++2m-karras")
                && msg.contains("unipc"),
            "{msg}"
        );
    }
}
