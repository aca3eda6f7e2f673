//! A model's config files, read and checked when its job is submitted: a config whose values
//! the engine would divide or index by (zero heads, zero groups, ids past the vocabulary) is
//! refused before anything is queued, naming the file and the key, instead of failing (or
//! panicking) once the job runs.

use std::path::Path;

use crate::engines::{audio, flux, sd, sd3, text, zimage};
use crate::models::Family;

/// Reads every config the family's engine reads before its weights, with the engine's checks.
pub fn check_model_configs(dir: &Path, family: Family) -> crate::Result<()> {
    match family {
        Family::Sd1 | Family::Sd2 | Family::Sdxl => {
            sd::config::UNetConfig::load(&dir.join("unet/config.json"))?;
            sd::config::VaeConfig::load(&dir.join("vae/config.json"))?;
            for encoder in ["text_encoder", "text_encoder_2"] {
                let config = dir.join(encoder).join("config.json");
                if encoder == "text_encoder" || config.is_file() {
                    sd::config::TextEncoderConfig::load(&config)?;
                }
            }
            Ok(())
        }
        Family::ParlerTts => audio::parler::check_config(dir),
        Family::Musicgen => audio::musicgen::check_config(dir),
        Family::Whisper => text::whisper::check_config(dir),
        Family::Blip => text::blip::check_config(dir),
        Family::GgufLlm => text::enhance::check_model_file(dir),
        Family::Realesrgan => crate::models::upscaler_file::detect(dir).map(|_| ()),
        Family::Flux => flux::check_configs(dir),
        Family::ZImage => zimage::check_configs(dir),
        // T5's config is read when present: `--no-t5` folders may lack text_encoder_3/.
        Family::Sd3 => sd3::check_configs(dir, !dir.join("text_encoder_3").is_dir()),
        Family::Wan => crate::engines::wan::pipeline::check_configs(dir),
        Family::Ltx => crate::engines::ltx::pipeline::check_configs(dir).map(drop),
    }
}
