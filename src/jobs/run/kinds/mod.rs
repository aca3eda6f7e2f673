//! The kinds of job the worker runs, one type each behind one trait (the shape of gitui's
//! AsyncJob): the worker picks the kind from the spec's family parameters and hands it the job;
//! each kind loads its engine, makes its outputs (keeping those an earlier attempt wrote) and
//! says what the `done` event carries.

mod audio;
mod image;
mod media_engine;
mod text;
mod transcribe;
mod upscale;
mod video;

use crate::engines::CancelToken;
use crate::jobs::run::events::Timings;
use crate::jobs::run::worker::{JobOutcome, Worker};
use crate::jobs::spec::Params;
use crate::jobs::store::JobRecord;

/// One kind of job on the worker.
pub(super) trait KindJob {
    /// Runs `record` to its end: every output written and recorded before the next is made.
    fn run(
        &self,
        worker: &mut Worker,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome>;
}

/// The kind that runs a job with these parameters.
pub(super) fn job_for(params: &Params) -> &'static dyn KindJob {
    match params {
        Params::Image(_) => &image::ImageJob,
        Params::Speech(_) | Params::Music(_) => &audio::AudioJob,
        Params::Transcribe(_) => &transcribe::TranscribeJob,
        Params::Caption(_) | Params::Enhance(_) => &text::TextJob,
        Params::Upscale(_) => &upscale::UpscaleJob,
        Params::Video(_) => &video::VideoJob,
    }
}
