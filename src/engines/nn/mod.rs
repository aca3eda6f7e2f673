//! The building blocks every model family shares (SD, Parler-TTS, MusicGen, Whisper, BLIP and the
//! families to come):
//! - `attention`: the one attention implementation: the scaled dot-product core (with the fused
//!   CPU/CUDA kernels and memory-bounded query chunks the UNet and the VAE run on), masks, the
//!   multi-head block and the decoders' key/value cache (CLIP, Whisper, BLIP, MusicGen, Parler);
//! - `weights`: weight loading (safetensors, memory-mapped, converted, staged onto CUDA);
//! - `text`: the text encoders: CLIP (SD's) and T5 (MusicGen's and Parler's; FLUX's to come);
//! - `compare`: how outputs are compared with a reference (kernel tests, `bench ops`, the parity
//!   tests); `dtype`: a dtype's reported name.
//!
//! Norms, MLPs and rotary embeddings join here as the families come to share them; what only one
//! family uses stays in its engine.

pub mod attention;
pub mod compare;
pub mod dtype;
pub mod text;
pub mod weights;
