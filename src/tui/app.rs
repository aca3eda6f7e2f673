//! The app: focus, overlays, the compatibility findings and the memory plan of the form.
//! Dispatch (`dispatch`) and drawing (`draw`) are its two halves. Panes ask for work with
//! `Action`s; the app turns those into `Command`s for the loop (runner calls, file I/O,
//! planning), so the app itself never blocks.

pub mod assist;
mod dispatch;
mod draw;

use std::path::PathBuf;

use image::DynamicImage;
use ratatui::layout::Rect;
use ratatui_image::picker::Picker;

use super::panes::compat::CompatPane;
use super::panes::form::{Form, ModelChoice};
use super::panes::gauges::GaugesPane;
use super::panes::logs::LogsPane;
use super::panes::params::ParamsPane;
use super::panes::preview::PreviewPane;
use super::panes::prompt::PromptPane;
use super::panes::queue::QueuePane;
use super::panes::{Pane, PaneId};
use super::planning::PlanStatus;
use super::theme::Theme;
use crate::jobs::spec::JobOverrides;
use crate::jobs::{JobId, JobSpec};
use crate::models::{CompatContext, ModelEntry, Verdict, compat};
use crate::vocab::{Backend, Dtype};

/// How to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitMode {
    /// Every queued and running job ends cancelled.
    CancelJobs,
    /// SIGTERM: the running job stops (interrupted) and the rest stay queued, as in --headless.
    StopJobs,
    /// Restore the terminal and let queued and running jobs finish headless.
    KeepJobs,
    /// The hosts view chose another place to run jobs (its index there): this session ends
    /// and one on that host starts.
    Switch(usize),
}

/// Work for the event loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Submit(Box<JobOverrides>),
    Cancel(JobId),
    Retry(JobId),
    Move {
        job: JobId,
        index: usize,
    },
    SetPaused(bool),
    SaveHistory(Vec<String>),
    LoadImage(PathBuf),
    /// Read an audio output's waveform for the preview; the answer is `AppEvent::Waveform`.
    LoadAudio(PathBuf),
    /// Decode a video output for the preview (a blocking task); the answer is `AppEvent::Video`.
    LoadVideo(PathBuf),
    /// Read a text output for the preview; the answer is `AppEvent::TextFile`.
    LoadText(PathBuf),
    /// Show the form's control image, or its Canny edges (low, high); the answer is
    /// `AppEvent::Image`.
    LoadControl {
        path: PathBuf,
        canny: Option<(f64, f64)>,
    },
    /// List the LoRA files; the answer is `AppEvent::LoraFiles`.
    ScanLoras,
    /// Find what a model (a folder) makes; the answer is `AppEvent::ModelKind`.
    ResolveKind(String),
    /// Plan the form's job (debounced by the loop); the answer is `AppEvent::Plan`.
    Plan {
        generation: u64,
        spec: Box<JobOverrides>,
    },
    Quit(QuitMode),
}

/// What the compatibility checks need besides the form.
#[derive(Debug, Clone)]
pub struct CompatEnv {
    /// The runner's device kind: jobs run there whatever the form says.
    pub backend: Backend,
    pub chip: Option<String>,
    pub macos_version: Option<String>,
    pub memory_budget_bytes: Option<u64>,
    pub hf_token_present: bool,
    pub entries: Vec<ModelEntry>,
}

pub struct AppConfig {
    pub theme: Theme,
    /// Shown in the status line at start (e.g. a theme that fell back).
    pub notice: Option<String>,
    pub form: Form,
    pub prompt: String,
    pub negative: String,
    pub compat: CompatEnv,
    pub picker: Option<Picker>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlay {
    None,
    Help,
    ConfirmQuit,
    Hosts,
}

pub struct App {
    theme: Theme,
    focus: PaneId,
    overlay: Overlay,
    /// How far the help overlay is scrolled (where it is taller than the screen).
    help_scroll: u16,
    size: Rect,
    notice: Option<String>,
    paused: bool,
    compat_env: CompatEnv,
    quit: Option<QuitMode>,
    /// Bumped on every form change; a plan answers the generation it was asked for.
    plan_generation: u64,
    plan: PlanStatus,
    /// The prompt helper job (enhance or caption) whose text goes into the prompt.
    assist: Option<assist::Assist>,
    pub prompt: PromptPane,
    pub params: ParamsPane,
    pub queue: QueuePane,
    pub gauges: GaugesPane,
    pub compat: CompatPane,
    pub logs: LogsPane,
    pub preview: PreviewPane,
    /// Where jobs may run (F2).
    pub hosts: super::hosts::HostsView,
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        let models = config
            .compat
            .entries
            .iter()
            .map(|e| ModelChoice {
                id: e.id.clone(),
                name: e.name.clone(),
                verdict: Verdict::Ok,
                defaults: e.defaults.clone(),
                native: e.native_resolution,
                kind: e.kind,
                family: Some(e.family),
            })
            .collect();
        let mut app = Self {
            theme: config.theme,
            focus: PaneId::Prompt,
            overlay: Overlay::None,
            help_scroll: 0,
            size: Rect::new(0, 0, 80, 24),
            notice: config.notice,
            paused: false,
            compat_env: config.compat,
            quit: None,
            plan_generation: 0,
            plan: PlanStatus::Idle,
            assist: None,
            prompt: PromptPane::new(&config.prompt, &config.negative),
            params: ParamsPane::new(config.form, models),
            queue: QueuePane::default(),
            gauges: GaugesPane::default(),
            compat: CompatPane::default(),
            logs: LogsPane::default(),
            preview: PreviewPane::new(config.picker),
            hosts: super::hosts::HostsView::default(),
        };
        app.recompute_compat();
        app
    }

    /// Jobs queued or running.
    pub fn active_jobs(&self) -> usize {
        self.queue.active()
    }

    pub fn quit(&self) -> Option<QuitMode> {
        self.quit
    }

    pub fn focus(&self) -> PaneId {
        self.focus
    }

    pub fn set_size(&mut self, width: u16, height: u16) {
        self.size = Rect::new(0, 0, width, height);
    }

    /// The runner's device and the dtype the form asks for.
    fn target(&self) -> (Backend, Dtype) {
        let backend = self.compat_env.backend;
        (backend, self.params.form().dtype.on(backend))
    }

    /// The memory plan of the form as last answered (Pending while a new one is on its way).
    pub fn plan(&self) -> &PlanStatus {
        &self.plan
    }

    /// Commands the loop runs once at start: the first plan of the pre-filled form.
    pub fn start_commands(&mut self) -> Vec<Command> {
        let mut commands: Vec<Command> = self.request_plan().into_iter().collect();
        // A folder from --model without --kind: what it makes is only known once it is read.
        let form = self.params.form();
        if form.kind.is_none() && !form.model.trim().is_empty() {
            commands.push(Command::ResolveKind(form.model.trim().to_owned()));
        }
        commands
    }

    /// What a folder model makes and its family, read off the UI thread: the form's fields
    /// (and a video model's frame step) follow them.
    pub fn model_kind_known(
        &mut self,
        model: &str,
        (kind, family): (crate::models::Kind, crate::models::Family),
    ) -> Vec<Command> {
        let form = self.params.form();
        if form.kind.is_some() || form.model.trim() != model {
            return Vec::new();
        }
        self.params.set_kind(kind, family);
        self.request_plan().into_iter().collect()
    }

    /// The form changed: drop the old plan and ask for one of the new form, if it names a job.
    fn request_plan(&mut self) -> Option<Command> {
        self.plan_generation += 1;
        let spec = self
            .params
            .form()
            .to_overrides()
            .ok()
            .filter(|s| s.model.is_some());
        self.plan = if spec.is_some() {
            PlanStatus::Pending
        } else {
            PlanStatus::Idle
        };
        self.recompute_compat();
        spec.map(|spec| Command::Plan {
            generation: self.plan_generation,
            spec: Box::new(spec),
        })
    }

    /// A plan arrived; one of an older form is dropped (a newer one is on its way).
    pub fn plan_arrived(&mut self, generation: u64, status: PlanStatus) {
        if generation == self.plan_generation {
            self.plan = status;
            self.recompute_compat();
        }
    }

    fn context(&self, backend: Backend, dtype: Dtype) -> CompatContext {
        let env = &self.compat_env;
        let mut ctx = CompatContext::new(backend, dtype);
        ctx.chip = env.chip.clone();
        ctx.macos_version = env.macos_version.clone();
        // The plan's budget is the device's memory now, capped by --memory-budget.
        ctx.memory_budget_bytes = match self.plan.peak_and_budget() {
            Some((_, budget)) => Some(budget),
            None => env.memory_budget_bytes,
        };
        ctx.hf_token_present = env.hf_token_present;
        ctx
    }

    /// Findings for model x device x parameters, and every model's badge for this device.
    pub fn recompute_compat(&mut self) {
        let (backend, dtype) = self.target();
        let base = self.context(backend, dtype);
        let entries = self.compat_env.entries.clone();
        self.params.set_verdicts(|m| {
            let entry = entries.iter().find(|e| e.id == m.id);
            compat::verdict(&compat::check(&base, entry))
        });
        let form = self.params.form();
        let mut ctx = base;
        // Only the form's own job has a predicted peak; the picker's badges do not.
        ctx.predicted_peak_bytes = self.plan.peak_and_budget().map(|(peak, _)| peak);
        if let Ok(job) = form.to_overrides() {
            (ctx.width, ctx.height, ctx.steps, ctx.guidance) =
                (job.width, job.height, job.steps, job.guidance);
        }
        let entry = entries.iter().find(|e| e.id == form.model.trim());
        let subject = format!(
            "{} on {} ({})",
            if form.model.is_empty() {
                "(no model)"
            } else {
                form.model.as_str()
            },
            backend.as_str(),
            dtype.as_str()
        );
        let findings = compat::check(&ctx, entry);
        self.compat.set(subject, findings, self.plan.clone());
    }

    fn set_focus(&mut self, id: PaneId) {
        if id != self.focus {
            self.pane(self.focus).on_focus(false);
            self.focus = id;
            self.pane(id).on_focus(true);
        }
    }

    fn pane(&mut self, id: PaneId) -> &mut dyn Pane {
        match id {
            PaneId::Prompt => &mut self.prompt,
            PaneId::Params => &mut self.params,
            PaneId::Queue => &mut self.queue,
            PaneId::Compat => &mut self.compat,
            PaneId::Preview => &mut self.preview,
            PaneId::Logs => &mut self.logs,
            PaneId::Gauges => &mut self.gauges,
        }
    }

    fn pane_ref(&self, id: PaneId) -> &dyn Pane {
        match id {
            PaneId::Prompt => &self.prompt,
            PaneId::Params => &self.params,
            PaneId::Queue => &self.queue,
            PaneId::Compat => &self.compat,
            PaneId::Preview => &self.preview,
            PaneId::Logs => &self.logs,
            PaneId::Gauges => &self.gauges,
        }
    }

    /// A job the runner accepted: it appears in the queue under its prompt (or its input file).
    pub fn job_submitted(&mut self, id: JobId, spec: &JobSpec) {
        self.queue.set_label(id, &job_label(spec));
        self.assist_submitted(id, spec);
    }

    pub fn show_image(&mut self, label: String, image: DynamicImage) {
        self.preview.set_image(label, image);
    }

    /// Whether the preview plays a clip (the loop then runs its frame clock).
    pub fn animating(&self) -> bool {
        self.preview.animating()
    }

    /// The frame clock ticked: true when the preview's frame changed (redraw).
    pub fn animate(&mut self, now: std::time::Instant) -> bool {
        self.preview.advance(now)
    }
}

/// The queue's label of a job: image jobs keep their prompt's first line as before; the other
/// kinds say what they are, and jobs without a prompt name their input.
pub fn job_label(spec: &JobSpec) -> String {
    use crate::jobs::spec::Params;
    let first = spec.prompt.lines().next().unwrap_or("");
    let file = |p: &std::path::Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    match &spec.params {
        // An image job's LoRAs as A1111 tags, and its upscale step.
        Params::Image(p) => format!(
            "{first}{}{}",
            crate::jobs::output::lora_tags::tags(&p.loras),
            p.upscale
                .as_ref()
                .map_or_else(String::new, |u| format!(" ↑x{}", u.scale))
        ),
        Params::Caption(p) => format!("caption: {}", file(&p.image)),
        Params::Transcribe(p) => format!("stt: {}", file(&p.audio)),
        Params::Upscale(p) => format!("upscale x{}: {}", p.scale, file(&p.image)),
        // A clip's length, kept while it is queued, runs and after.
        Params::Video(p) => format!(
            "{} {}: {first}",
            spec.kind.as_str(),
            crate::tui::panes::queue::clip_length(p.frames, f64::from(p.fps))
        ),
        _ => format!("{}: {first}", spec.kind.as_str()),
    }
}
