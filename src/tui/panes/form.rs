//! The parameters form as values: what the user typed (empty = the model's default), turned into
//! the job's `JobOverrides` with errors naming the field. Which fields exist follows the model's
//! kind: an image model has steps and sizes, a speech model a voice, a transcriber an audio file;
//! fields the kind does not show are not submitted. Job flags the form has no field for
//! (--max-tokens, --enhancer, --attention-slicing, ...) pass through from the command line.

use crate::jobs::spec::JobOverrides;
use crate::models::{Defaults, Kind, Verdict};
use crate::vocab::{DtypeChoice, JobKind, ResidencyChoice};

pub use super::fields::{ParamField, fields_for};
use super::form_toolkit::Toolkit;

/// A model the picker offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelChoice {
    pub id: String,
    pub name: String,
    pub verdict: Verdict,
    pub defaults: Defaults,
    pub native: [u32; 2],
    pub kind: Kind,
    /// The registry's family; `None` for a folder (the LoRA picker then marks nothing).
    pub family: Option<crate::models::Family>,
}

/// The form's values as text; an empty string means "the model's default".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Form {
    pub model: String,
    pub steps: String,
    pub guidance: String,
    pub seed: String,
    pub random_seed: bool,
    pub size: String,
    pub batch: String,
    pub scheduler: String,
    pub strength: String,
    pub init_image: String,
    pub mask: String,
    pub dtype: DtypeChoice,
    /// `None`: the planner chooses (auto).
    pub residency: Option<ResidencyChoice>,
    /// The runner's device, fixed for the session (JobSpec has no device): shown, never sent.
    pub device: String,
    /// What the chosen model makes; `None` is an image model (or a folder not in the registry).
    pub kind: Option<Kind>,
    /// The chosen registry model's family (a video model's frame step); `None` for a folder.
    pub family: Option<crate::models::Family>,
    pub voice: String,
    /// Seconds, as typed.
    pub duration: String,
    /// Video: frames and frames per second, as typed.
    pub frames: String,
    pub fps: String,
    pub audio: String,
    pub language: String,
    pub translate: bool,
    /// LoRAs, upscale step and ControlNet of an image job.
    pub toolkit: Toolkit,
    /// The command line's job flags. Those the form shows as fields are replaced by the fields;
    /// the others (--max-tokens, --enhancer for Ctrl-E, memory modes...) are sent as given.
    pub base: JobOverrides,
}

fn opt<T: std::str::FromStr>(text: &str, field: &str, what: &str) -> Result<Option<T>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| format!("{field}: {t:?} is not {what}"))
}

impl Form {
    pub fn get(&self, field: ParamField) -> String {
        match field {
            ParamField::Model => self.model.clone(),
            ParamField::Steps => self.steps.clone(),
            ParamField::Guidance => self.guidance.clone(),
            ParamField::Seed => self.seed.clone(),
            ParamField::Size => self.size.clone(),
            ParamField::Batch => self.batch.clone(),
            ParamField::Scheduler => self.scheduler.clone(),
            ParamField::Strength => self.strength.clone(),
            ParamField::InitImage => self.init_image.clone(),
            ParamField::Mask => self.mask.clone(),
            ParamField::Dtype => format!("{:?}", self.dtype).to_lowercase(),
            ParamField::Residency => self
                .residency
                .map_or_else(String::new, |r| format!("{r:?}").to_lowercase()),
            ParamField::Device => self.device.clone(),
            ParamField::Voice => self.voice.clone(),
            ParamField::Duration => self.duration.clone(),
            ParamField::Frames => self.frames.clone(),
            ParamField::Fps => self.fps.clone(),
            ParamField::Audio => self.audio.clone(),
            ParamField::Language => self.language.clone(),
            ParamField::Translate => if self.translate { "on" } else { "" }.into(),
            // LoRAs, upscale step, ControlNet.
            _ => self.toolkit.get(field),
        }
    }

    /// The fields the chosen model takes.
    pub fn fields(&self) -> &'static [ParamField] {
        fields_for(self.kind)
    }

    /// Sets a text field after checking it; the error names the field and what it wants.
    pub fn set(&mut self, field: ParamField, value: String) -> Result<(), String> {
        let mut next = self.clone();
        match field {
            ParamField::Model => next.model = value,
            ParamField::Steps => next.steps = value,
            ParamField::Guidance => next.guidance = value,
            ParamField::Seed => {
                next.random_seed = value.trim().is_empty();
                next.seed = value;
            }
            ParamField::Size => next.size = value,
            ParamField::Batch => next.batch = value,
            ParamField::Scheduler => next.scheduler = value,
            ParamField::Strength => next.strength = value,
            ParamField::InitImage => next.init_image = value,
            ParamField::Mask => next.mask = value,
            ParamField::Voice => next.voice = value,
            ParamField::Duration => next.duration = value,
            ParamField::Frames => next.frames = value,
            ParamField::Fps => next.fps = value,
            ParamField::Audio => next.audio = value,
            ParamField::Language => next.language = value,
            ParamField::Translate => {
                next.translate = matches!(value.trim(), "on" | "yes" | "true" | "1")
            }
            // Cycled, not typed; the device is fixed for the session.
            ParamField::Dtype | ParamField::Residency | ParamField::Device => {}
            // LoRAs, upscale step, ControlNet.
            _ => next.toolkit.set(field, value)?,
        }
        next.to_overrides()?;
        *self = next;
        Ok(())
    }

    /// Width and height typed as `WxH`.
    pub fn size(&self) -> Result<(Option<u32>, Option<u32>), String> {
        let t = self.size.trim();
        if t.is_empty() {
            return Ok((None, None));
        }
        let bad = || format!("size: {t:?} is not WIDTHxHEIGHT, e.g. 512x768");
        let (w, h) = t.split_once(['x', 'X']).ok_or_else(bad)?;
        let w: u32 = w.trim().parse().map_err(|_| bad())?;
        let h: u32 = h.trim().parse().map_err(|_| bad())?;
        Ok((Some(w), Some(h)))
    }

    /// The job the form asks for (prompt and negative are the prompt pane's, set on submit).
    pub fn to_overrides(&self) -> Result<JobOverrides, String> {
        let mut o = JobOverrides {
            model: Some(self.model.trim().to_owned()).filter(|m| !m.is_empty()),
            dtype: (self.dtype != DtypeChoice::Auto).then_some(self.dtype),
            ..self.base.clone()
        };
        // The form's fields replace the flags they were filled from; a kind's hidden fields are
        // not sent.
        o.prompt = None;
        o.negative = None;
        o.kind = None;
        o.steps = None;
        o.guidance = None;
        o.width = None;
        o.height = None;
        o.batch = None;
        o.scheduler = None;
        o.strength = None;
        o.init_image = None;
        o.mask = None;
        o.caption = None;
        o.residency = None;
        o.voice = None;
        o.duration = None;
        o.audio = None;
        o.language = None;
        o.translate = None;
        o.frames = None;
        o.fps = None;
        Toolkit::clear(&mut o);
        o.seed = if self.random_seed {
            None
        } else {
            opt(&self.seed, "seed", "a whole number")?
        };
        let path = |s: &str| (!s.trim().is_empty()).then(|| s.trim().into());
        let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        match self.kind {
            None | Some(Kind::Txt2img | Kind::Img2img | Kind::Inpaint) => {
                self.image_fields(&mut o)?
            }
            Some(Kind::Tts) => {
                o.kind = Some(JobKind::Tts);
                o.voice = text(&self.voice);
                o.duration = self.duration()?;
            }
            Some(Kind::Music) => {
                o.kind = Some(JobKind::Music);
                o.duration = self.duration()?;
                o.guidance = opt(&self.guidance, "guidance", "a number")?;
            }
            Some(Kind::Stt) => {
                o.kind = Some(JobKind::Stt);
                o.audio = path(&self.audio);
                o.language = text(&self.language);
                o.translate = Some(self.translate);
                o.seed = None;
            }
            Some(Kind::Caption) => {
                o.kind = Some(JobKind::Caption);
                o.caption = path(&self.init_image);
                o.seed = None;
            }
            Some(Kind::Text) => o.kind = Some(JobKind::Enhance),
            Some(kind @ (Kind::Txt2vid | Kind::Img2vid)) => {
                let (width, height) = self.size()?;
                // An image-to-video model with a first frame makes img2vid; without one, text
                // to video (which the model refuses with its reason if it cannot).
                o.init_image = path(&self.init_image).filter(|_| kind == Kind::Img2vid);
                o.kind = Some(if o.init_image.is_some() {
                    JobKind::Img2vid
                } else {
                    JobKind::Txt2vid
                });
                o.steps = opt(&self.steps, "steps", "a whole number")?;
                o.guidance = opt(&self.guidance, "guidance", "a number")?;
                o.width = width;
                o.height = height;
                (o.frames, o.fps) = self.clip()?;
            }
            Some(Kind::Upscale) => {
                o.kind = Some(JobKind::Upscale);
                o.image = path(&self.init_image);
                o.seed = None;
            }
        }
        Ok(o)
    }

    /// A video's frames and fps, checked as the headless path checks them (`spec::video`).
    fn clip(&self) -> Result<(Option<u32>, Option<u32>), String> {
        use crate::jobs::spec::video::{VideoGeometry, check_fps};
        let geometry = VideoGeometry::of_family(self.family.unwrap_or(crate::models::Family::Wan));
        // The message without the flag it names ("--frames 10: ...").
        let why = |field: &str, e: crate::Error| {
            let m = e.to_string();
            let m = m
                .split_once(": ")
                .map_or(m.as_str(), |(_, rest)| rest)
                .to_owned();
            format!("{field}: {m}")
        };
        let frames: Option<u32> = opt(&self.frames, "frames", "a whole number")?;
        if let Some(n) = frames {
            geometry.check_frames(n).map_err(|e| why("frames", e))?;
        }
        let fps: Option<u32> = opt(&self.fps, "fps", "a whole number")?;
        if let Some(n) = fps {
            check_fps(n).map_err(|e| why("fps", e))?;
        }
        Ok((frames, fps))
    }

    fn duration(&self) -> Result<Option<f64>, String> {
        let d: Option<f64> = opt(&self.duration, "duration", "a number of seconds")?;
        if d.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
            return Err("duration: must be more than 0 seconds".into());
        }
        Ok(d)
    }

    /// An image job's fields (the kind follows the inputs: mask inpaints, an init image is
    /// img2img).
    fn image_fields(&self, o: &mut JobOverrides) -> Result<(), String> {
        let (width, height) = self.size()?;
        let steps: Option<u32> = opt(&self.steps, "steps", "a whole number")?;
        if steps == Some(0) {
            return Err("steps: must be at least 1".into());
        }
        let batch: Option<u32> = opt(&self.batch, "batch", "a whole number")?;
        if batch == Some(0) {
            return Err("batch: must be at least 1".into());
        }
        let strength: Option<f64> = opt(&self.strength, "strength", "a number")?;
        if strength.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
            return Err("strength: must be between 0 and 1".into());
        }
        let path = |s: &str| (!s.trim().is_empty()).then(|| s.trim().into());
        let scheduler = self.scheduler.trim();
        o.scheduler = if scheduler.is_empty() {
            None
        } else {
            Some(crate::vocab::Scheduler::parse(scheduler).map_err(|e| format!("scheduler: {e}"))?)
        };
        o.steps = steps;
        o.guidance = opt(&self.guidance, "guidance", "a number")?;
        o.width = width;
        o.height = height;
        o.batch = batch;
        o.init_image = path(&self.init_image);
        o.strength = strength;
        o.mask = path(&self.mask);
        o.residency = self.residency;
        self.toolkit.apply(o, &self.base)
    }
}

#[cfg(test)]
#[path = "form_tests.rs"]
mod tests;
