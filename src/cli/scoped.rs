//! The global flags a subcommand takes for itself, one small group each, so that its `--help`
//! lists only what it uses. `apply` lays a given value over the top-level one.

use std::path::PathBuf;

use clap::Args;

use super::GlobalArgs;
use crate::vocab::DtypeChoice;

#[derive(Debug, Args, Clone, Default)]
pub struct DeviceFlag {
    /// auto|cpu|cuda[:N]|metal[:N]; auto prefers CUDA, then Metal, then the CPU [default: auto].
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct DtypeFlag {
    /// Compute dtype; auto picks per device (f16 on CUDA/Metal, f32 on the CPU) [default: auto].
    #[arg(long, value_enum)]
    pub dtype: Option<DtypeChoice>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RegistryFlag {
    /// An extra models file merged over the shipped registry [default: none].
    #[arg(long = "models", value_name = "FILE")]
    pub models_file: Option<PathBuf>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct BudgetFlag {
    /// Cap on the memory jobs may use, e.g. 6GiB, 512MiB [default: the device's budget].
    #[arg(long, value_name = "SIZE")]
    pub memory_budget: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct OfflineFlag {
    /// Never touch the network (also HF_HUB_OFFLINE=1) [default: off].
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct OutFlag {
    /// Output folder [default: $PALLAIDIUM_HOME/outputs].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What doctor and models look at: a device, a dtype, the registry and a memory budget.
#[derive(Debug, Args, Clone, Default)]
pub struct DeviceScope {
    #[command(flatten)]
    pub device: DeviceFlag,
    #[command(flatten)]
    pub dtype: DtypeFlag,
    #[command(flatten)]
    pub registry: RegistryFlag,
    #[command(flatten)]
    pub budget: BudgetFlag,
}

impl DeviceScope {
    pub fn apply(&self, g: &mut GlobalArgs) {
        self.device.apply(g);
        self.dtype.apply(g);
        self.registry.apply(g);
        self.budget.apply(g);
    }
}

impl DeviceFlag {
    pub fn apply(&self, g: &mut GlobalArgs) {
        if let Some(d) = &self.device {
            g.device.clone_from(d);
        }
    }
}

impl DtypeFlag {
    pub fn apply(&self, g: &mut GlobalArgs) {
        if let Some(d) = self.dtype {
            g.dtype = d;
        }
    }
}

impl RegistryFlag {
    pub fn apply(&self, g: &mut GlobalArgs) {
        if self.models_file.is_some() {
            g.models_file.clone_from(&self.models_file);
        }
    }
}

impl BudgetFlag {
    pub fn apply(&self, g: &mut GlobalArgs) {
        if self.memory_budget.is_some() {
            g.memory_budget.clone_from(&self.memory_budget);
        }
    }
}

impl OfflineFlag {
    pub fn apply(&self, g: &mut GlobalArgs) {
        g.offline |= self.offline;
    }
}

impl OutFlag {
    pub fn apply(&self, g: &mut GlobalArgs) {
        if self.out.is_some() {
            g.out.clone_from(&self.out);
        }
    }
}
