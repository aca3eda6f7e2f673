//! The sampler a diffusion job denoises with (`--scheduler`, a job's `scheduler` key, the stored
//! spec, the model registry's defaults). Stored and printed under the canonical names below;
//! read from any of them or an alias (A1111/ComfyUI style, diffusers' class names).

use clap::ValueEnum;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A scheduler, by the name `--scheduler` documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Scheduler {
    #[value(name = "ddim")]
    Ddim,
    #[value(name = "euler")]
    Euler,
    #[value(name = "euler-a")]
    EulerA,
    /// DPM-Solver++ 2M.
    #[value(name = "dpm++2m")]
    DpmPp2m,
    /// DPM-Solver++ 2M with Karras sigmas.
    #[value(name = "dpm++2m-karras")]
    DpmPp2mKarras,
    #[value(name = "unipc")]
    UniPc,
    /// Flow-matching Euler (diffusers' FlowMatchEulerDiscreteScheduler): the one FLUX runs.
    #[value(name = "flow-euler")]
    FlowEuler,
}

impl Scheduler {
    pub const ALL: [Self; 7] = [
        Self::Ddim,
        Self::Euler,
        Self::EulerA,
        Self::DpmPp2m,
        Self::DpmPp2mKarras,
        Self::UniPc,
        Self::FlowEuler,
    ];

    /// The canonical name: what is stored, printed and written into outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ddim => "ddim",
            Self::Euler => "euler",
            Self::EulerA => "euler-a",
            Self::DpmPp2m => "dpm++2m",
            Self::DpmPp2mKarras => "dpm++2m-karras",
            Self::UniPc => "unipc",
            Self::FlowEuler => "flow-euler",
        }
    }

    /// A name or alias, case-insensitively, ignoring `-`, `_` and spaces.
    pub fn parse(name: &str) -> crate::Result<Self> {
        let kind = match alias_key(name).as_str() {
            "ddim" | "ddimscheduler" => Self::Ddim,
            "euler" | "eulerdiscrete" | "eulerdiscretescheduler" | "keuler" => Self::Euler,
            "eulera"
            | "eulerancestral"
            | "eulerancestraldiscrete"
            | "eulerancestraldiscretescheduler"
            | "keulera"
            | "keulerancestral" => Self::EulerA,
            "dpm++2m"
            | "dpmpp2m"
            | "dpmsolver++"
            | "dpmsolverpp"
            | "kdpm++2m"
            | "kdpmpp2m"
            | "dpmsolvermultistep"
            | "dpmsolvermultistepscheduler" => Self::DpmPp2m,
            "dpm++2mkarras" | "dpmpp2mkarras" | "kdpm++2mkarras" | "kdpmpp2mkarras" => {
                Self::DpmPp2mKarras
            }
            "unipc" | "unipcmultistep" | "unipcmultistepscheduler" => Self::UniPc,
            "floweuler"
            | "flowmatcheuler"
            | "flowmatcheulerdiscrete"
            | "flowmatcheulerdiscretescheduler" => Self::FlowEuler,
            _ => {
                return Err(crate::Error::bad_input(format!(
                    "unknown scheduler \"{name}\"; valid: {}",
                    Self::names().join(", ")
                )));
            }
        };
        Ok(kind)
    }

    /// Whether this is a flow-matching scheduler (FLUX's), which the epsilon/v-prediction
    /// models cannot run, as those schedulers cannot run FLUX.
    pub fn is_flow(self) -> bool {
        matches!(self, Self::FlowEuler)
    }

    /// The names the UNet models (every family but the flow models) take, comma-separated.
    pub fn unet_names() -> String {
        Self::ALL
            .iter()
            .filter(|s| !s.is_flow())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `--scheduler`'s value parser: the error names the flag (clap exits 2).
    pub fn parse_flag(name: &str) -> Result<Self, String> {
        Self::parse(name).map_err(|e| format!("--scheduler {name}: {e}"))
    }

    /// The canonical names, in `--scheduler`'s order.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|s| s.as_str()).collect()
    }
}

/// The key aliases are matched on: lowercase, without `-`, `_` and spaces.
pub fn alias_key(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

impl std::fmt::Display for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scheduler {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Job files may use any alias; stored rows hold canonical names (an older row's alias reads too).
impl<'de> Deserialize<'de> for Scheduler {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_clap() {
        for s in Scheduler::ALL {
            assert_eq!(Scheduler::parse(s.as_str()).unwrap(), s);
            let value = s.to_possible_value().unwrap();
            assert_eq!(value.get_name(), s.as_str());
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Scheduler>(&json).unwrap(), s);
        }
        assert_eq!(Scheduler::value_variants(), &Scheduler::ALL);
    }

    #[test]
    fn aliases_parse_and_unknown_names_list_the_valid_ones() {
        for (alias, want) in [
            ("dpmpp_2m", Scheduler::DpmPp2m),
            ("DPMPP_2M_Karras", Scheduler::DpmPp2mKarras),
            ("euler_a", Scheduler::EulerA),
            ("DDIMScheduler", Scheduler::Ddim),
            ("EulerAncestralDiscreteScheduler", Scheduler::EulerA),
            ("UniPCMultistepScheduler", Scheduler::UniPc),
            ("DPMSolverMultistepScheduler", Scheduler::DpmPp2m),
        ] {
            assert_eq!(Scheduler::parse(alias).unwrap(), want, "{alias}");
        }
        let err = Scheduler::parse("heun").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("dpm++2m-karras"), "{err}");
        let msg = Scheduler::parse_flag("nope").unwrap_err();
        assert!(
            msg.starts_with("--scheduler nope: unknown scheduler"),
            "{msg}"
        );
        assert!(serde_json::from_str::<Scheduler>("\"pndm\"").is_err());
    }
}
