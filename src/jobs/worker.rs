//! The worker: one thread per device, taking jobs off the queue, running the engine (kept loaded
//! in the cache between jobs), writing outputs and recording everything before announcing it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::broadcast;

use crate::engines::sd::pipeline::SdPipeline;
use crate::engines::sd::{LoadOptions, Residency};
use crate::engines::{CancelToken, EngineEvent};

use super::cache::{EngineCache, EngineKey, estimate_bytes};
use super::config::RunnerConfig;
use super::events::{JobEvent, JobId, Timings};
use super::output::OutputWriter;
use super::queue::Queue;
use super::resolve::build_request;
use super::store::JobRecord;
use crate::cli::ResidencyArg;

/// What the runner handle and the worker thread share.
pub struct Shared {
    pub queue: Mutex<Queue>,
    pub wake: Condvar,
    pub events: broadcast::Sender<JobEvent>,
    /// Set when the owner wants the worker to exit once it is idle.
    pub closing: std::sync::atomic::AtomicBool,
    /// Jobs that failed on the user's input (a broken model folder found only at load time):
    /// a headless run that failed only on these exits 2, not 1.
    pub bad_input_failures: Mutex<std::collections::HashSet<JobId>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue usable: its data is in the store.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn emit(&self, event: JobEvent) {
        // No watcher is fine: the store has the truth.
        let _ = self.events.send(event);
    }

    fn closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub struct Worker {
    shared: Arc<Shared>,
    config: RunnerConfig,
    cache: EngineCache<SdPipeline>,
    writer: OutputWriter,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, config: RunnerConfig) -> Self {
        let cache = EngineCache::new(config.cache_capacity_bytes);
        let writer = OutputWriter::new(&config.out_dir);
        Self {
            shared,
            config,
            cache,
            writer,
        }
    }

    /// Runs jobs until told to close and idle, or stopped.
    pub fn run(mut self) {
        while let Some((record, cancel)) = self.wait_for_job() {
            self.run_job(record, &cancel);
        }
        tracing::debug!("worker finished");
    }

    fn wait_for_job(&self) -> Option<(JobRecord, CancelToken)> {
        let mut queue = self.shared.lock();
        loop {
            match queue.take_next() {
                Ok(Some(job)) => return Some(job),
                Ok(None) => {}
                Err(err) => tracing::error!(%err, "the queue database failed"),
            }
            if queue.is_stopping() || self.shared.closing() {
                return None;
            }
            queue = self
                .shared
                .wake
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn run_job(&mut self, record: JobRecord, cancel: &CancelToken) {
        let id = record.id;
        let _span = tracing::info_span!("job", job = %id).entered();
        let started = Instant::now();
        let mut timings = Timings::new();
        let result = self.execute(&record, cancel, &mut timings);
        timings.insert("total".into(), started.elapsed().as_secs_f64());
        let mut queue = self.shared.lock();
        let shutdown = queue.finish_running(id);
        let store = queue.store_mut();
        let (event, stored) = match result {
            Ok(outputs) => (
                JobEvent::Done {
                    job: id,
                    outputs,
                    timings,
                    peak_bytes: peak_rss_bytes(),
                },
                store.mark_done(id),
            ),
            Err(crate::Error::Cancelled) => {
                // A shutdown puts the job back for --resume; a cancel is the user's choice.
                let stored = if shutdown {
                    store.mark_interrupted(id)
                } else {
                    store.mark_cancelled(id)
                };
                (JobEvent::Cancelled { job: id }, stored)
            }
            Err(err) => {
                if err.exit_code() == 2 {
                    self.shared
                        .bad_input_failures
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .insert(id);
                }
                let error = err.to_string();
                tracing::error!(%error, "job failed");
                let stored = store.mark_failed(id, &error);
                (JobEvent::Failed { job: id, error }, stored)
            }
        };
        if let Err(err) = stored {
            tracing::error!(%err, "could not record the job's end");
        }
        drop(queue);
        tracing::info!(state = ?event_name(&event), "job ended");
        self.shared.emit(event);
    }

    fn execute(
        &mut self,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<Vec<PathBuf>> {
        let id = record.id;
        let spec = &record.spec;
        let model = (self.config.models)(&spec.model)?;
        let mut request = build_request(spec, self.config.preview_every)?;
        // Outputs recorded by an earlier attempt are kept, never produced twice.
        let mut outputs: Vec<PathBuf> = record
            .outputs
            .iter()
            .filter(|p| p.is_file())
            .cloned()
            .collect();
        let already = outputs.len() as u32;
        if already >= request.batch {
            return Ok(outputs);
        }
        if already > 0 {
            if let Some(latents) = &request.init_latents
                && latents.dim(0)? == request.batch as usize
            {
                let rest = request.batch as usize - already as usize;
                request.init_latents = Some(latents.narrow(0, already as usize, rest)?);
            }
            request.seed = request.seed.wrapping_add(u64::from(already));
            request.batch -= already;
            tracing::info!(already, "resuming a partly written batch");
        }
        let dtype = (self.config.device.dtype)(spec.dtype)?;
        // The plan is made again now (memory may have changed since the job was queued) and
        // decides residency, attention slicing, VAE tiling and how many images run at once.
        let plan = match &self.config.planner {
            Some(planner) => Some(planner.plan(&model.dir, spec, &request, dtype)?),
            None => None,
        };
        let residency = match (&plan, spec.residency) {
            (Some(plan), _) => plan.residency,
            (None, Some(ResidencyArg::Staged)) => Residency::Staged,
            (None, _) => Residency::Resident,
        };
        let per_pass = plan.as_ref().map_or(request.batch, |p| p.batch.max(1));
        if let Some(plan) = &plan {
            request.memory = plan.memory_modes();
        }
        let key = EngineKey {
            model_dir: model.dir.clone(),
            device: self.config.device.name.clone(),
            dtype,
            residency,
        };
        let load_started = Instant::now();
        let shared = Arc::clone(&self.shared);
        let device = self.config.device.device.clone();
        let (engine, fresh) =
            self.cache
                .get_or_load(&key, estimate_bytes(&model.dir, dtype), || {
                    shared.emit(JobEvent::Loading {
                        job: id,
                        stage: "model".into(),
                    });
                    SdPipeline::load(&LoadOptions {
                        model_dir: model.dir.clone(),
                        device,
                        dtype,
                        residency,
                        prefer_fp16_variant: dtype != candle_core::DType::F32,
                    })
                })?;
        if fresh {
            let secs = load_started.elapsed().as_secs_f64();
            tracing::info!(model = %model.id, dtype = ?dtype, secs, "engine loaded");
            timings.insert("load".into(), secs);
        }
        if cancel.is_cancelled() {
            return Err(crate::Error::Cancelled);
        }
        let sink = |event: EngineEvent| self.shared.emit(to_job_event(id, event));
        let (mut generate_s, mut write_s) = (0.0, 0.0);
        let mut done = 0u32;
        // Passes of at most `per_pass` images (the plan shrinks the batch when memory is short);
        // each pass's outputs are recorded before the next starts, so --resume skips them.
        while done < request.batch {
            let mut pass = request.clone();
            pass.batch = per_pass.min(request.batch - done);
            pass.seed = request.seed.wrapping_add(u64::from(done));
            if let Some(latents) = &request.init_latents
                && latents.dim(0)? == request.batch as usize
            {
                pass.init_latents = Some(latents.narrow(0, done as usize, pass.batch as usize)?);
            }
            let generate_started = Instant::now();
            let images =
                match catch_unwind(AssertUnwindSafe(|| engine.generate(&pass, &sink, cancel))) {
                    Ok(result) => result?,
                    Err(panic) => {
                        self.cache.evict(&key);
                        return Err(crate::Error::job_failed(format!(
                            "the engine crashed: {}",
                            panic_message(&*panic)
                        )));
                    }
                };
            generate_s += generate_started.elapsed().as_secs_f64();
            let write_started = Instant::now();
            for image in images {
                let mut image_spec = spec.clone();
                image_spec.seed = Some(image.seed);
                image_spec.batch = Some(1);
                let path = self.writer.write_png(&image.image, &image_spec, |target| {
                    Ok(self
                        .shared
                        .lock()
                        .store_mut()
                        .set_pending_output(id, target)?)
                })?;
                self.shared.lock().store_mut().record_output(id, &path)?;
                tracing::info!(path = %path.display(), "output written");
                outputs.push(path);
            }
            write_s += write_started.elapsed().as_secs_f64();
            done += pass.batch;
        }
        timings.insert("generate".into(), generate_s);
        timings.insert("write".into(), write_s);
        Ok(outputs)
    }
}

fn to_job_event(job: JobId, event: EngineEvent) -> JobEvent {
    match event {
        EngineEvent::Loading { stage } => JobEvent::Loading { job, stage },
        EngineEvent::Progress {
            step,
            steps,
            elapsed_s,
            eta_s,
        } => JobEvent::Progress {
            job,
            step,
            steps,
            elapsed_s,
            eta_s,
        },
        EngineEvent::Preview(preview) => JobEvent::Preview {
            job,
            width: preview.width,
            height: preview.height,
            pixels: preview.pixels,
        },
    }
}

fn event_name(event: &JobEvent) -> &'static str {
    match event {
        JobEvent::Done { .. } => "done",
        JobEvent::Failed { .. } => "failed",
        JobEvent::Cancelled { .. } => "cancelled",
        _ => "other",
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The process's peak resident memory so far.
pub fn peak_rss_bytes() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is always valid.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: initialised by the successful call above.
        let max = unsafe { usage.assume_init() }.ru_maxrss;
        let max = u64::try_from(max).ok()?;
        // macOS reports bytes, Linux kilobytes.
        Some(if cfg!(target_os = "macos") {
            max
        } else {
            max * 1024
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_events_keep_their_fields() {
        let event = to_job_event(
            JobId(3),
            EngineEvent::Progress {
                step: 1,
                steps: 4,
                elapsed_s: 0.5,
                eta_s: 1.5,
            },
        );
        assert_eq!(
            event,
            JobEvent::Progress {
                job: JobId(3),
                step: 1,
                steps: 4,
                elapsed_s: 0.5,
                eta_s: 1.5
            }
        );
        let stage = to_job_event(
            JobId(3),
            EngineEvent::Loading {
                stage: "unet".into(),
            },
        );
        assert_eq!(
            stage,
            JobEvent::Loading {
                job: JobId(3),
                stage: "unet".into()
            }
        );
    }

    #[test]
    fn peak_memory_is_known_on_unix() {
        if cfg!(unix) {
            assert!(peak_rss_bytes().unwrap() > 1024 * 1024);
        }
    }
}
