//! The building blocks every model family shares (SD, Parler-TTS, MusicGen, Whisper, BLIP and the
//! families to come): weight loading (safetensors, memory-mapped, converted, staged onto CUDA).
//! Attention, norms, MLPs, rotary embeddings and the text encoders join here as the families
//! come to share them; what only one family uses stays in its engine.

pub mod weights;
