//! Writing audio and text results: each main file (WAV, SRT, TXT) through the atomic writer and
//! recorded in the store before the next is made, then its companions (timed text, JSON sidecar).

use std::path::PathBuf;

use crate::engines::media::{AudioClip, Transcript};
use crate::jobs::output::media_files::{
    Sidecar, WavInfo, encode_wav, to_srt, to_timed_text, wav_comment,
};
use crate::jobs::output::{OutputWriter, output_stem, today};
use crate::jobs::run::events::JobId;
use crate::jobs::run::worker::Shared;
use crate::jobs::spec::JobSpec;

/// A clip of silence or of non-numbers is a broken model or dtype, never a result.
pub(crate) fn check_clip(clip: &AudioClip) -> crate::Result<()> {
    if clip.samples.is_empty() || clip.sample_rate == 0 {
        return Err(crate::Error::job_failed("the model produced no audio"));
    }
    if clip.samples.iter().any(|s| !s.is_finite()) {
        return Err(crate::Error::job_failed(
            "the audio has non-finite samples (NaN/inf): the model or dtype is broken here; \
             try --dtype f32",
        ));
    }
    if clip.samples.iter().all(|&s| s == 0.0) {
        return Err(crate::Error::job_failed(
            "the audio is pure silence: the model or dtype is broken here; try --dtype f32",
        ));
    }
    Ok(())
}

/// Writes one job's audio and text outputs.
pub(crate) struct MediaWriter<'a> {
    pub writer: &'a OutputWriter,
    pub shared: &'a Shared,
    pub job: JobId,
}

impl MediaWriter<'_> {
    /// `<stem>.<ext>`, noted as pending before it appears and recorded once it is in place.
    fn main_file(&self, spec: &JobSpec, ext: &str, bytes: &[u8]) -> crate::Result<PathBuf> {
        let path = self
            .writer
            .write_bytes(&output_stem(spec), ext, bytes, |target| {
                Ok(self
                    .shared
                    .lock()
                    .store_mut()
                    .set_pending_output(self.job, target)?)
            })?;
        self.shared
            .lock()
            .store_mut()
            .record_output(self.job, &path)?;
        tracing::info!(path = %path.display(), "output written");
        Ok(path)
    }

    /// A WAV with its INFO chunk, and the sidecar.
    pub fn audio(&self, clip: &AudioClip, spec: &JobSpec) -> crate::Result<Vec<PathBuf>> {
        let info = WavInfo {
            title: spec.prompt.clone(),
            comment: wav_comment(spec),
            software: format!("pallaidium {}", env!("CARGO_PKG_VERSION")),
            date: today(),
        };
        let wav = self.main_file(spec, "wav", &encode_wav(clip, &info))?;
        let mut car = Sidecar::new(spec, vec![wav.clone()], self.writer.switches());
        car.duration_s = Some(clip.duration_s());
        let json = self
            .writer
            .write_companion(&wav, "json", car.to_json().as_bytes())?;
        Ok(vec![wav, json])
    }

    /// Subtitles, the same cues as timed text, and the sidecar.
    pub fn transcript(
        &self,
        transcript: &Transcript,
        spec: &JobSpec,
        audio_s: f64,
    ) -> crate::Result<Vec<PathBuf>> {
        let srt = self.main_file(spec, "srt", to_srt(transcript).as_bytes())?;
        let txt = self
            .writer
            .write_companion(&srt, "txt", to_timed_text(transcript).as_bytes())?;
        let mut car = Sidecar::new(spec, vec![srt.clone(), txt.clone()], self.writer.switches());
        car.text = Some(transcript.text());
        car.duration_s = Some(audio_s);
        let json = self
            .writer
            .write_companion(&srt, "json", car.to_json().as_bytes())?;
        Ok(vec![srt, txt, json])
    }

    /// A caption or prompt as a text file, and the sidecar.
    pub fn text(&self, text: &str, spec: &JobSpec) -> crate::Result<Vec<PathBuf>> {
        let txt = self.main_file(spec, "txt", format!("{text}\n").as_bytes())?;
        let mut car = Sidecar::new(spec, vec![txt.clone()], self.writer.switches());
        car.text = Some(text.to_owned());
        let json = self
            .writer
            .write_companion(&txt, "json", car.to_json().as_bytes())?;
        Ok(vec![txt, json])
    }
}
