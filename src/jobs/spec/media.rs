//! Audio and text jobs: which kind a job is once its model is known, the models used when none is
//! given, and the checks and defaults of each kind, before anything is queued.

use crate::jobs::spec::resolve::{absolute, load_image};
use crate::jobs::spec::{
    CaptionParams, EnhanceParams, JobOverrides, JobSpec, MusicParams, Params, SpeechParams,
    TranscribeParams,
};
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
pub fn default_model(asked: &JobOverrides) -> Option<String> {
    match asked.kind_asked() {
        JobKind::Txt2img
        | JobKind::Img2img
        | JobKind::Inpaint
        | JobKind::Txt2vid
        | JobKind::Img2vid => None,
        JobKind::Upscale => {
            Some(crate::jobs::spec::upscale::default_upscaler(asked.scale).to_owned())
        }
        JobKind::Enhance => asked
            .enhancer
            .clone()
            .or_else(|| Some(example(JobKind::Enhance).to_owned())),
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
        JobKind::Upscale => crate::jobs::spec::upscale::DEFAULT_X4,
        JobKind::Txt2img | JobKind::Img2img | JobKind::Inpaint => "sd15",
        JobKind::Txt2vid | JobKind::Img2vid => "a Wan 2.1 T2V diffusers folder",
    }
}

/// The job's kind given what its model makes: an image job on a MusicGen model is a music job;
/// asking a model for something it does not make is bad input naming a model that does.
pub fn settle_kind(asked: JobKind, model_id: &str, model_kind: Kind) -> crate::Result<JobKind> {
    let makes = model_kind.job_kind();
    if makes == JobKind::Txt2vid {
        return match asked {
            // --init-image's implied img2img is img2vid on an image-to-video model.
            JobKind::Img2img | JobKind::Img2vid if model_kind == Kind::Img2vid => {
                Ok(JobKind::Img2vid)
            }
            // The default, and img2img on a text-to-video model: the video fill refuses the
            // image with its reason.
            JobKind::Txt2img | JobKind::Txt2vid | JobKind::Img2img => Ok(JobKind::Txt2vid),
            JobKind::Img2vid => Err(bad(format!(
                "model `{model_id}` is text-to-video only; img2vid needs an image-to-video \
                 model (Wan 2.2 TI2V), or use --kind txt2vid"
            ))),
            other => Err(bad(format!(
                "model `{model_id}` makes video; a {} job needs a {} model such as `{}`",
                other.as_str(),
                other.as_str(),
                example(other)
            ))),
        };
    }
    if asked.makes_video() {
        return Err(bad(format!(
            "model `{model_id}` makes {}, not video; a {} job needs a video model such as a \
             Wan 2.1 T2V diffusers folder (WanPipeline)",
            makes.as_str(),
            asked.as_str()
        )));
    }
    if makes == JobKind::Txt2img {
        if asked.makes_images() {
            return Ok(asked);
        }
        return Err(bad(format!(
            "model `{model_id}` makes images; a {} job needs a {} model such as `{}` \
             (`pallaidium models` lists them)",
            asked.as_str(),
            asked.as_str(),
            example(asked)
        )));
    }
    // Defaults that follow from the inputs (txt2img, img2img from --init-image) give way to the
    // model's kind; anything else must match it.
    let implied = matches!(asked, JobKind::Txt2img)
        || (asked == JobKind::Img2img && makes == JobKind::Caption);
    if implied || asked == makes {
        return Ok(makes);
    }
    Err(bad(format!(
        "model `{model_id}` makes {}, not {}; use a {} model such as `{}`, or drop --kind",
        makes.as_str(),
        asked.as_str(),
        asked.as_str(),
        example(asked)
    )))
}

/// Fills and checks an audio or text job (its kind already settled) into its typed parameters.
pub fn fill_media_spec(
    asked: &JobOverrides,
    kind: JobKind,
    defaults: &Defaults,
) -> crate::Result<JobSpec> {
    if asked.mask.is_some() {
        return Err(bad(format!(
            "--mask does not apply to {} jobs (it is for inpainting)",
            kind.as_str()
        )));
    }
    if kind == JobKind::Upscale {
        let model = asked.model.clone().unwrap_or_default();
        return Ok(JobSpec {
            kind,
            params: crate::jobs::spec::upscale::upscale_params(asked, &model, defaults)?,
            model,
            prompt: asked.prompt.clone().unwrap_or_default(),
            seed: asked.seed,
            dtype: asked.dtype,
        });
    }
    crate::jobs::spec::upscale::refuse_stray_flags(asked, false)?;
    if asked.init_image.is_some() && kind != JobKind::Caption {
        return Err(bad(format!(
            "--init-image does not apply to {} jobs; to caption an image use --caption PATH",
            kind.as_str()
        )));
    }
    if let Some(n) = asked.max_tokens
        && !(1..=MAX_TOKENS).contains(&n)
    {
        return Err(bad(format!(
            "--max-tokens {n}: must be between 1 and {MAX_TOKENS}"
        )));
    }
    let batch = asked.batch.unwrap_or(1);
    if batch == 0 || batch > crate::jobs::spec::resolve::MAX_BATCH {
        return Err(bad(format!(
            "--batch {batch}: must be between 1 and {}",
            crate::jobs::spec::resolve::MAX_BATCH
        )));
    }
    let prompt = asked.prompt.clone().unwrap_or_default();
    let params = match kind {
        JobKind::Tts => {
            require_prompt(kind, &prompt, "the text to speak")?;
            let voice = asked
                .voice
                .clone()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| defaults.voice.clone())
                .unwrap_or_else(|| crate::models::entry::DEFAULT_VOICE.to_owned());
            Params::Speech(SpeechParams {
                voice,
                duration: duration(asked, defaults, 30.0, MAX_SPEECH_S)?,
                batch,
            })
        }
        JobKind::Music => {
            require_prompt(kind, &prompt, "a description of the music")?;
            let guidance = asked.guidance.unwrap_or(defaults.guidance);
            if !guidance.is_finite()
                || !(0.0..=crate::jobs::spec::resolve::MAX_GUIDANCE).contains(&guidance)
            {
                return Err(bad(format!(
                    "--guidance {guidance}: must be between 0 and {} (MusicGen uses 3)",
                    crate::jobs::spec::resolve::MAX_GUIDANCE
                )));
            }
            Params::Music(MusicParams {
                duration: duration(asked, defaults, 8.0, MAX_MUSIC_S)?,
                guidance,
                batch,
            })
        }
        JobKind::Stt => {
            let Some(audio) = asked.audio.clone() else {
                return Err(bad(
                    "speech to text needs the audio file: pass --audio PATH (wav, flac, mp3, ogg)",
                ));
            };
            if !audio.is_file() {
                return Err(bad(format!("--audio {}: no such file", audio.display())));
            }
            if let Some(lang) = &asked.language
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
            Params::Transcribe(TranscribeParams {
                audio: absolute(&audio),
                language: asked.language.clone(),
                translate: asked.translate.unwrap_or(false),
                max_tokens: asked.max_tokens,
            })
        }
        JobKind::Caption => {
            let Some(image) = asked.image_input() else {
                return Err(bad("captioning needs an image: pass --caption PATH"));
            };
            // Decoded now (its header checked first), as the job will.
            load_image(image, "--caption")?;
            Params::Caption(CaptionParams {
                image: absolute(image),
                max_tokens: asked.max_tokens.or(defaults.max_tokens).unwrap_or(40),
            })
        }
        JobKind::Enhance => {
            require_prompt(kind, &prompt, "the idea to turn into an image prompt")?;
            Params::Enhance(EnhanceParams {
                max_tokens: asked.max_tokens.or(defaults.max_tokens).unwrap_or(200),
            })
        }
        JobKind::Txt2img
        | JobKind::Img2img
        | JobKind::Inpaint
        | JobKind::Upscale
        | JobKind::Txt2vid
        | JobKind::Img2vid => {
            return Err(bad("internal: an image job reached the audio/text checks"));
        }
    };
    // A fresh random seed is recorded so the output says how to make it again; transcripts and
    // captions draw nothing (a seed asked for is kept as asked).
    let seed = if kind.makes_audio() || kind == JobKind::Enhance {
        Some(
            asked
                .seed
                .unwrap_or_else(|| u64::from(rand::random::<u32>())),
        )
    } else {
        asked.seed
    };
    Ok(JobSpec {
        kind,
        model: asked.model.clone().unwrap_or_default(),
        prompt,
        seed,
        dtype: asked.dtype,
        params,
    })
}

fn require_prompt(kind: JobKind, prompt: &str, what: &str) -> crate::Result<()> {
    if prompt.trim().is_empty() {
        return Err(bad(format!(
            "a {} job needs --prompt: {what}",
            kind.as_str()
        )));
    }
    Ok(())
}

fn duration(
    asked: &JobOverrides,
    defaults: &Defaults,
    fallback: f64,
    max: f64,
) -> crate::Result<f64> {
    let d = asked.duration.or(defaults.duration).unwrap_or(fallback);
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

    fn asked(prompt: &str) -> JobOverrides {
        JobOverrides {
            model: Some("m".into()),
            prompt: Some(prompt.into()),
            ..JobOverrides::default()
        }
    }

    #[test]
    fn the_model_decides_the_kind_unless_asked_otherwise() {
        assert_eq!(
            settle_kind(JobKind::Txt2img, "musicgen-small", Kind::Music).unwrap(),
            JobKind::Music
        );
        assert_eq!(
            settle_kind(JobKind::Txt2img, "sd15", Kind::Txt2img).unwrap(),
            JobKind::Txt2img
        );
        let err = settle_kind(JobKind::Stt, "sd15", Kind::Txt2img).unwrap_err();
        assert!(err.to_string().contains("whisper-base"), "{err}");
        let err = settle_kind(JobKind::Tts, "musicgen-small", Kind::Music).unwrap_err();
        assert!(err.to_string().contains("makes music, not tts"), "{err}");
        assert_eq!(
            settle_kind(JobKind::Img2img, "blip-base", Kind::Caption).unwrap(),
            JobKind::Caption
        );
        // --init-image (implied img2img) on an image-to-video model is img2vid; on a
        // text-to-video one it stays txt2vid (the video fill refuses the image); img2vid asked
        // of a text-to-video model is refused.
        for (asked, model, want) in [
            (JobKind::Img2img, Kind::Img2vid, JobKind::Img2vid),
            (JobKind::Img2vid, Kind::Img2vid, JobKind::Img2vid),
            (JobKind::Txt2img, Kind::Img2vid, JobKind::Txt2vid),
            (JobKind::Img2img, Kind::Txt2vid, JobKind::Txt2vid),
        ] {
            assert_eq!(settle_kind(asked, "wan", model).unwrap(), want, "{asked:?}");
        }
        assert!(settle_kind(JobKind::Img2vid, "wan", Kind::Txt2vid).is_err());
    }

    #[test]
    fn audio_jobs_get_defaults_and_bounds() {
        let d = crate::models::Family::Musicgen.default_params();
        let filled = fill_media_spec(&asked("lofi"), JobKind::Music, &d).unwrap();
        assert_eq!(
            filled.params,
            Params::Music(MusicParams {
                duration: 8.0,
                guidance: 3.0,
                batch: 1
            })
        );
        assert!(filled.seed.is_some() && filled.image().is_none());
        let long = JobOverrides {
            duration: Some(10_000.0),
            ..asked("lofi")
        };
        assert!(
            fill_media_spec(&long, JobKind::Music, &d)
                .unwrap_err()
                .to_string()
                .contains("--duration")
        );
        let empty = fill_media_spec(&asked("  "), JobKind::Tts, &d).unwrap_err();
        assert_eq!(empty.exit_code(), 2);
        let tts = fill_media_spec(&asked("Hello"), JobKind::Tts, &d).unwrap();
        let Params::Speech(speech) = tts.params else {
            panic!("{tts:?}")
        };
        assert!(speech.voice.contains("speaker"));
        // Image-only values asked of an audio job are not carried into it.
        let with_steps = JobOverrides {
            steps: Some(30),
            width: Some(512),
            ..asked("lofi")
        };
        let music = fill_media_spec(&with_steps, JobKind::Music, &d).unwrap();
        assert!(!serde_json::to_string(&music).unwrap().contains("steps"));
    }

    #[test]
    fn inputs_must_exist() {
        let d = Defaults::default();
        let mut stt = asked("");
        assert!(
            fill_media_spec(&stt, JobKind::Stt, &d)
                .unwrap_err()
                .to_string()
                .contains("--audio")
        );
        stt.audio = Some("/no/such.wav".into());
        assert!(
            fill_media_spec(&stt, JobKind::Stt, &d)
                .unwrap_err()
                .to_string()
                .contains("no such file")
        );
        let cap = JobOverrides {
            caption: Some("/no/such.png".into()),
            ..asked("")
        };
        assert_eq!(
            fill_media_spec(&cap, JobKind::Caption, &d)
                .unwrap_err()
                .exit_code(),
            2
        );
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        std::fs::write(&wav, b"x").unwrap();
        let bad_lang = JobOverrides {
            audio: Some(wav),
            language: Some("English".into()),
            ..asked("")
        };
        assert!(
            fill_media_spec(&bad_lang, JobKind::Stt, &d)
                .unwrap_err()
                .to_string()
                .contains("lowercase")
        );
    }
}
