//! Engines compute: each gets a request, a device, a progress sink and a cancel token,
//! and never knows who is watching.

pub mod audio;
pub mod config_check;
pub mod media;
pub mod progress;
pub mod sd;
pub mod text;

pub use progress::{CancelToken, EngineEvent, ProgressSink};
