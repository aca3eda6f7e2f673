//! Scheduler names: the CLI's, common aliases (A1111/ComfyUI style) and diffusers class names.

use crate::Result;
use crate::vocab::Scheduler;

/// How the engine builds a scheduler: a job's [`Scheduler`], or (for tests and tools that name
/// diffusers' class) DPM-Solver with its order and sigmas taken from the model's config.
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

impl From<Scheduler> for SchedulerKind {
    fn from(s: Scheduler) -> Self {
        match s {
            Scheduler::Ddim => Self::Ddim,
            Scheduler::Euler => Self::Euler,
            Scheduler::EulerA => Self::EulerAncestral,
            Scheduler::DpmPp2m => Self::DpmPp2m { karras: false },
            Scheduler::DpmPp2mKarras => Self::DpmPp2m { karras: true },
            Scheduler::UniPc => Self::UniPc,
            // Refused for SD models when the job is filled (`jobs::spec::resolve`); Euler is its
            // nearest sigma-space relative should a tool call this directly.
            Scheduler::FlowEuler => Self::Euler,
        }
    }
}

impl SchedulerKind {
    /// Parse a name as [`Scheduler::parse`] does, except that diffusers' DPM-Solver class name
    /// keeps the config's own solver settings.
    pub fn parse(name: &str) -> Result<Self> {
        match crate::vocab::scheduler_alias_key(name).as_str() {
            "dpmsolvermultistep" | "dpmsolvermultistepscheduler" => Ok(Self::DpmSolverFromConfig),
            _ => match Scheduler::parse(name)? {
                s if s.is_flow() => Err(crate::Error::bad_input(format!(
                    "scheduler {s} is FLUX's flow-matching one; Stable Diffusion takes {}",
                    Scheduler::unet_names()
                ))),
                s => Ok(Self::from(s)),
            },
        }
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
        for s in Scheduler::ALL.iter().filter(|s| !s.is_flow()) {
            assert_eq!(
                SchedulerKind::parse(s.as_str()).unwrap().cli_name(),
                s.as_str()
            );
        }
        let err = SchedulerKind::parse("flow-euler").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("FLUX"), "{err}");
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
