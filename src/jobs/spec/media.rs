//! Audio and text jobs: which kind a job is once its model is known, the models used when none is
//! given, and the checks and defaults of each kind, before anything is queued.

use crate::jobs::spec::JobSpec;
use crate::jobs::spec::resolve::{absolute, load_image};
use crate::models::{Defaults, Kind};
use crate::vocab::JobKind;

/// Longest speech clip and longest piece of music a job may ask for, in seconds.
pub const MAX_SPEECH_S: f64 = 120.0;
pub const MAX_MUSIC_S: f64 = 300.0;
pub const MAX_TOKENS: u32 = 4096;
/// Registry ids used when a job of a kind names no model.
pub const DEFAULT_TTS: &str = "parler-tts-mini";
pub const DEFAULT_MUSIC: &str = "musicgen-small";
pub const DEFAULT_STT: &str = "whisper-base";
pub const DEFAULT_CAPTION: &str = "blip-base";
pub const DEFAULT_ENHANCER: &str = "qwen2.5-1.5b-instruct";

fn bad(message: impl Into<String>) -> crate::Error {
    crate::Error::bad_input(message)
}

/// The model a job without `--model` runs with (None: image jobs need one named).
pub fn default_model(spec: &JobSpec) -> Option<String> {
    match spec.kind {
        JobKind::Txt2img | JobKind::Img2img | JobKind::Inpaint => None,
        JobKind::Enhance => spec
            .enhancer
            .clone()
            .or_else(|| Some(example(spec.kind).to_owned())),
        kind => Some(example(kind).to_owned()),
    }
}

/// The registry's default model of a kind (also named in messages).
fn example(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Tts => DEFAULT_TTS,
        JobKind::Music => DEFAULT_MUSIC,
        JobKind::Stt => DEFAULT_STT,
        JobKind::Caption => DEFAULT_CAPTION,
        JobKind::Enhance => DEFAULT_ENHANCER,
        JobKind::Txt2img | JobKind::Img2img | JobKind::Inpaint => "sd15",
    }
}

/// The job's kind given what its model makes: an image job on a MusicGen model is a music job;
/// asking a model for something it does not make is bad input naming a model that does.
pub fn settle_kind(spec: &JobSpec, model_id: &str, model_kind: Kind) -> crate::Result<JobKind> {
    let makes = model_kind.job_kind();
    if makes == JobKind::Txt2img {
        if spec.kind.makes_images() {
            return Ok(spec.kind);
        }
        return Err(bad(format!(
            "model `{model_id}` makes images; a {} job needs a {} model such as `{}` \
             (`pallaidium models` lists them)",
            spec.kind.as_str(),
            spec.kind.as_str(),
            example(spec.kind)
        )));
    }
    // Defaults that follow from the inputs (txt2img, img2img from --init-image) give way to the
    // model's kind; anything else must match it.
    let implied = matches!(spec.kind, JobKind::Txt2img)
        || (spec.kind == JobKind::Img2img && makes == JobKind::Caption);
    if implied || spec.kind == makes {
        return Ok(makes);
    }
    Err(bad(format!(
        "model `{model_id}` makes {}, not {}; use a {} model such as `{}`, or drop --kind",
        makes.as_str(),
        spec.kind.as_str(),
        spec.kind.as_str(),
        example(spec.kind)
    )))
}

/// Fills and checks an audio or text job (its kind already settled).
pub fn fill_media_spec(spec: &JobSpec, defaults: &Defaults) -> crate::Result<JobSpec> {
    let mut out = spec.clone();
    if out.mask.is_some() {
        return Err(bad(format!(
            "--mask does not apply to {} jobs (it is for inpainting)",
            out.kind.as_str()
        )));
    }
    if out.init_image.is_some() && out.kind != JobKind::Caption {
        return Err(bad(format!(
            "--init-image does not apply to {} jobs; to caption an image use --caption PATH",
            out.kind.as_str()
        )));
    }
    if let Some(n) = out.max_tokens
        && !(1..=MAX_TOKENS).contains(&n)
    {
        return Err(bad(format!(
            "--max-tokens {n}: must be between 1 and {MAX_TOKENS}"
        )));
    }
    let batch = out.batch.unwrap_or(1);
    if batch == 0 || batch > crate::jobs::spec::resolve::MAX_BATCH {
        return Err(bad(format!(
            "--batch {batch}: must be between 1 and {}",
            crate::jobs::spec::resolve::MAX_BATCH
        )));
    }
    match out.kind {
        JobKind::Tts => {
            require_prompt(&out, "the text to speak")?;
            let voice = out
                .voice
                .clone()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| defaults.voice.clone())
                .unwrap_or_else(|| crate::models::entry::DEFAULT_VOICE.to_owned());
            out.voice = Some(voice);
            out.duration = Some(duration(&out, defaults, 30.0, MAX_SPEECH_S)?);
            out.batch = Some(batch);
        }
        JobKind::Music => {
            require_prompt(&out, "a description of the music")?;
            out.duration = Some(duration(&out, defaults, 8.0, MAX_MUSIC_S)?);
            let guidance = out.guidance.unwrap_or(defaults.guidance);
            if !guidance.is_finite()
                || !(0.0..=crate::jobs::spec::resolve::MAX_GUIDANCE).contains(&guidance)
            {
                return Err(bad(format!(
                    "--guidance {guidance}: must be between 0 and {} (MusicGen uses 3)",
                    crate::jobs::spec::resolve::MAX_GUIDANCE
                )));
            }
            out.guidance = Some(guidance);
            out.batch = Some(batch);
        }
        JobKind::Stt => {
            let Some(audio) = out.audio.clone() else {
                return Err(bad(
                    "speech to text needs the audio file: pass --audio PATH (wav, flac, mp3, ogg)",
                ));
            };
            if !audio.is_file() {
                return Err(bad(format!("--audio {}: no such file", audio.display())));
            }
            out.audio = Some(absolute(&audio));
            if let Some(lang) = &out.language
                && (lang.len() < 2 || !lang.chars().all(|c| c.is_ascii_lowercase()))
            {
                return Err(bad(format!(
                    "--language {lang}: use Whisper's code in lowercase, e.g. en, de, fr, ja"
                )));
            }
            // Decoded now, as the job will, so a corrupt or absurd file is refused before it
            // is queued rather than failing the job.
            crate::engines::audio::decode::check_audio(&audio).map_err(|e| {
                // The decoder's message starts with the path: say which flag gave it.
                let text = e.to_string();
                let shown = audio.display().to_string();
                bad(match text.strip_prefix(&shown) {
                    Some(rest) => format!("--audio {shown}{rest}"),
                    None => format!("--audio {shown}: {text}"),
                })
            })?;
            out.batch = Some(1);
        }
        JobKind::Caption => {
            let Some(image) = &out.init_image else {
                return Err(bad("captioning needs an image: pass --caption PATH"));
            };
            // Decoded now (its header checked first), as the job will.
            load_image(image, "--caption")?;
            out.init_image = Some(absolute(image));
            out.max_tokens = Some(out.max_tokens.or(defaults.max_tokens).unwrap_or(40));
            out.batch = Some(1);
        }
        JobKind::Enhance => {
            require_prompt(&out, "the idea to turn into an image prompt")?;
            out.max_tokens = Some(out.max_tokens.or(defaults.max_tokens).unwrap_or(200));
            out.batch = Some(1);
        }
        JobKind::Txt2img | JobKind::Img2img | JobKind::Inpaint => {
            return Err(bad("internal: an image job reached the audio/text checks"));
        }
    }
    if out.kind.makes_audio() || out.kind == JobKind::Enhance {
        // A fresh random seed is recorded so the output says how to make it again.
        out.seed = Some(out.seed.unwrap_or_else(|| u64::from(rand::random::<u32>())));
    }
    // Image-only settings do not apply; drop them so outputs do not claim them.
    out.steps = None;
    out.width = None;
    out.height = None;
    out.scheduler = None;
    out.strength = None;
    if out.kind != JobKind::Music {
        out.guidance = None;
    }
    Ok(out)
}

fn require_prompt(spec: &JobSpec, what: &str) -> crate::Result<()> {
    if spec.prompt.trim().is_empty() {
        return Err(bad(format!(
            "a {} job needs --prompt: {what}",
            spec.kind.as_str()
        )));
    }
    Ok(())
}

fn duration(spec: &JobSpec, defaults: &Defaults, fallback: f64, max: f64) -> crate::Result<f64> {
    let d = spec.duration.or(defaults.duration).unwrap_or(fallback);
    if !d.is_finite() || d <= 0.0 || d > max {
        return Err(bad(format!(
            "--duration {d}: must be more than 0 and at most {max} seconds"
        )));
    }
    Ok(d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(kind: JobKind, prompt: &str) -> JobSpec {
        JobSpec {
            kind,
            model: "m".into(),
            prompt: prompt.into(),
            ..JobSpec::default()
        }
    }

    #[test]
    fn the_model_decides_the_kind_unless_asked_otherwise() {
        let s = spec(JobKind::Txt2img, "lofi");
        assert_eq!(
            settle_kind(&s, "musicgen-small", Kind::Music).unwrap(),
            JobKind::Music
        );
        assert_eq!(
            settle_kind(&s, "sd15", Kind::Txt2img).unwrap(),
            JobKind::Txt2img
        );
        let err = settle_kind(&spec(JobKind::Stt, ""), "sd15", Kind::Txt2img).unwrap_err();
        assert!(err.to_string().contains("whisper-base"), "{err}");
        let err =
            settle_kind(&spec(JobKind::Tts, "hi"), "musicgen-small", Kind::Music).unwrap_err();
        assert!(err.to_string().contains("makes music, not tts"), "{err}");
        let img = spec(JobKind::Img2img, "");
        assert_eq!(
            settle_kind(&img, "blip-base", Kind::Caption).unwrap(),
            JobKind::Caption
        );
    }

    #[test]
    fn audio_jobs_get_defaults_and_bounds() {
        let d = crate::models::Family::Musicgen.default_params();
        let filled = fill_media_spec(&spec(JobKind::Music, "lofi"), &d).unwrap();
        assert_eq!(filled.duration, Some(8.0));
        assert_eq!(filled.guidance, Some(3.0));
        assert!(filled.seed.is_some() && filled.steps.is_none());
        let mut long = spec(JobKind::Music, "lofi");
        long.duration = Some(10_000.0);
        assert!(
            fill_media_spec(&long, &d)
                .unwrap_err()
                .to_string()
                .contains("--duration")
        );
        let empty = fill_media_spec(&spec(JobKind::Tts, "  "), &d).unwrap_err();
        assert_eq!(empty.exit_code(), 2);
        let tts = fill_media_spec(&spec(JobKind::Tts, "Hello"), &d).unwrap();
        assert!(tts.voice.unwrap().contains("speaker"));
    }

    #[test]
    fn inputs_must_exist() {
        let d = Defaults::default();
        let mut stt = spec(JobKind::Stt, "");
        assert!(
            fill_media_spec(&stt, &d)
                .unwrap_err()
                .to_string()
                .contains("--audio")
        );
        stt.audio = Some("/no/such.wav".into());
        assert!(
            fill_media_spec(&stt, &d)
                .unwrap_err()
                .to_string()
                .contains("no such file")
        );
        let mut cap = spec(JobKind::Caption, "");
        cap.init_image = Some("/no/such.png".into());
        assert_eq!(fill_media_spec(&cap, &d).unwrap_err().exit_code(), 2);
        let mut bad_lang = spec(JobKind::Stt, "");
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        std::fs::write(&wav, b"x").unwrap();
        bad_lang.audio = Some(wav);
        bad_lang.language = Some("English".into());
        assert!(
            fill_media_spec(&bad_lang, &d)
                .unwrap_err()
                .to_string()
                .contains("lowercase")
        );
    }
}
