//! Text engines: speech to text (Whisper), image captioning (BLIP), prompt enhancement (a GGUF LLM).

pub mod blip;
pub mod enhance;
pub mod whisper;
