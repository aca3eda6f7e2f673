//! The ratatui workbench. One event loop: terminal input, ticks, job events and system snapshots
//! arrive on one channel; the app drains it, then draws at most ~30 frames a second. Work that
//! could block (the runner's database, image files, history) runs on blocking threads.

pub mod app;
pub mod batch;
pub mod commands;
pub mod event;
pub mod help;
pub mod history;
pub mod hosts;
pub mod keys;
pub mod layout;
pub mod lora_files;
pub mod overlay;
pub mod panes;
pub mod planning;
pub mod preview;
pub mod queue_link;
pub mod quit;
pub mod remote_queue;
pub mod runner_link;
pub mod sampler;
mod session;
pub mod terminal;
pub mod theme;

use std::sync::Arc;
use std::time::Duration;

use self::app::{App, AppConfig, CompatEnv, QuitMode};
use self::commands::Services;
use self::event::AppEvent;
use self::hosts::HostsView;
use self::panes::form::Form;
use self::panes::form_toolkit::Toolkit;
use self::panes::queue::JobRow;
use self::planning::FormPlanner;
use self::preview::PreviewProtocol;
use self::theme::Theme;
use crate::cli::Cli;
use crate::models::Registry;
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::vocab::{Backend, ResidencyChoice};

const FRAME: Duration = Duration::from_millis(33);
const TICK: Duration = Duration::from_millis(250);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const HISTORY_ROWS: usize = 30;

/// Opens the TUI and returns the process exit code (0, or 2 for bad configuration).
pub fn run(cli: &Cli, switches: &Switches) -> anyhow::Result<i32> {
    // The flag, else PALLAIDIUM_PREVIEW_PROTOCOL (checked at start), else auto.
    let protocol: PreviewProtocol = match &cli.global.preview_protocol {
        Some(flag) => flag
            .parse()
            .map_err(|e: String| crate::Error::bad_input(format!("--preview-protocol: {e}")))?,
        None => switches
            .preview_protocol
            .as_deref()
            .unwrap_or("auto")
            .parse()
            .map_err(|e: String| {
                crate::Error::bad_input(format!("PALLAIDIUM_PREVIEW_PROTOCOL: {e}"))
            })?,
    };
    let paths = Paths::resolve(cli.global.out.as_deref(), switches)?;
    paths.create_dirs()?;
    let registry = Registry::load(cli.global.models_file.as_deref())?;
    let start_jobs = batch::StartJobs::read(cli)?;
    // `[loras] dir` of the config file: a wrong one is refused before the terminal is taken.
    let loras = lora_files::LoraSources::load(
        &paths.home,
        &paths.home.join("config.toml"),
        switches.lora_dir.as_deref(),
        Some(paths.hf_cache.clone()),
    )?;
    let theme_dirs = vec![paths.home.join("themes"), "themes".into()];
    let (theme, notice) =
        Theme::load_or_dark(cli.global.theme.as_deref().unwrap_or("dark"), &theme_dirs);
    let session = session::Session {
        cli,
        switches,
        paths: &paths,
        registry: &registry,
        protocol,
        theme,
        notice,
        loras,
    };
    session.run_hosts(start_jobs)
}

/// The form as the job flags pre-fill it; `device` is the runner's, fixed for the session.
pub(crate) fn initial_form(cli: &Cli, device: &str) -> Form {
    let j = &cli.job.job;
    let text = |v: Option<String>| v.unwrap_or_default();
    Form {
        model: text(j.model.clone()),
        steps: text(j.steps.map(|v| v.to_string())),
        guidance: text(j.guidance.map(|v| v.to_string())),
        seed: text(j.seed.map(|v| v.to_string())),
        random_seed: j.seed.is_none(),
        size: match (j.width, j.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => String::new(),
        },
        batch: text(j.batch.map(|v| v.to_string())),
        scheduler: text(j.scheduler.map(|s| s.to_string())),
        strength: text(j.strength.map(|v| v.to_string())),
        init_image: text(
            j.caption
                .as_ref()
                .or(j.init_image.as_ref())
                .map(|p| p.display().to_string()),
        ),
        mask: text(j.mask.as_ref().map(|p| p.display().to_string())),
        dtype: cli.global.dtype,
        residency: j.residency.filter(|r| *r != ResidencyChoice::Auto),
        device: device.to_owned(),
        // --kind names it for a folder model; otherwise the parameters pane takes the registry's.
        kind: j.kind.map(crate::models::Kind::for_job),
        // The parameters pane takes the registry's.
        family: None,
        voice: text(j.voice.clone()),
        duration: text(j.duration.map(|v| v.to_string())),
        frames: text(j.frames.map(|v| v.to_string())),
        fps: text(j.fps.map(|v| v.to_string())),
        audio: text(j.audio.as_ref().map(|p| p.display().to_string())),
        language: text(j.language.clone()),
        translate: j.translate.unwrap_or(false),
        toolkit: Toolkit::from_flags(j),
        base: j.clone(),
    }
}

pub(crate) fn compat_env(
    cli: &Cli,
    paths: &Paths,
    registry: &Registry,
    backend: Backend,
) -> CompatEnv {
    let platform = crate::platform::PlatformInfo::detect();
    CompatEnv {
        backend,
        chip: platform.chip.clone(),
        macos_version: platform.macos_version.as_ref().map(|v| v.to_string()),
        memory_budget_bytes: crate::device::memory::parse_memory_budget(
            cli.global.memory_budget.as_deref(),
        )
        .ok()
        .flatten()
        .or_else(|| Some(crate::platform::memory::SystemMemory::query().usable_available())),
        hf_token_present: paths.hf_token_set(),
        entries: registry.entries().to_vec(),
    }
}

/// What the event loop runs with besides the app's configuration.
pub(crate) struct LoopParts {
    /// The queue: its events are forwarded from when the link was made.
    pub runner: Arc<dyn queue_link::QueueLink>,
    /// Rows of history the queue shows at start (the command line's jobs included).
    pub history_rows: usize,
    pub planner: Option<Arc<FormPlanner>>,
    /// The hosts view, the session's host marked.
    pub hosts: HostsView,
    /// Where the LoRA picker looks.
    pub loras: lora_files::LoraSources,
}

pub(crate) async fn run_loop(
    config: AppConfig,
    parts: LoopParts,
    protocol: PreviewProtocol,
    paths: &Paths,
) -> anyhow::Result<QuitMode> {
    let LoopParts {
        runner,
        history_rows,
        planner,
        hosts,
        loras,
    } = parts;
    let mut guard = terminal::TerminalGuard::enter()?;
    // The capability query reads stdin, so it runs before the input reader starts; keys typed
    // while it waited come back from it and go first.
    let preview = protocol.picker();
    let mut app = App::new(AppConfig {
        picker: preview.picker,
        ..config
    });
    let size = guard.terminal.size()?;
    app.set_size(size.width, size.height);
    app.hosts = hosts;
    for record in runner
        .history(history_rows)
        .unwrap_or_default()
        .into_iter()
        .rev()
    {
        let mut row = JobRow::new(record.id, app::job_label(&record.spec), record.state);
        row.outputs = record.outputs;
        row.error = record.error;
        app.queue.upsert(row);
    }

    let (tx, mut rx) = event::channel();
    for typed in preview.typed {
        let _ = tx.send(AppEvent::Input(typed));
    }
    event::spawn_input(tx.clone());
    event::spawn_ticks(tx.clone(), TICK);
    event::spawn_signals(tx.clone());
    runner.spawn_sampler(SAMPLE_EVERY, tx.clone());
    runner.forward_events(tx.clone());
    let services = Services {
        runner: Arc::clone(&runner),
        tx: tx.clone(),
        history_file: history::path(&paths.home),
        planner,
        plan_latest: Arc::default(),
        loras,
    };
    for command in app.start_commands() {
        services.execute(command);
    }
    {
        let (tx, file) = (tx.clone(), services.history_file.clone());
        tokio::task::spawn_blocking(move || {
            let _ = tx.send(AppEvent::History(history::load(&file)));
        });
    }

    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    // A playing clip's frame clock (runs only while one plays).
    let mut clip_clock = tokio::time::interval(preview::video::FRAME_EVERY);
    clip_clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Held while jobs are queued or running, so the machine does not sleep under a long batch.
    let mut awake: Option<crate::platform::KeepAwake> = None;
    loop {
        tokio::select! {
            received = rx.recv() => {
                let Some(first) = received else { break };
                let mut commands = app.handle(first);
                while let Ok(more) = rx.try_recv() {
                    commands.extend(app.handle(more));
                }
                for command in commands {
                    services.execute(command);
                }
                match (app.active_jobs() > 0, awake.is_some()) {
                    (true, false) => awake = Some(crate::platform::KeepAwake::acquire("pallaidium is generating")),
                    (false, true) => awake = None,
                    _ => {}
                }
                dirty = true;
            }
            _ = clip_clock.tick(), if app.animating() => {
                dirty |= app.animate(std::time::Instant::now());
            }
            _ = frames.tick(), if dirty => {
                let area = guard.terminal.size()?;
                app.prepare(ratatui::layout::Rect::new(0, 0, area.width, area.height));
                guard.terminal.draw(|frame| app.draw(frame))?;
                dirty = false;
            }
        }
        if let Some(mode) = app.quit() {
            return Ok(mode);
        }
    }
    Ok(QuitMode::CancelJobs)
}
