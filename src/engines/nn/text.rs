//! Text encoders more than one family uses: `clip` (transformers' CLIPTextModel and
//! CLIPTextModelWithProjection; its config.json in `clip_config`), `t5` (transformers'
//! T5EncoderModel; `umt5` its UMT5 sibling, Wan's) and `qwen` (transformers' Qwen3Model, any of
//! its hidden states: Z-Image's `hidden_states[-2]`; its config.json in `qwen_config`). `t5_gguf`
//! and `qwen_gguf` read the llama.cpp GGUFs users download in place of the big encoders'
//! safetensors. `clip_vision` is CLIP's image tower on the text tower's layers (Wan 2.1
//! image-to-video's image encoder), `clip_image` its image preprocessing.

pub mod clip;
pub mod clip_config;
pub mod clip_image;
pub mod clip_vision;
pub mod padding;
pub mod qwen;
pub mod qwen_config;
pub mod qwen_gguf;
pub mod t5;
pub mod t5_gguf;
pub mod t5_quantized;
pub mod t5_text;
pub mod umt5;
