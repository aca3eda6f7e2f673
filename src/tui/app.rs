//! The app: focus, overlays and dispatch. Events go to the focused pane first; what no pane
//! consumes is a global key. Panes ask for work with `Action`s; the app turns those into
//! `Command`s for the loop (runner calls, file I/O), so the app itself never blocks.

use std::path::PathBuf;

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind,
};
use image::DynamicImage;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui_image::picker::Picker;

use super::event::{AppEvent, SignalKind};
use super::layout::{self, Areas};
use super::overlay;
use super::panes::compat::CompatPane;
use super::panes::form::{Form, ModelChoice};
use super::panes::gauges::GaugesPane;
use super::panes::logs::LogsPane;
use super::panes::params::ParamsPane;
use super::panes::preview::PreviewPane;
use super::panes::prompt::PromptPane;
use super::panes::queue::QueuePane;
use super::panes::{Action, DrawCtx, Handled, Pane, PaneId, ellipsize};
use super::theme::Theme;
use crate::jobs::{JobEvent, JobId, JobSpec};
use crate::models::{Backend, CompatContext, Dtype, ModelEntry, Verdict, compat};

/// How to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitMode {
    CancelJobs,
    /// Restore the terminal and let queued and running jobs finish headless.
    KeepJobs,
}

/// Work for the event loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Submit(Box<JobSpec>),
    Cancel(JobId),
    Retry(JobId),
    Move { job: JobId, index: usize },
    SetPaused(bool),
    SaveHistory(Vec<String>),
    LoadImage(PathBuf),
    Quit(QuitMode),
}

/// What the compatibility checks need besides the form.
#[derive(Debug, Clone)]
pub struct CompatEnv {
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
}

pub struct App {
    theme: Theme,
    focus: PaneId,
    overlay: Overlay,
    size: Rect,
    notice: Option<String>,
    paused: bool,
    compat_env: CompatEnv,
    quit: Option<QuitMode>,
    pub prompt: PromptPane,
    pub params: ParamsPane,
    pub queue: QueuePane,
    pub gauges: GaugesPane,
    pub compat: CompatPane,
    pub logs: LogsPane,
    pub preview: PreviewPane,
}

fn backend_of(device: &str, fallback: Backend) -> Backend {
    let d = device.trim().to_ascii_lowercase();
    if d == "cpu" {
        Backend::Cpu
    } else if d.starts_with("cuda") {
        Backend::Cuda
    } else if d.starts_with("metal") {
        Backend::Metal
    } else {
        fallback
    }
}

fn dtype_for(arg: crate::cli::DtypeArg, backend: Backend) -> Dtype {
    use crate::cli::DtypeArg;
    match arg {
        DtypeArg::F32 => Dtype::F32,
        DtypeArg::F16 => Dtype::F16,
        DtypeArg::Bf16 => Dtype::Bf16,
        DtypeArg::Auto if backend == Backend::Cpu => Dtype::F32,
        DtypeArg::Auto => Dtype::F16,
    }
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
            })
            .collect();
        let mut app = Self {
            theme: config.theme,
            focus: PaneId::Prompt,
            overlay: Overlay::None,
            size: Rect::new(0, 0, 80, 24),
            notice: config.notice,
            paused: false,
            compat_env: config.compat,
            quit: None,
            prompt: PromptPane::new(&config.prompt, &config.negative),
            params: ParamsPane::new(config.form, models),
            queue: QueuePane::default(),
            gauges: GaugesPane::default(),
            compat: CompatPane::default(),
            logs: LogsPane::default(),
            preview: PreviewPane::new(config.picker),
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

    /// The device and dtype the form points at.
    fn target(&self) -> (Backend, Dtype) {
        let form = self.params.form();
        let backend = backend_of(&form.device, self.compat_env.backend);
        (backend, dtype_for(form.dtype, backend))
    }

    fn context(&self, backend: Backend, dtype: Dtype) -> CompatContext {
        let env = &self.compat_env;
        let mut ctx = CompatContext::new(backend, dtype);
        ctx.chip = env.chip.clone();
        ctx.macos_version = env.macos_version.clone();
        ctx.memory_budget_bytes = env.memory_budget_bytes;
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
        if let Ok(spec) = form.to_spec() {
            (ctx.width, ctx.height, ctx.steps, ctx.guidance) =
                (spec.width, spec.height, spec.steps, spec.guidance);
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
        let memory = ctx.predicted_peak_bytes.zip(ctx.memory_budget_bytes);
        self.compat.set(subject, findings, memory);
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

    /// A job the runner accepted: it appears in the queue under its prompt.
    pub fn job_submitted(&mut self, id: JobId, spec: &JobSpec) {
        self.queue
            .set_label(id, spec.prompt.lines().next().unwrap_or(""));
    }

    pub fn show_image(&mut self, label: String, image: DynamicImage) {
        self.preview.set_image(label, image);
    }

    pub fn notify(&mut self, notice: impl Into<String>) {
        self.notice = Some(notice.into());
    }

    pub fn handle(&mut self, event: AppEvent) -> Vec<Command> {
        let mut actions = Vec::new();
        let mut commands = Vec::new();
        match &event {
            AppEvent::Input(Event::Resize(w, h)) => self.set_size(*w, *h),
            AppEvent::Input(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                self.on_key(key, &event, &mut actions, &mut commands);
            }
            AppEvent::Input(Event::Mouse(m)) => {
                if let Some(areas) = layout::areas(self.size)
                    && let Some(id) = areas.hit(m.column, m.row)
                {
                    match m.kind {
                        MouseEventKind::Down(MouseButton::Left) => self.set_focus(id),
                        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                            self.pane(id).handle(&event, &mut actions);
                        }
                        _ => {}
                    }
                }
            }
            AppEvent::Input(Event::Paste(_)) if self.overlay == Overlay::None => {
                self.pane(self.focus).handle(&event, &mut actions);
            }
            AppEvent::Job(job_event) => {
                for id in [PaneId::Queue, PaneId::Gauges, PaneId::Preview] {
                    self.pane(id).handle(&event, &mut actions);
                }
                match job_event {
                    JobEvent::Failed { job, error } => {
                        self.notice = Some(format!("job {job} failed: {}", ellipsize(error, 80)))
                    }
                    JobEvent::Done { job, .. } => self.notice = Some(format!("job {job} done")),
                    _ => {}
                }
            }
            AppEvent::System(_) => {
                self.gauges.handle(&event, &mut actions);
            }
            AppEvent::Signal(SignalKind::Terminate) => {
                commands.push(Command::Quit(QuitMode::CancelJobs))
            }
            AppEvent::Signal(SignalKind::Hangup) => {
                commands.push(Command::Quit(QuitMode::KeepJobs))
            }
            AppEvent::History(h) => self.prompt.set_history(h.clone()),
            AppEvent::Notice(n) => self.notice = Some(n.clone()),
            AppEvent::Submitted { job, spec } => self.job_submitted(*job, spec),
            AppEvent::Image { label, image } => self.show_image(label.clone(), (**image).clone()),
            AppEvent::Tick | AppEvent::Input(_) => {}
        }
        for action in actions {
            self.apply(action, &mut commands);
        }
        if let Some(Command::Quit(mode)) = commands.iter().find(|c| matches!(c, Command::Quit(_))) {
            self.quit = Some(*mode);
        }
        commands
    }

    fn on_key(
        &mut self,
        key: &KeyEvent,
        event: &AppEvent,
        actions: &mut Vec<Action>,
        commands: &mut Vec<Command>,
    ) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match self.overlay {
            Overlay::Help => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('?' | 'q') | KeyCode::Enter
                ) {
                    self.overlay = Overlay::None;
                }
                return;
            }
            Overlay::ConfirmQuit => {
                match key.code {
                    KeyCode::Char('c' | 'y') => commands.push(Command::Quit(QuitMode::CancelJobs)),
                    KeyCode::Char('k') => commands.push(Command::Quit(QuitMode::KeepJobs)),
                    KeyCode::Esc | KeyCode::Char('n') => self.overlay = Overlay::None,
                    _ => {}
                }
                return;
            }
            Overlay::None => {}
        }
        match key.code {
            KeyCode::Char('c') if ctrl => return self.request_quit(commands),
            KeyCode::Char('g') if ctrl => return actions.push(Action::Submit),
            KeyCode::F(5) => return actions.push(Action::Submit),
            _ => {}
        }
        if layout::too_small(self.size) {
            if key.code == KeyCode::Char('q') {
                self.request_quit(commands);
            }
            return;
        }
        if self.pane(self.focus).handle(event, actions) == Handled::Consumed {
            return;
        }
        match key.code {
            KeyCode::Tab => self.set_focus(self.focus.next(true)),
            KeyCode::BackTab => self.set_focus(self.focus.next(false)),
            KeyCode::Char('?') => self.overlay = Overlay::Help,
            KeyCode::Char('q') => self.request_quit(commands),
            _ => {}
        }
    }

    fn request_quit(&mut self, commands: &mut Vec<Command>) {
        if self.queue.active() > 0 {
            self.overlay = Overlay::ConfirmQuit;
        } else {
            commands.push(Command::Quit(QuitMode::CancelJobs));
        }
    }

    fn apply(&mut self, action: Action, commands: &mut Vec<Command>) {
        match action {
            Action::Submit => self.submit(commands),
            Action::Cancel(id) => commands.push(Command::Cancel(id)),
            Action::Retry(id) => commands.push(Command::Retry(id)),
            Action::Move { job, index } => commands.push(Command::Move { job, index }),
            Action::TogglePause => {
                self.paused ^= true;
                self.queue.set_paused(self.paused);
                commands.push(Command::SetPaused(self.paused));
            }
            Action::ParamsChanged => self.recompute_compat(),
            Action::ShowOutput(path) => commands.push(Command::LoadImage(path)),
            Action::Notice(n) => self.notice = Some(n),
        }
    }

    fn submit(&mut self, commands: &mut Vec<Command>) {
        let prompt = self.prompt.prompt();
        if prompt.trim().is_empty() {
            self.notice = Some("type a prompt first".into());
            return;
        }
        let mut spec = match self.params.form().to_spec() {
            Ok(spec) => spec,
            Err(e) => {
                self.notice = Some(e);
                return;
            }
        };
        if spec.model.is_empty() {
            self.notice = Some("choose a model first (Parameters → model, Enter)".into());
            return;
        }
        if let Some(f) = self
            .compat
            .findings()
            .iter()
            .find(|f| f.severity == crate::models::Severity::Error)
        {
            self.notice = Some(format!("not queued: {} ({})", f.message, f.fix));
            return;
        }
        spec.prompt = prompt.clone();
        spec.negative = self.prompt.negative();
        let history = self.prompt.remember(&prompt).to_vec();
        commands.push(Command::SaveHistory(history));
        commands.push(Command::Submit(Box::new(spec)));
        self.notice = None;
    }

    /// Encodes the preview for the current layout; call before `draw` (drawing stays cheap).
    pub fn prepare(&mut self, area: Rect) {
        self.size = area;
        if let Some(areas) = layout::areas(area) {
            self.preview.prepare(areas.get(PaneId::Preview));
        }
    }

    pub fn draw(&self, frame: &mut Frame) {
        let area = frame.area();
        let Some(areas) = layout::areas(area) else {
            overlay::too_small(frame, area, &self.theme);
            return;
        };
        self.draw_panes(frame, &areas);
        match self.overlay {
            Overlay::Help => overlay::help(frame, area, &self.theme),
            Overlay::ConfirmQuit => {
                overlay::confirm_quit(frame, area, &self.theme, self.queue.active())
            }
            Overlay::None => {}
        }
    }

    fn draw_panes(&self, frame: &mut Frame, areas: &Areas) {
        let (backend, dtype) = self.target();
        let model = self.params.form().model.clone();
        let subject = format!(
            "{} · {} · {}",
            if model.is_empty() { "no model" } else { &model },
            backend.as_str(),
            dtype.as_str()
        );
        overlay::status(
            frame,
            areas.status,
            &self.theme,
            &subject,
            self.notice.as_deref(),
        );
        for (id, rect) in &areas.panes {
            let ctx = DrawCtx {
                theme: &self.theme,
                focused: *id == self.focus && self.overlay == Overlay::None,
            };
            self.pane_ref(*id).draw(frame, *rect, &ctx);
        }
    }
}
