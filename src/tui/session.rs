//! One TUI session after another: each drives one queue — this machine's runner, or a remote
//! `pallaidium serve` — until the user quits, or picks another host in the hosts view (F2).

use std::sync::Arc;

use super::app::{AppConfig, CompatEnv, QuitMode};
use super::batch::StartJobs;
use super::hosts::{self, HostEntry, HostsView, Target};
use super::preview::PreviewProtocol;
use super::queue_link::{LocalQueue, QueueLink};
use super::remote_queue::RemoteQueue;
use super::runner_link::runner_link;
use super::sampler::DeviceGauge;
use super::theme::Theme;
use super::{HISTORY_ROWS, LoopParts, compat_env, initial_form, quit, run_loop};
use crate::cli::Cli;
use crate::jobs::{JobRunner, Store};
use crate::models::Registry;
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::serve::machine::SystemReport;

/// What a session of the TUI starts from, whichever queue it drives.
pub struct Session<'a> {
    pub cli: &'a Cli,
    pub switches: &'a Switches,
    pub paths: &'a Paths,
    pub registry: &'a Registry,
    pub protocol: PreviewProtocol,
    pub theme: Theme,
    pub notice: Option<String>,
    /// Where the LoRA picker looks.
    pub loras: super::lora_files::LoraSources,
}

impl Session<'_> {
    /// Sessions one after the other: on the command line's host (`--host`, else this machine),
    /// then on each host the hosts view switches to. A server that cannot be reached on a
    /// switch leaves the session where it was, saying why.
    pub fn run_hosts(&self, start_jobs: StartJobs) -> anyhow::Result<i32> {
        let config_file = self.paths.home.join("config.toml");
        let hosts = hosts::load(&config_file)?;
        let mut target = match self.cli.remote.host.as_deref() {
            Some(url) => {
                let listed = hosts
                    .iter()
                    .find(|h| h.url.trim_end_matches('/') == url.trim_end_matches('/'));
                let mut host = listed.cloned().unwrap_or_else(|| HostEntry {
                    name: "--host".to_owned(),
                    url: url.to_owned(),
                    token_file: None,
                });
                if let Some(token) = &self.cli.remote.token_file {
                    host.token_file = Some(token.clone());
                }
                Target::Remote(host)
            }
            None => Target::Local,
        };
        // The command line's jobs go to the first host only.
        let mut start_jobs = Some(start_jobs);
        let mut previous: Option<Target> = None;
        let mut notice = None;
        loop {
            let view = HostsView::new(hosts.clone(), &target, config_file.clone());
            let jobs = start_jobs.take().unwrap_or_default();
            let quit = match &target {
                Target::Local => self.local(jobs, view.clone(), notice.take())?,
                Target::Remote(host) => match self.connect(host, &jobs) {
                    Ok(link) => self.remote(link, host, jobs, view.clone(), notice.take())?,
                    Err(err) => match previous.take() {
                        // Back where the switch came from, saying why.
                        Some(back) => {
                            notice = Some(format!("cannot switch to {}: {err}", host.name));
                            target = back;
                            continue;
                        }
                        None => return Err(err.into()),
                    },
                },
            };
            match quit {
                QuitMode::Switch(index) => {
                    previous = Some(std::mem::replace(&mut target, view.target(index)));
                }
                _ => return Ok(0),
            }
        }
    }

    fn app_config(&self, notice: Option<String>, device: &str, compat: CompatEnv) -> AppConfig {
        AppConfig {
            theme: self.theme,
            notice: notice.or_else(|| self.notice.clone()),
            form: initial_form(self.cli, device),
            prompt: self.cli.job.job.prompt.clone().unwrap_or_default(),
            negative: self.cli.job.job.negative.clone().unwrap_or_default(),
            compat,
            picker: None,
        }
    }

    /// This machine's runner.
    fn local(
        &self,
        start_jobs: StartJobs,
        hosts: HostsView,
        notice: Option<String>,
    ) -> anyhow::Result<QuitMode> {
        // The runner starts before the terminal is taken, so its errors print plainly.
        let link = runner_link(self.cli, self.paths, self.switches, self.registry)?;
        let store = Store::open(&self.paths.queue_db).map_err(crate::Error::from)?;
        let runner = Arc::new(JobRunner::start(store, link.config)?);
        // Subscribed before anything is queued: the loop replays what happens until it runs.
        let queue = Arc::new(LocalQueue::new(Arc::clone(&runner), link.probe));
        let (started, started_notice) = start_jobs.queue(&runner)?;
        let compat = compat_env(self.cli, self.paths, self.registry, link.backend);
        let app_config = self.app_config(notice.or(started_notice), &link.device, compat);
        let quit = self.run_loop(
            app_config,
            LoopParts {
                runner: queue,
                history_rows: HISTORY_ROWS + started.len(),
                planner: Some(Arc::new(link.planner)),
                hosts,
                loras: self.loras.clone(),
            },
            Some(&link.downloads),
        )?;
        quit::finish(runner, quit, self.paths);
        Ok(quit)
    }

    /// Reaches a server: its token read, its machine report fetched.
    fn connect(
        &self,
        host: &HostEntry,
        start_jobs: &StartJobs,
    ) -> crate::Result<(RemoteQueue, SystemReport)> {
        if start_jobs.resume {
            return Err(crate::Error::bad_input(
                "--resume reads this machine's queue; with --host the server keeps its own \
                 (it resumes its jobs when it starts)",
            ));
        }
        let token = host
            .token_file
            .as_deref()
            .map(crate::serve::auth::read_token_file)
            .transpose()?;
        RemoteQueue::connect(&host.url, token, self.paths.outputs.clone())
    }

    /// A remote `pallaidium serve` (`--host URL`, or a host of the config file).
    fn remote(
        &self,
        (queue, report): (RemoteQueue, SystemReport),
        host: &HostEntry,
        start_jobs: StartJobs,
        hosts: HostsView,
        notice: Option<String>,
    ) -> anyhow::Result<QuitMode> {
        let queue = Arc::new(queue);
        let mut queued = Vec::new();
        for (i, spec) in start_jobs.specs.iter().enumerate() {
            match QueueLink::submit(&*queue, spec) {
                Ok(jobs) => queued.extend(jobs.into_iter().map(|(id, _)| id)),
                Err(e) => {
                    queued.iter().for_each(|&id| {
                        let _ = QueueLink::cancel(&*queue, id);
                    });
                    return Err(e.in_batch(i, start_jobs.specs.len()).into());
                }
            }
        }
        let notice = notice.or_else(|| {
            (!queued.is_empty())
                .then(|| format!("queued {} job(s) from the command line", queued.len()))
        });
        let mut compat = compat_env(self.cli, self.paths, self.registry, report.backend);
        // The server's machine, not this one, decides what fits.
        compat.chip = None;
        compat.macos_version = None;
        compat.memory_budget_bytes = match &report.machine.device {
            Some(DeviceGauge::Discrete { total, .. }) => Some(*total),
            Some(DeviceGauge::Unified { budget, .. }) => Some(*budget),
            None => Some(report.machine.ram_total),
        };
        let device = format!("{} @ {}", report.device, host.url);
        let app_config = self.app_config(notice, &device, compat);
        let quit = self.run_loop(
            app_config,
            LoopParts {
                runner: Arc::clone(&queue) as Arc<dyn QueueLink>,
                history_rows: HISTORY_ROWS + queued.len(),
                planner: None,
                hosts,
                loras: self.loras.clone(),
            },
            None,
        )?;
        queue.finish(quit);
        Ok(quit)
    }

    /// Runs the event loop; `downloads` is cancelled as it ends, before the runtime goes: a
    /// download a submit started would hold the exit (the runtime waits for blocking tasks).
    fn run_loop(
        &self,
        config: AppConfig,
        parts: LoopParts,
        downloads: Option<&crate::engines::CancelToken>,
    ) -> anyhow::Result<QuitMode> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let quit = runtime.block_on(run_loop(config, parts, self.protocol, self.paths));
        if let Some(downloads) = downloads {
            downloads.cancel();
        }
        quit
    }
}
