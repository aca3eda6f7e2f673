//! `JobRunner`: the handle the TUI and headless mode drive. Jobs are validated, persisted, then
//! run by a worker thread (candle work blocks, so it stays off the async runtime); every change is
//! a `JobEvent`, delivered to every watcher in order (each has its own queue: none misses one).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::jobs::output::OutputWriter;
use crate::jobs::run::config::RunnerConfig;
use crate::jobs::run::event_hub::{EventHub, JobEvents};
use crate::jobs::run::events::{JobEvent, JobId};
use crate::jobs::run::queue::{CancelOutcome, Queue, Takes};
use crate::jobs::run::worker::{Shared, Worker};
use crate::jobs::spec::media::{DEFAULT_ENHANCER, default_model, fill_media_spec, settle_kind};
use crate::jobs::spec::resolve::{build_request, fill_spec};
use crate::jobs::spec::{JobOverrides, JobSpec};
use crate::jobs::store::{JobRecord, JobStore, Lease};

pub struct JobRunner {
    shared: Arc<Shared>,
    config: RunnerConfig,
    worker: Option<JoinHandle<()>>,
}

impl JobRunner {
    /// Starts the worker on `store`, running the jobs this runner queues or adopts. Partial
    /// files left by killed runs are removed first.
    pub fn start(store: impl JobStore + 'static, config: RunnerConfig) -> crate::Result<Self> {
        Self::start_taking(Box::new(store), Takes::Own, config)
    }

    /// Starts the worker on `store`, taking the jobs `takes` says.
    pub fn start_taking(
        store: Box<dyn JobStore>,
        takes: Takes,
        config: RunnerConfig,
    ) -> crate::Result<Self> {
        // Other machines' partial files in a shared folder carry pids this one cannot check:
        // only a runner alone on its queue sweeps.
        if !store.is_shared() {
            let swept = OutputWriter::new(&config.out_dir).sweep_stale_temps();
            if swept > 0 {
                tracing::info!(swept, "removed partial outputs of runs that were killed");
            }
        }
        let shared = Arc::new(Shared {
            queue: std::sync::Mutex::new(Queue::taking(store, takes)),
            wake: std::sync::Condvar::new(),
            events: EventHub::new(),
            closing: AtomicBool::new(false),
            bad_input_failures: std::sync::Mutex::new(std::collections::HashSet::new()),
        });
        let worker = Worker::new(Arc::clone(&shared), config.clone());
        let handle = std::thread::Builder::new()
            .name(format!("pallaidium-worker-{}", config.device.name))
            .spawn(move || worker.run())
            .map_err(|e| {
                crate::Error::job_failed(format!("cannot start the worker thread: {e}"))
            })?;
        Ok(Self {
            shared,
            config,
            worker: Some(handle),
        })
    }

    /// Every event from now on, in order; the queue ends when the worker has ended.
    pub fn subscribe(&self) -> JobEvents {
        self.shared.events.subscribe()
    }

    /// Checks one job as asked and fills in everything (the model's defaults, a recorded seed,
    /// absolute paths) into its `JobSpec`, without queueing it. Every problem is
    /// `Error::BadInput`.
    pub fn prepare(&self, asked: &JobOverrides) -> crate::Result<JobSpec> {
        let mut asked = asked.clone();
        if asked.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
            asked.model = Some(default_model(&asked).ok_or_else(|| {
                crate::Error::bad_input(
                    "no model given: pass --model ID|DIR (see `pallaidium models`)",
                )
            })?);
        }
        let model_id = asked.model.clone().unwrap_or_default();
        let model = (self.config.models)(&model_id)?;
        let kind = settle_kind(asked.kind_asked(), &model.id, model.kind)?;
        if kind.makes_video() {
            crate::jobs::spec::video::refuse_last_without_first(&asked)?;
        }
        if kind == crate::vocab::JobKind::Txt2vid && model.family == crate::models::Family::Wan {
            crate::engines::wan::pipeline::check_text_to_video(&model.dir)?;
        }
        if kind.makes_images() {
            if asked.enhance == Some(true) && asked.enhanced_from.is_none() {
                asked.enhancer = Some(self.enhancer(&asked)?);
            }
        } else if asked.enhance == Some(true) {
            return Err(crate::Error::bad_input(format!(
                "--enhance rewrites image prompts; a {} job takes its prompt as it is",
                kind.as_str()
            )));
        }
        let mut filled = if kind.makes_video() {
            let geometry = crate::jobs::spec::video::VideoGeometry::read(model.family, &model.dir)?;
            crate::jobs::spec::video::fill_video_spec(
                &asked,
                kind,
                (model.kind, geometry),
                &model.defaults,
            )?
        } else if kind.makes_images() {
            crate::jobs::spec::upscale::refuse_stray_flags(&asked, true)?;
            crate::jobs::spec::video::refuse_video_flags(&asked, kind)?;
            let mut filled = fill_spec(&asked, kind, &model.defaults, model.family)?;
            if let Some(p) = filled.image_mut() {
                p.upscale =
                    crate::jobs::spec::upscale::upscale_step(&asked, (p.width, p.height), |id| {
                        (self.config.models)(id)
                    })?;
            }
            filled
        } else {
            crate::jobs::spec::video::refuse_video_flags(&asked, kind)?;
            fill_media_spec(&asked, kind, &model.defaults)?
        };
        if let crate::jobs::spec::Params::Video(p) = &filled.params
            && filled.kind == crate::vocab::JobKind::Img2vid
            && model.family == crate::models::Family::Wan
        {
            crate::engines::wan::pipeline::check_image_frames(&model.dir, p.last_image.is_some())?;
        }
        // A local folder is stored absolute, so --resume works from any directory.
        if Path::new(&filled.model).exists()
            && let Ok(abs) = std::path::absolute(&filled.model)
        {
            filled.model = abs.to_string_lossy().into_owned();
        }
        let dtype = (self.config.device.dtype)(filled.dtype)?;
        if filled.kind.makes_video() {
            // A job that cannot fit is refused now, before anything is queued or loaded.
            if let Some(planner) = &self.config.planner {
                planner.plan_video((&model.dir, model.family), &filled, dtype)?;
            }
            return Ok(filled);
        }
        if !filled.kind.makes_images() {
            if let Some(planner) = &self.config.planner {
                planner.plan_media(&model.dir, model.family, &filled, dtype)?;
            }
            return Ok(filled);
        }
        let request = build_request(&filled, 0)?;
        // A job that cannot fit is refused now, before anything is queued or loaded.
        if let Some(planner) = &self.config.planner {
            planner.plan(
                &model.dir,
                &filled,
                &request,
                dtype,
                (model.family, &model.weights),
            )?;
        }
        Ok(filled)
    }

    /// The enhancer of an image job asked to `--enhance`: a text model, stored absolute when a
    /// folder, with a prompt to enhance.
    fn enhancer(&self, asked: &JobOverrides) -> crate::Result<String> {
        let id = asked
            .enhancer
            .clone()
            .unwrap_or_else(|| DEFAULT_ENHANCER.to_owned());
        let enhancer = (self.config.models)(&id)?;
        if enhancer.kind != crate::models::Kind::Text {
            return Err(crate::Error::bad_input(format!(
                "--enhancer {id}: that model makes {}, not text; use a prompt-enhancer model \
                 such as `{DEFAULT_ENHANCER}`",
                enhancer.kind
            )));
        }
        if asked
            .prompt
            .as_deref()
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            return Err(crate::Error::bad_input(
                "--enhance needs --prompt: the idea to turn into a detailed prompt",
            ));
        }
        Ok(if Path::new(&id).exists() {
            std::path::absolute(&id).map_or(id.clone(), |p| p.to_string_lossy().into_owned())
        } else {
            id
        })
    }

    /// Whether `id` failed on bad input (e.g. model files that do not match their config).
    pub fn failed_on_bad_input(&self, id: JobId) -> bool {
        self.shared
            .bad_input_failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&id)
    }

    /// Checks every job, then persists them all (or none) and queues them.
    pub fn submit(&self, specs: &[JobOverrides]) -> crate::Result<Vec<JobId>> {
        Ok(self
            .submit_prepared(specs)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// `submit`, returning each job's prepared spec with its id.
    pub fn submit_prepared(&self, specs: &[JobOverrides]) -> crate::Result<Vec<(JobId, JobSpec)>> {
        let prepared = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                self.prepare(spec)
                    .map_err(|err| err.in_batch(i, specs.len()))
            })
            .collect::<crate::Result<Vec<_>>>()?;
        // An output folder that cannot take the outputs is refused now, not after the work.
        crate::jobs::output::out_dir::check_for_jobs(&self.config.out_dir, &prepared)?;
        // Announced while the queue is still locked, so `queued` always comes before the
        // worker's first event for the job.
        let mut queue = self.shared.lock();
        let queued = queue.push(&prepared)?;
        for &(job, position) in &queued {
            self.shared.emit(JobEvent::Queued { job, position });
        }
        drop(queue);
        self.shared.wake.notify_all();
        Ok(queued.into_iter().map(|(id, _)| id).zip(prepared).collect())
    }

    /// Takes on every queued and interrupted job in the store (`--resume`).
    pub fn resume_pending(&self) -> crate::Result<Vec<JobId>> {
        let ids = self.shared.lock().adopt_pending()?;
        for (position, &job) in ids.iter().enumerate() {
            self.shared.emit(JobEvent::Queued { job, position });
        }
        self.shared.wake.notify_all();
        Ok(ids)
    }

    /// Cancels a waiting job now, or asks the running one to stop within a step.
    pub fn cancel(&self, id: JobId) -> crate::Result<CancelOutcome> {
        let outcome = self.shared.lock().cancel(id)?;
        if outcome == CancelOutcome::Dequeued {
            self.shared.emit(JobEvent::Cancelled { job: id });
        }
        Ok(outcome)
    }

    pub fn move_to(&self, id: JobId, index: usize) -> crate::Result<()> {
        Ok(self.shared.lock().move_to(id, index)?)
    }

    pub fn set_paused(&self, paused: bool) {
        self.shared.lock().set_paused(paused);
        self.shared.wake.notify_all();
    }

    /// Why the queue stopped by itself (an output could not be written), if it did: nothing
    /// more starts until `set_paused(false)` or a retry.
    pub fn halted(&self) -> Option<String> {
        self.shared.lock().halted().map(str::to_owned)
    }

    /// Queues a failed, cancelled or interrupted job again.
    pub fn retry(&self, id: JobId) -> crate::Result<()> {
        let position = self.shared.lock().retry(id)?;
        self.shared.emit(JobEvent::Queued { job: id, position });
        self.shared.wake.notify_all();
        Ok(())
    }

    /// Ctrl-C / SIGTERM: start nothing more and stop the running job (it becomes interrupted;
    /// waiting jobs stay queued). Returns the running job, whose `cancelled` event will follow.
    pub fn stop(&self) -> Option<JobId> {
        let running = self.shared.lock().stop();
        self.shared.wake.notify_all();
        running
    }

    /// A job as stored now.
    pub fn record(&self, id: JobId) -> crate::Result<JobRecord> {
        Ok(self.shared.lock().store_mut().get(id)?)
    }

    /// The newest `limit` jobs.
    pub fn history(&self, limit: usize) -> crate::Result<Vec<JobRecord>> {
        Ok(self.shared.lock().store_mut().history(limit)?)
    }

    /// Whether a job is running, how many jobs this runner has claimed, and whether it may
    /// claim more (`Takes::Any`'s limit).
    pub fn activity(&self) -> (bool, usize, bool) {
        let queue = self.shared.lock();
        let (claimed, more) = queue.claims();
        (queue.running().is_some(), claimed, more)
    }

    /// Renews the running job's lease (a shared queue's heartbeat). A cancel asked elsewhere
    /// stops the job as a cancel; a lost lease stops it as a shutdown would (it is back in
    /// the queue, and another worker runs it).
    pub fn keep_alive(&self) -> crate::Result<()> {
        let mut queue = self.shared.lock();
        let Some(id) = queue.running().map(|r| r.id) else {
            return Ok(());
        };
        match queue.store_mut().heartbeat(id)? {
            Lease::Held => {}
            Lease::CancelRequested => {
                tracing::info!(job = %id, "cancel asked through the queue");
                queue.cancel(id)?;
            }
            Lease::Lost => {
                tracing::warn!(job = %id, "lease lost: the job went back to the queue; stopping it here");
                queue.abandon(id);
            }
        }
        Ok(())
    }

    /// Lets the worker finish what it is running, then waits for its thread to end.
    pub fn shutdown(mut self) {
        self.close();
    }

    fn close(&mut self) {
        // Set under the queue's lock: the worker checks the flag holding that lock and releases
        // it only inside `wait`, so it either sees the flag or is already waiting for the
        // notification (set outside the lock, the notification could fall between its check and
        // its wait, and the join below would wait forever).
        {
            let _queue = self.shared.lock();
            self.shared.closing.store(true, Ordering::SeqCst);
        }
        self.shared.wake.notify_all();
        if let Some(handle) = self.worker.take()
            && handle.join().is_err()
        {
            tracing::error!("the worker thread panicked");
        }
    }
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        self.close();
    }
}
