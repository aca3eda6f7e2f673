//! The memory plan of the job the form describes, for the compatibility pane. Planning reads
//! safetensors headers, so it runs on a blocking thread (see `commands`), never while drawing;
//! the same dtype choice, device and budget cap as the runner, so the pane predicts what the
//! runner will decide. Models resolve from the cache only: the runner's lookup downloads a
//! missing model, which picking one in the form must never start.

use std::path::PathBuf;
use std::sync::Arc;

use crate::device::SelectedDevice;
use crate::jobs::run::config::DtypeResolver;
use crate::jobs::run::planning::overrides_from_flags;
use crate::jobs::run::setup::RunnerSetup;
use crate::jobs::spec::JobOverrides;
use crate::jobs::spec::resolve::fill_spec;
use crate::models::Registry;
use crate::models::planner::{self, MemoryPlan, PlanRequest};
use crate::platform::PlatformInfo;

/// What the pane shows about memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PlanStatus {
    /// No model chosen, or the form does not describe a job yet.
    #[default]
    Idle,
    /// The form changed; a new plan is on its way.
    Pending,
    /// The model cannot be planned (not cached, unknown, unreadable): the reason, with its fix.
    Unavailable(String),
    Planned(PlanSummary),
}

impl PlanStatus {
    /// The predicted peak, only from a plan of the current form.
    pub fn peak_and_budget(&self) -> Option<(u64, u64)> {
        match self {
            Self::Planned(p) => Some((p.peak_bytes, p.budget_bytes)),
            _ => None,
        }
    }
}

/// The parts of a `MemoryPlan` the pane draws.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    pub peak_bytes: u64,
    pub budget_bytes: u64,
    pub fits: bool,
    pub staged: bool,
    pub attention_slice: Option<usize>,
    pub vae_tiling: bool,
    /// Images per pass (the planner may split a batch).
    pub batch: u32,
    pub requested_batch: u32,
    /// The stage at the peak, e.g. "unet denoise".
    pub peak_stage: String,
    /// When it does not fit: what would make it fit.
    pub suggestions: Vec<String>,
}

impl From<&MemoryPlan> for PlanSummary {
    fn from(p: &MemoryPlan) -> Self {
        Self {
            peak_bytes: p.peak_bytes,
            budget_bytes: p.budget_bytes,
            fits: p.fits,
            staged: p.residency == crate::vocab::Residency::Staged,
            attention_slice: p.attention_slice,
            vae_tiling: p.vae_tiling,
            batch: p.batch,
            requested_batch: p.requested_batch,
            peak_stage: p.breakdown.peak_stage.clone(),
            suggestions: p.suggestions.clone(),
        }
    }
}

/// Plans form jobs the way the runner's `JobPlanner` plans queued ones.
pub struct FormPlanner {
    selected: Arc<SelectedDevice>,
    platform: Arc<PlatformInfo>,
    budget_cap: Option<u64>,
    registry: Arc<Registry>,
    hf_cache: PathBuf,
    dtype: DtypeResolver,
    stock_kernels: bool,
}

impl FormPlanner {
    pub fn new(
        setup: &RunnerSetup,
        budget_cap: Option<u64>,
        registry: Arc<Registry>,
        hf_cache: PathBuf,
    ) -> Self {
        Self {
            selected: Arc::clone(&setup.selected),
            platform: Arc::clone(&setup.platform),
            budget_cap,
            registry,
            hf_cache,
            dtype: Arc::clone(&setup.config.device.dtype),
            stock_kernels: setup.config.switches.stock_kernels,
        }
    }

    /// Resolves the model, fills the model's defaults and plans; blocking (file I/O).
    pub fn plan(&self, spec: &JobOverrides) -> PlanStatus {
        if spec.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
            return PlanStatus::Idle;
        }
        match self.try_plan(spec) {
            Ok(plan) => PlanStatus::Planned(PlanSummary::from(&plan)),
            Err(e) => PlanStatus::Unavailable(e.to_string()),
        }
    }

    /// What the model makes and its family (a folder's follow its files); `None` when it
    /// cannot be read. Blocking (file I/O); never downloads.
    pub fn model_kind(&self, model: &str) -> Option<(crate::models::Kind, crate::models::Family)> {
        crate::models::resolve(&self.registry, model, &self.hf_cache)
            .ok()
            .map(|m| (m.kind, m.family))
    }

    fn try_plan(&self, asked: &JobOverrides) -> crate::Result<MemoryPlan> {
        let model_id = asked.model.clone().unwrap_or_default();
        let model = crate::models::resolve(&self.registry, &model_id, &self.hf_cache)?;
        // An audio or text model (the form's kind, or a folder that has no diffusers layout).
        let kind = asked.kind_asked();
        if !kind.makes_images() || model.layout.is_none() {
            return self.plan_media(asked, &model);
        }
        let filled = fill_spec(asked, kind, &model.defaults, model.family)?;
        let dtype = (self.dtype)(filled.dtype)?;
        let Some(p) = filled.image() else {
            return Err(crate::Error::bad_input(
                "internal: an image job without image parameters",
            ));
        };
        // The same request fields `JobPlanner::plan` takes from the engine request, read from
        // the filled spec so no init image is decoded just to plan.
        let request = PlanRequest {
            width: p.width,
            height: p.height,
            batch: p.batch,
            guided: p.guidance > 1.0,
            img2img: p.init_image.is_some(),
            dtype,
            device: self.selected.kind,
            memory: crate::device::memory::query(&self.selected, &self.platform),
            budget_cap: self.budget_cap,
            overrides: overrides_from_flags(p.attention_slicing, p.vae_tiling, p.residency),
            stock_kernels: self.stock_kernels,
            // The files are read when the job is submitted, not on every keystroke.
            lora: Default::default(),
        };
        let fp16 = dtype != candle_core::DType::F32;
        crate::jobs::run::planning::plan_image_folder(
            model.family,
            &model.dir,
            fp16,
            &request,
            Some((p, &model.weights)),
        )
    }
}

impl FormPlanner {
    /// The runner's media plan (`JobPlanner::plan_media`): weights plus working memory that grows
    /// with the seconds of audio made.
    fn plan_media(
        &self,
        asked: &JobOverrides,
        model: &crate::models::ResolvedModel,
    ) -> crate::Result<MemoryPlan> {
        // Not `fill_media_spec`: the form's job has no prompt or input file yet, and memory does
        // not depend on them.
        let dtype = (self.dtype)(asked.dtype)?;
        let seconds = if asked.kind_asked().makes_audio() {
            asked.duration.or(model.defaults.duration).unwrap_or(10.0)
        } else {
            0.0
        };
        Ok(planner::media::plan_media(
            &crate::jobs::run::planning::media_request(
                &model.dir,
                model.family,
                (seconds, asked.batch.unwrap_or(1)),
                dtype,
                &self.selected,
                &self.platform,
                self.budget_cap,
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;
    use crate::jobs::run::setup::{FetchDisplay, runner_setup};
    use crate::platform::paths::{PathEnv, Paths};
    use crate::vocab::JobKind;

    fn planner(home: &std::path::Path, budget: Option<&str>) -> FormPlanner {
        let mut args = vec!["pallaidium", "--device", "cpu", "--offline"];
        if let Some(b) = budget {
            args.extend(["--memory-budget", b]);
        }
        let cli = Cli::try_parse_from(args).unwrap();
        let env = PathEnv {
            pallaidium_home: Some(home.to_path_buf()),
            hf_home: Some(home.join("hf")),
            ..PathEnv::default()
        };
        let paths = Paths::from_env(&env, None).unwrap();
        let setup = runner_setup(
            &cli.global.run_settings(),
            &paths,
            &Default::default(),
            0,
            FetchDisplay::LogOnly,
        )
        .unwrap();
        let budget_cap =
            crate::device::memory::parse_memory_budget(cli.global.memory_budget.as_deref())
                .unwrap();
        let registry = Arc::new(Registry::shipped().unwrap());
        FormPlanner::new(&setup, budget_cap, registry, paths.hf_cache)
    }

    fn fixture_spec(batch: u32) -> JobOverrides {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny");
        JobOverrides {
            model: Some(dir.display().to_string()),
            width: Some(64),
            height: Some(64),
            batch: Some(batch),
            ..JobOverrides::default()
        }
    }

    #[test]
    fn the_fixture_plans_against_the_budget() {
        let home = tempfile::tempdir().unwrap();
        let roomy = planner(home.path(), Some("8GB"));
        let PlanStatus::Planned(one) = roomy.plan(&fixture_spec(1)) else {
            panic!("the fixture plans");
        };
        assert!(one.fits && one.peak_bytes > 0 && one.peak_bytes <= one.budget_bytes);
        assert!(
            one.budget_bytes <= 8 << 30,
            "--memory-budget caps the budget"
        );
        let PlanStatus::Planned(four) = roomy.plan(&fixture_spec(4)) else {
            panic!("the fixture plans");
        };
        assert!(
            four.peak_bytes > one.peak_bytes,
            "a bigger batch needs more"
        );

        let PlanStatus::Planned(tight) = planner(home.path(), Some("1KB")).plan(&fixture_spec(1))
        else {
            panic!("a tiny budget still plans");
        };
        assert!(!tight.fits && tight.peak_bytes > tight.budget_bytes);
    }

    #[test]
    fn unknown_or_uncached_models_say_so_without_downloading() {
        let home = tempfile::tempdir().unwrap();
        let p = planner(home.path(), None);
        assert_eq!(p.plan(&JobOverrides::default()), PlanStatus::Idle);
        let unknown = JobOverrides {
            model: Some("no-such-model".into()),
            ..JobOverrides::default()
        };
        let PlanStatus::Unavailable(why) = p.plan(&unknown) else {
            panic!("an unknown model cannot plan");
        };
        assert!(why.contains("no-such-model"), "{why}");
        let registry = Registry::shipped().unwrap();
        let cached_nowhere = JobOverrides {
            model: Some(registry.entries()[0].id.clone()),
            ..JobOverrides::default()
        };
        assert!(matches!(
            p.plan(&cached_nowhere),
            PlanStatus::Unavailable(_)
        ));
        assert!(
            std::fs::read_dir(home.path().join("hf")).map_or(true, |mut d| d.next().is_none()),
            "planning never downloads"
        );
    }

    #[test]
    fn audio_models_plan_with_the_media_planner() {
        let home = tempfile::tempdir().unwrap();
        let p = planner(home.path(), Some("8GB"));
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/musicgen-tiny");
        let spec = |seconds| JobOverrides {
            kind: Some(JobKind::Music),
            model: Some(dir.display().to_string()),
            duration: Some(seconds),
            ..JobOverrides::default()
        };
        let status = p.plan(&spec(1.0));
        let PlanStatus::Planned(short) = status else {
            panic!("the musicgen fixture plans: {status:?}");
        };
        let PlanStatus::Planned(long) = p.plan(&spec(60.0)) else {
            panic!("the musicgen fixture plans");
        };
        assert!(short.fits && short.peak_bytes > 0);
        assert!(
            long.peak_bytes > short.peak_bytes,
            "longer music needs more"
        );
        let folder = dir.display().to_string();
        assert_eq!(
            p.model_kind(&folder),
            Some((crate::models::Kind::Music, crate::models::Family::Musicgen))
        );
        assert_eq!(p.model_kind("no-such-model"), None);
    }
}
