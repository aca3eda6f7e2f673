//! Text encoders more than one family uses: `clip` (transformers' CLIPTextModel and
//! CLIPTextModelWithProjection; its config.json in `clip_config`) and `t5` (transformers'
//! T5EncoderModel).

pub mod clip;
pub mod clip_config;
pub mod t5;
