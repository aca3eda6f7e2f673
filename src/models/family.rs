//! The architecture families: which engine runs a model and which config shapes apply, what
//! each makes, its native size and the defaults of a folder that is not in the registry.

use serde::{Deserialize, Serialize};

use super::entry::{Defaults, Kind};
use crate::vocab::Scheduler;

/// The architecture family: decides which engine and which config shapes apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Sd1,
    Sd2,
    Sdxl,
    /// Parler-TTS: T5 description encoder, decoder over DAC codes.
    ParlerTts,
    /// MusicGen: T5 text encoder, decoder over EnCodec codes.
    Musicgen,
    /// Whisper speech recognition.
    Whisper,
    /// BLIP image captioning.
    Blip,
    /// A small instruct language model in one GGUF file (Qwen2, Llama/SmolLM2).
    GgufLlm,
    /// FLUX.1 (schnell, dev): a flow-matching MMDiT transformer, CLIP-L + T5 text encoders.
    Flux,
    /// Z-Image(-Turbo): a flow-matching single-stream DiT conditioned on Qwen3 states.
    ZImage,
    /// Stable Diffusion 3.5 (Medium, Large, Large Turbo): a flow-matching MMDiT transformer,
    /// CLIP-L + OpenCLIP bigG + optional T5 text encoders.
    Sd3,
    /// Real-ESRGAN upscalers (RRDBNet, SRVGGNetCompact) in one safetensors file.
    Realesrgan,
    /// Wan 2.1 text-to-video (WanPipeline): UMT5 text encoder, a flow-matching video DiT and the
    /// Wan causal 3D VAE.
    Wan,
    /// LTX-Video 0.9.x (LTXPipeline, LTXImageToVideoPipeline): a T5 encoder, a video DiT over
    /// 1x1x1 patches of a 32x spatial, 8x temporal causal VAE.
    Ltx,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sd1 => "sd1",
            Self::Sd2 => "sd2",
            Self::Sdxl => "sdxl",
            Self::ParlerTts => "parler-tts",
            Self::Musicgen => "musicgen",
            Self::Whisper => "whisper",
            Self::Blip => "blip",
            Self::GgufLlm => "gguf-llm",
            Self::Flux => "flux",
            Self::ZImage => "z-image",
            Self::Sd3 => "sd3",
            Self::Realesrgan => "realesrgan",
            Self::Wan => "wan",
            Self::Ltx => "ltx",
        }
    }

    /// Families that make images from a diffusers pipeline folder (Stable Diffusion, FLUX,
    /// Z-Image).
    pub fn is_diffusion(self) -> bool {
        matches!(
            self,
            Self::Sd1 | Self::Sd2 | Self::Sdxl | Self::Flux | Self::ZImage | Self::Sd3
        )
    }

    /// Flow-matching transformer families (FLUX, Z-Image, SD 3.5): sizes in multiples of 16, the
    /// flow-euler scheduler, long-context text encoders.
    pub fn is_flow(self) -> bool {
        matches!(self, Self::Flux | Self::ZImage | Self::Sd3)
    }

    /// Families that make video clips (`--kind txt2vid|img2vid`).
    pub fn is_video(self) -> bool {
        matches!(self, Self::Wan | Self::Ltx)
    }

    /// A video family's frame step and side multiple as its released models have them: Wan
    /// makes 4n+1 frames at sides in multiples of 16 (Wan 2.2 TI2V's 16x VAE: 32), LTX-Video
    /// 8n+1 frames in multiples of 32. A folder's own configs decide when a job is checked
    /// (`jobs::spec::video::VideoGeometry`); this is the first guess (the TUI's frame nudges).
    pub fn video_steps(self) -> Option<(u32, u32)> {
        match self {
            Self::Wan => Some((4, 16)),
            Self::Ltx => Some((8, 32)),
            _ => None,
        }
    }

    /// What a model of this family makes when no registry entry says.
    pub fn kind(self) -> Kind {
        match self {
            Self::Sd1 | Self::Sd2 | Self::Sdxl | Self::Flux | Self::ZImage | Self::Sd3 => {
                Kind::Txt2img
            }
            Self::ParlerTts => Kind::Tts,
            Self::Musicgen => Kind::Music,
            Self::Whisper => Kind::Stt,
            Self::Blip => Kind::Caption,
            Self::GgufLlm => Kind::Text,
            Self::Realesrgan => Kind::Upscale,
            Self::Wan => Kind::Txt2vid,
            // The same weights run LTXPipeline and LTXImageToVideoPipeline.
            Self::Ltx => Kind::Img2vid,
        }
    }

    /// The side of the square images the family was trained on (SD2's 768 is the v-prediction model;
    /// see `ModelLayout::default_params` for the 512 epsilon variant); 0 for families without images.
    pub fn native_side(self) -> u32 {
        match self {
            Self::Sd1 => 512,
            Self::Sd2 => 768,
            Self::Sdxl | Self::Flux | Self::ZImage | Self::Sd3 => 1024,
            _ => 0,
        }
    }

    /// Parameters for a local folder that is not in the registry.
    pub fn default_params(self) -> Defaults {
        let side = self.native_side();
        let mut d = Defaults {
            steps: 30,
            guidance: 7.5,
            width: side,
            height: side,
            scheduler: match self {
                Self::Sdxl => Scheduler::Euler,
                _ => Scheduler::Ddim,
            },
            ..Defaults::default()
        };
        match self {
            Self::Musicgen => {
                d.guidance = 3.0;
                d.duration = Some(8.0);
            }
            Self::ParlerTts => {
                d.guidance = 0.0;
                d.duration = Some(30.0);
                d.voice = Some(DEFAULT_VOICE.to_owned());
            }
            Self::Whisper | Self::Blip | Self::GgufLlm | Self::Realesrgan => d.guidance = 0.0,
            // dev's defaults (28 steps, embedded guidance 3.5); a schnell folder's are set by
            // `ModelLayout::default_params` from its transformer config.
            Self::Flux => {
                d.steps = 28;
                d.guidance = 3.5;
                d.scheduler = Scheduler::FlowEuler;
                d.max_sequence_length = Some(512);
                d.embedded_guidance = Some(true);
            }
            // WanPipeline's __call__ defaults: 480x832, 81 frames, 50 steps, CFG 5.0, 512 UMT5
            // tokens; 16 fps (the Wan 2.1 repos' export_to_video examples).
            Self::Wan => {
                d.steps = 50;
                d.guidance = 5.0;
                d.width = 832;
                d.height = 480;
                d.scheduler = Scheduler::UniPc;
                d.max_sequence_length = Some(512);
                d.frames = Some(81);
                d.fps = Some(16);
            }
            // LTXPipeline's __call__ defaults: 704x512, 161 frames, 50 steps, guidance 3, 128 T5
            // tokens, frame_rate 25.
            Self::Ltx => {
                d.steps = 50;
                d.guidance = 3.0;
                d.width = 704;
                d.height = 512;
                d.scheduler = Scheduler::FlowEuler;
                d.max_sequence_length = Some(128);
                d.frames = Some(161);
                d.fps = Some(25);
            }
            // Z-Image-Turbo's model card: 9 steps, no guidance; 512 Qwen3 tokens (diffusers).
            Self::ZImage => {
                d.steps = 9;
                d.guidance = 0.0;
                d.scheduler = Scheduler::FlowEuler;
                d.max_sequence_length = Some(512);
            }
            // SD 3.5 Large's (28 steps, CFG 3.5, 256 T5 tokens); a Medium folder's are set by
            // `ModelLayout::default_params` from its transformer config.
            Self::Sd3 => {
                d.steps = 28;
                d.guidance = 3.5;
                d.scheduler = Scheduler::FlowEuler;
                d.max_sequence_length = Some(256);
            }
            Self::Sd1 | Self::Sd2 | Self::Sdxl => {}
        }
        d
    }
}

/// The voice description used when a speech job gives none.
pub const DEFAULT_VOICE: &str = "A female speaker delivers a slightly expressive and animated speech \
with a moderate speed and pitch. The recording is of very high quality, with the speaker's voice \
sounding clear and very close up.";

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
