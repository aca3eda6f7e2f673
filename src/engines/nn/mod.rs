//! The building blocks every model family shares (SD, Parler-TTS, MusicGen, Whisper, BLIP and the
//! families to come):
//! - `attention`: the one attention implementation: the scaled dot-product core (with the fused
//!   CPU/CUDA kernels and memory-bounded query chunks the UNet and the VAE run on), masks, the
//!   multi-head block and the decoders' key/value cache (CLIP, Whisper, BLIP, MusicGen, Parler);
//! - `weights`: weight loading (safetensors, memory-mapped, converted, staged onto CUDA; GGUF files
//!   read and dequantized one tensor at a time, or handed out as candle's quantized tensors);
//! - `text`: the text encoders: CLIP (SD's), T5 (MusicGen's and Parler's; FLUX's to come) and
//!   Qwen3 (Z-Image's: a chosen hidden state under a padding mask);
//! - `norm`: LayerNorm, RMSNorm and GroupNorm (on the fused kernels) from a VarBuilder;
//! - `mlp`: the feed-forwards (linear-act-linear, diffusers' GEGLU on the fused kernels, T5's
//!   gated GELU) and `activation`: transformers' activations, the exact GELU on all CPU cores;
//! - `layer_source`: a diffusion transformer's layers under their original names, from a diffusers
//!   folder through a name map or from a GGUF as stored (SD 3.5's);
//! - `lora`: LoRA files read, matched to a model's weights and merged into them at load;
//! - `rotary`: rotary position embeddings, Llama/Qwen's (rotate-half) and FLUX's (multi-axis);
//! - `kernels`: this crate's CPU and CUDA kernels (convolution, fused GroupNorm(+SiLU), softmax,
//!   attention, GEGLU, upsampling; CUDA's PTX built from kernels/cuda/ by build.rs), each a
//!   drop-in for the candle layer it replaces, with `Kernels::Stock` for candle's own;
//! - `compare`: how outputs are compared with a reference (kernel tests, `bench ops`, the parity
//!   tests); `dtype`: a dtype's reported name.
//!
//! What only one family uses stays in its engine.

pub mod activation;
pub mod attention;
pub mod compare;
pub mod dtype;
pub mod kernels;
pub mod layer_source;
pub mod lora;
pub mod mlp;
pub mod norm;
pub mod rotary;
pub mod text;
pub mod weights;
