//! The building blocks every model family shares (SD, Parler-TTS, MusicGen, Whisper, BLIP and the
//! families to come): weight loading (safetensors, memory-mapped, converted, staged onto CUDA)
//! and how outputs are compared with a reference (kernel tests, `bench ops`, the parity tests);
//! a dtype's reported name.
//! Attention, norms, MLPs, rotary embeddings and the text encoders join here as the families
//! come to share them; what only one family uses stays in its engine.

pub mod compare;
pub mod dtype;
pub mod weights;
