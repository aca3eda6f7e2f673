//! A finished clip in the preview: decoded off the UI thread (`load_clip`, an MP4 through
//! `jobs::output::video_decode`), its frames scaled down to a memory budget, then played at the
//! clip's frame rate where the terminal shows images (kitty, iTerm2, sixel) or held on the
//! middle frame with a frame counter (halfblocks). Space pauses, Left/Right step.

use std::path::Path;
use std::time::{Duration, Instant};

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};

use crate::jobs::output::video_decode::decode_mp4_file;

/// The decoded frames kept for playback at most (scaled down to fit).
const CLIP_BUDGET_BYTES: usize = 96 << 20;
/// The longest side a kept frame has (a preview pane is never larger).
const MAX_SIDE: u32 = 1024;
/// How often playback may change the frame: higher frame rates skip frames, keeping the
/// terminal's load (one image a frame) bounded.
pub const FRAME_EVERY: Duration = Duration::from_millis(66);

/// A clip ready to play.
#[derive(Debug, Clone)]
pub struct Clip {
    /// The file's name.
    pub label: String,
    pub fps: f64,
    /// The clip's own size (frames may be kept smaller).
    pub size: (u32, u32),
    pub frames: Vec<DynamicImage>,
}

/// The size frames of `size` are kept at so that `count` of them fit the budget.
fn kept_size(size: (u32, u32), count: usize) -> (u32, u32) {
    let (w, h) = (f64::from(size.0.max(1)), f64::from(size.1.max(1)));
    let bytes = w * h * 3.0 * count.max(1) as f64;
    let scale = (CLIP_BUDGET_BYTES as f64 / bytes)
        .sqrt()
        .min(f64::from(MAX_SIDE) / w.max(h))
        .min(1.0);
    (
        ((w * scale).floor() as u32).max(1),
        ((h * scale).floor() as u32).max(1),
    )
}

/// Decodes a video file for the preview (blocking: call it from a blocking task).
pub fn load_clip(path: &Path) -> Result<Clip, String> {
    let decoded = decode_mp4_file(path)?;
    let size = (decoded.width, decoded.height);
    let (kw, kh) = kept_size(size, decoded.frames.len());
    let frames = decoded
        .frames
        .into_iter()
        .map(|rgb| {
            let image = RgbImage::from_raw(size.0, size.1, rgb)
                .map(DynamicImage::ImageRgb8)
                .ok_or_else(|| format!("{}: a frame of the wrong size", path.display()))?;
            Ok(if (kw, kh) == size {
                image
            } else {
                image.resize_exact(kw, kh, FilterType::Triangle)
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Clip {
        label: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        fps: decoded.fps,
        size,
        frames,
    })
}

/// Which frame shows, and whether time moves it.
#[derive(Debug)]
pub struct Player {
    pub clip: Clip,
    shown: usize,
    /// Playing: the frame shown at `since`; frames follow from the time passed.
    since: Option<(Instant, usize)>,
    /// Whether the terminal can play (an image protocol, not halfblocks).
    animates: bool,
}

impl Player {
    /// A player at the clip's start, playing if `animates`; else held on the middle frame.
    pub fn new(clip: Clip, animates: bool, now: Instant) -> Self {
        let middle = clip.frames.len().saturating_sub(1) / 2;
        Self {
            shown: if animates { 0 } else { middle },
            since: animates.then_some((now, 0)),
            clip,
            animates,
        }
    }

    pub fn shown(&self) -> usize {
        self.shown
    }

    pub fn frame(&self) -> Option<&DynamicImage> {
        self.clip.frames.get(self.shown)
    }

    pub fn playing(&self) -> bool {
        self.since.is_some()
    }

    /// Moves to the frame due at `now`; true when it changed.
    pub fn advance(&mut self, now: Instant) -> bool {
        let Some((start, first)) = self.since else {
            return false;
        };
        let n = self.clip.frames.len().max(1);
        let passed = now.saturating_duration_since(start).as_secs_f64();
        let next = (first + (passed * self.clip.fps.max(0.1)) as usize) % n;
        let changed = next != self.shown;
        self.shown = next;
        changed
    }

    /// Space: pause, or play on from the frame shown (where the terminal plays).
    pub fn toggle(&mut self, now: Instant) {
        self.since = match self.since {
            Some(_) => None,
            None if self.animates => Some((now, self.shown)),
            None => None,
        };
    }

    /// Left/Right: one frame back or on (pauses playback).
    pub fn step(&mut self, forward: bool) {
        let n = self.clip.frames.len().max(1);
        self.since = None;
        self.shown = if forward {
            (self.shown + 1) % n
        } else {
            (self.shown + n - 1) % n
        };
    }

    /// "frame 17/33 · 33f 2.1s @16fps" and whether it plays.
    pub fn counter(&self) -> String {
        let n = self.clip.frames.len();
        let state = match (self.animates, self.playing()) {
            (true, false) => " · paused (Space)",
            _ => "",
        };
        format!(
            "frame {}/{n} · {}{state}",
            self.shown + 1,
            crate::tui::panes::queue::clip_length(n as u32, self.clip.fps)
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn clip(n: usize, fps: f64) -> Clip {
        Clip {
            label: "c.mp4".into(),
            fps,
            size: (4, 2),
            frames: (0..n)
                .map(|i| {
                    DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 2, image::Rgb([i as u8; 3])))
                })
                .collect(),
        }
    }

    #[test]
    fn halfblocks_hold_the_middle_frame_with_a_counter() {
        let t = Instant::now();
        let mut p = Player::new(clip(33, 16.0), false, t);
        assert_eq!(p.counter(), "frame 17/33 · 33f 2.1s @16fps");
        assert!(!p.advance(t + Duration::from_secs(1)), "no playback");
        p.toggle(t);
        assert!(!p.playing());
        p.step(true);
        assert_eq!(p.shown(), 17);
    }

    #[test]
    fn playback_follows_the_clock_and_pauses() {
        let t = Instant::now();
        let mut p = Player::new(clip(9, 16.0), true, t);
        assert_eq!(p.shown(), 0);
        assert!(p.advance(t + Duration::from_millis(130)));
        assert_eq!(p.shown(), 2);
        assert!(p.advance(t + Duration::from_millis(600)), "wraps around");
        assert_eq!(p.shown(), 0);
        p.toggle(t + Duration::from_millis(600));
        assert!(!p.advance(t + Duration::from_secs(5)));
        assert!(p.counter().contains("paused"));
        p.toggle(t + Duration::from_secs(5));
        p.advance(t + Duration::from_millis(5070));
        assert_eq!(p.shown(), 1, "plays on from where it paused");
        p.step(false);
        assert_eq!((p.shown(), p.playing()), (0, false));
    }

    #[test]
    fn long_clips_are_kept_smaller() {
        assert_eq!(kept_size((832, 480), 33), (832, 480));
        let (w, h) = kept_size((832, 480), 481);
        assert!(w < 832 && h < 480 && (w * h * 3) as usize * 481 <= CLIP_BUDGET_BYTES);
        assert_eq!(kept_size((4096, 2048), 1).0, 1024);
    }
}
