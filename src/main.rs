//! The binary: parse the command line, set up the platform and logging, hand over to the TUI, a
//! headless run or a subcommand, and turn the outcome into the exit code DESIGN.md promises.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use pallaidium::cli::{Cli, Command};
use pallaidium::logging::{LogMode, LogOptions};
use pallaidium::platform::switches::Switches;
use pallaidium::platform::{self, PlatformInfo, paths::Paths};
use pallaidium::{commands, headless, logging, tui};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            // For the log file; stderr shows only warnings unless asked, so the user sees it once.
            tracing::info!(target: "pallaidium::exit", "error: {err:#}");
            // Messages quote user text (prompts, paths): no control characters reach the terminal.
            let shown = format!("{err:#}");
            eprintln!(
                "error: {}",
                pallaidium::terminal_text::escape_controls(&shown)
            );
            pallaidium::error::exit_code_of(&err)
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(cli: &Cli) -> anyhow::Result<i32> {
    // Every PALLAIDIUM_* variable, read here once; a malformed one is bad input (exit 2).
    let switches = Switches::from_env()?;
    let platform = PlatformInfo::detect();
    platform::prepare_environment(&platform, &switches);
    // A subcommand's own flags (`doctor --device cpu`) over the ones given before it.
    let global = cli.effective_global();
    let paths = Paths::resolve(global.out.as_deref(), &switches)?;
    // The TUI needs a terminal on both ends; without one (a pipe, cron, a CI job) the same flags
    // run headless. --history is a listing, not a screen: it prints like --headless.
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let headless = cli.headless || cli.batch.history || !terminal;
    let tui_owns_screen = cli.command.is_none() && !headless;
    let mode = if tui_owns_screen {
        LogMode::Tui
    } else {
        LogMode::Headless
    };
    // `serve` keeps its newest log lines for clients (`GET /api/v1/logs`).
    let ring = matches!(cli.command, Some(Command::Serve(_))).then(|| {
        std::sync::Arc::new(pallaidium::log_ring::LogRing::new(
            pallaidium::serve::limits::RETAINED_LOG_LINES,
        ))
    });
    let _log = logging::init(&LogOptions {
        level: global.log_level.clone(),
        env_filter: switches.log.clone(),
        log_dir: paths.logs.clone(),
        mode,
        ring: ring.clone(),
    })?;
    logging::log_system_info(&platform);
    switches.log_at_start();
    if cli.command.is_none() && !cli.headless && !terminal {
        tracing::info!("no terminal on stdin/stdout: running headless");
    }

    match &cli.command {
        Some(Command::Doctor { json, .. }) => commands::doctor::run(&global, &switches, *json),
        Some(Command::Models { json, .. }) => commands::models::run(&global, &switches, *json),
        Some(Command::Fetch {
            model,
            dtype,
            quant,
            ..
        }) => commands::fetch::run(&global, &switches, model, *dtype, quant.as_deref()),
        Some(Command::Info { file, json }) => commands::info::run(file, *json),
        Some(Command::Bench { what }) => commands::bench::run(&global, &switches, what),
        Some(Command::Serve(args)) => commands::serve::run(cli, &global, &switches, args, ring),
        Some(Command::Worker(args)) => commands::worker::run(&global, &switches, args),
        None if cli.job.plan => commands::plan::run(&cli.global, &switches, &cli.job),
        None if headless => headless::run(cli, &switches),
        None => tui::run(cli, &switches),
    }
}
