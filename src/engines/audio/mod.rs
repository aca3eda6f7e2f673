//! Audio engines: text to speech (Parler-TTS) and text to music (MusicGen), and reading audio files.

pub mod decode;
pub mod musicgen;
pub mod parler;
pub mod resample;
