//! A video model's clip shape: frames and sides as its VAE and transformer make them.

use std::path::Path;

use super::{MAX_FRAMES, bad};
use crate::jobs::spec::resolve::check_side;
use crate::models::Family;

/// How a video model shapes its clips: `temporal` n + 1 frames (its VAE keeps the first frame
/// and packs `temporal` frames a latent after it), sides in multiples of `side` (the VAE's
/// spatial ratio times the transformer's patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoGeometry {
    pub family: Family,
    pub temporal: u32,
    pub side: u32,
}

impl VideoGeometry {
    /// The family's released models' shape (Wan's when `family` makes no video).
    pub fn of_family(family: Family) -> Self {
        let (temporal, side) = family.video_steps().unwrap_or((4, 16));
        Self {
            family,
            temporal,
            side,
        }
    }

    /// From the model folder's VAE and transformer configs.
    pub fn read(family: Family, dir: &Path) -> crate::Result<Self> {
        let (temporal, side) = match family {
            Family::Ltx => {
                let (t, vae) = crate::engines::ltx::pipeline::check_configs(dir)?;
                (vae.temporal_ratio(), vae.spatial_ratio() * t.patch_size)
            }
            Family::Wan => {
                let vae = crate::engines::wan::vae::WanVaeConfig::read(&dir.join("vae"))?;
                let t = crate::engines::wan::transformer::WanTransformerConfig::load(
                    &dir.join("transformer/config.json"),
                )?;
                (vae.temporal_ratio(), vae.spatial_ratio() * t.patch_size[1])
            }
            other => {
                return Err(bad(format!(
                    "a {other} model makes no video; video jobs need a Wan or LTX-Video model"
                )));
            }
        };
        let (temporal, side) = (u32::try_from(temporal), u32::try_from(side));
        match (temporal, side) {
            (Ok(temporal), Ok(side)) if temporal > 0 && side > 0 => Ok(Self {
                family,
                temporal,
                side,
            }),
            _ => Err(bad(format!(
                "{}: the VAE or transformer config gives no usable frame or side ratio; fetch \
                 the model again",
                dir.display()
            ))),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self.family {
            Family::Ltx => "LTX-Video",
            _ => "Wan",
        }
    }

    /// Latent frames of a clip of `frames` frames.
    pub fn latent_frames(self, frames: u32) -> usize {
        (frames.saturating_sub(1) / self.temporal + 1) as usize
    }

    /// `--frames`: `temporal` n + 1, from 1 to MAX_FRAMES.
    pub fn check_frames(self, frames: u32) -> crate::Result<()> {
        let t = self.temporal;
        if frames == 0 || frames > MAX_FRAMES {
            return Err(bad(format!(
                "--frames {frames}: must be between 1 and {MAX_FRAMES} ({t}n+1, e.g. {} or {})",
                4 * t + 1,
                8 * t + 1
            )));
        }
        if !(frames - 1).is_multiple_of(t) {
            let down = (frames - 1) / t * t + 1;
            return Err(bad(format!(
                "--frames {frames}: {} makes {t}n+1 frames (its VAE packs {t} frames a latent \
                 after the first); try {down} or {}",
                self.name(),
                down + t
            )));
        }
        Ok(())
    }

    pub(super) fn check_side(self, flag: &str, value: u32) -> crate::Result<()> {
        check_side(flag, value)?;
        let m = self.side;
        if !value.is_multiple_of(m) {
            let down = (value / m * m).max(m);
            return Err(bad(format!(
                "{flag} {value}: {} video sides are multiples of {m} (the VAE's compression \
                 times the transformer's patch); try {down}",
                self.name()
            )));
        }
        Ok(())
    }
}
