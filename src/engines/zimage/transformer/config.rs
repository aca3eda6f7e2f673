//! `transformer/config.json` of a Z-Image model (diffusers' ZImageTransformer2DModel), read with
//! diffusers' defaults for missing keys (Z-Image-Turbo's shape) and checked: every value the
//! transformer divides or indexes by, and the one patch layout it runs (2x2 spatial, 1 frame,
//! the only one ZImagePipeline asks for), refused by key otherwise.

use std::path::Path;

use serde::Deserialize;

use crate::engines::config_check::{self as check, Check, bad_config, read_config, unsupported};
use crate::error::Result;

/// The spatial and temporal patch ZImagePipeline runs (`patch_size=2, f_patch_size=1`).
pub const PATCH: usize = 2;
pub const F_PATCH: usize = 1;
/// diffusers' `ADALN_EMBED_DIM`: the modulation input is `min(dim, 256)` wide.
const ADALN_EMBED_DIM: usize = 256;

/// The config's own keys; `None` (missing or null) takes diffusers' default.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawConfig {
    all_patch_size: Option<Vec<usize>>,
    all_f_patch_size: Option<Vec<usize>>,
    in_channels: Option<usize>,
    dim: Option<usize>,
    n_layers: Option<usize>,
    n_refiner_layers: Option<usize>,
    n_heads: Option<usize>,
    norm_eps: Option<f64>,
    qk_norm: Option<bool>,
    cap_feat_dim: Option<usize>,
    rope_theta: Option<f64>,
    t_scale: Option<f64>,
    axes_dims: Option<Vec<usize>>,
    axes_lens: Option<Vec<usize>>,
}

/// The transformer's shape. (`n_kv_heads` is not read: diffusers' attention ignores it, every
/// head has its own keys and values; `siglip_feat_dim` only adds the Omni path's layers, which
/// text-to-image never runs.)
#[derive(Debug, Clone, PartialEq)]
pub struct ZImageTransformerConfig {
    /// Latent channels (16, the FLUX VAE's).
    pub in_channels: usize,
    /// Model width.
    pub dim: usize,
    /// Main single-stream layers.
    pub n_layers: usize,
    /// Layers of the noise refiner and of the context refiner each.
    pub n_refiner_layers: usize,
    pub n_heads: usize,
    /// The RMSNorms' eps (the q/k norms' is diffusers' fixed 1e-5).
    pub norm_eps: f64,
    /// RMSNorm on queries and keys per head.
    pub qk_norm: bool,
    /// The text encoder's hidden size (Qwen3-4B's 2560).
    pub cap_feat_dim: usize,
    pub rope_theta: f64,
    /// The timestep's factor before its sinusoidal embedding.
    pub t_scale: f64,
    /// Head values per rotary axis (sequence, row, column); they add up to a head.
    pub axes_dims: Vec<usize>,
    /// Positions each axis's table holds: ids must stay below them.
    pub axes_lens: Vec<usize>,
}

impl ZImageTransformerConfig {
    /// Parses and checks a config.json's text; errors are reasons naming the key.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let patches = raw.all_patch_size.unwrap_or_else(|| vec![PATCH]);
        let f_patches = raw.all_f_patch_size.unwrap_or_else(|| vec![F_PATCH]);
        if patches.len() != f_patches.len() {
            return Err(format!(
                "`all_patch_size` ({}) and `all_f_patch_size` ({}) must list as many entries",
                patches.len(),
                f_patches.len()
            ));
        }
        // The pipeline runs the 2-1 patch embedder and final layer only; others are not loaded.
        if !patches
            .iter()
            .zip(&f_patches)
            .any(|p| p == (&PATCH, &F_PATCH))
        {
            return Err(unsupported(
                "all_patch_size / all_f_patch_size",
                (patches, f_patches),
            ));
        }
        let c = Self {
            in_channels: raw.in_channels.unwrap_or(16),
            dim: raw.dim.unwrap_or(3840),
            n_layers: raw.n_layers.unwrap_or(30),
            n_refiner_layers: raw.n_refiner_layers.unwrap_or(2),
            n_heads: raw.n_heads.unwrap_or(30),
            norm_eps: raw.norm_eps.unwrap_or(1e-5),
            qk_norm: raw.qk_norm.unwrap_or(true),
            cap_feat_dim: raw.cap_feat_dim.unwrap_or(2560),
            rope_theta: raw.rope_theta.unwrap_or(256.0),
            t_scale: raw.t_scale.unwrap_or(1000.0),
            axes_dims: raw.axes_dims.unwrap_or_else(|| vec![32, 48, 48]),
            axes_lens: raw.axes_lens.unwrap_or_else(|| vec![1024, 512, 512]),
        };
        c.check()?;
        Ok(c)
    }

    /// A config.json file; every problem is bad input naming the file (and the key).
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        Self::from_json(&text).map_err(|e| bad_config(path, &e))
    }

    /// The values the transformer divides or indexes by.
    pub fn check(&self) -> Check {
        check::positive(&[
            ("in_channels", self.in_channels),
            ("dim", self.dim),
            ("n_layers", self.n_layers),
            ("cap_feat_dim", self.cap_feat_dim),
        ])?;
        check::multiple_of("dim", self.dim, "n_heads", self.n_heads)?;
        check::positive_float("norm_eps", self.norm_eps)?;
        check::positive_float("rope_theta", self.rope_theta)?;
        if !self.t_scale.is_finite() {
            return Err(format!("`t_scale` = {}: it must be finite", self.t_scale));
        }
        check::all_positive("axes_dims", &self.axes_dims)?;
        check::all_positive("axes_lens", &self.axes_lens)?;
        if self.axes_dims.len() != 3 || self.axes_lens.len() != 3 {
            return Err(format!(
                "`axes_dims` = {:?} and `axes_lens` = {:?}: the model's position ids have 3 axes \
                 (sequence, row, column), so each needs 3 entries",
                self.axes_dims, self.axes_lens
            ));
        }
        if let Some((i, d)) = self
            .axes_dims
            .iter()
            .enumerate()
            .find(|(_, d)| !d.is_multiple_of(2))
        {
            return Err(format!(
                "`axes_dims`[{i}] = {d}: rotary axes pair values, so each must be even"
            ));
        }
        let sum: usize = self.axes_dims.iter().sum();
        if sum != self.head_dim() {
            return Err(format!(
                "`axes_dims` = {:?} adds up to {sum}, not the head size `dim` / `n_heads` = {}: \
                 the rotary axes must cover a head",
                self.axes_dims,
                self.head_dim()
            ));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// The modulation input's width (`min(dim, 256)`: the timestep embedder's output).
    pub fn adaln_dim(&self) -> usize {
        self.dim.min(ADALN_EMBED_DIM)
    }

    /// The feed-forwards' hidden width, `int(dim / 3 * 8)` in Python's float arithmetic.
    pub fn ffn_dim(&self) -> usize {
        (self.dim as f64 / 3.0 * 8.0) as usize
    }

    /// Values per patch token: `f_patch * patch * patch * in_channels` (in and out alike).
    pub fn patch_dim(&self) -> usize {
        F_PATCH * PATCH * PATCH * self.in_channels
    }

    /// Parameters of the text-to-image transformer (every weight it loads), for the planner.
    pub fn parameters(&self) -> u64 {
        let (d, a, f) = (
            self.dim as u64,
            self.adaln_dim() as u64,
            self.ffn_dim() as u64,
        );
        let lin = |i: u64, o: u64| i * o + o;
        let hd = self.head_dim() as u64;
        let qk = if self.qk_norm { 2 * hd } else { 0 };
        let block = 4 * d * d + qk + 3 * d * f + 4 * d;
        let refiner = self.n_refiner_layers as u64;
        let modulated = block + lin(a, 4 * d);
        let p = self.patch_dim() as u64;
        let c = self.cap_feat_dim as u64;
        (self.n_layers as u64 + refiner) * modulated
            + refiner * block
            + lin(p, d)
            + lin(256, 1024)
            + lin(1024, a)
            + c
            + lin(c, d)
            + 2 * d
            + lin(a, d)
            + lin(d, p)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_z_image_turbos_shape() {
        let c = ZImageTransformerConfig::from_json("{}").unwrap();
        assert_eq!(
            (c.head_dim(), c.adaln_dim(), c.ffn_dim()),
            (128, 256, 10240)
        );
        assert_eq!(c.patch_dim(), 64);
        // 6.15 B parameters: Z-Image-Turbo's 12.3 GB of bf16 transformer weights.
        assert_eq!(c.parameters(), 6_154_908_736);
    }

    #[test]
    fn the_feed_forward_width_truncates_as_python_does() {
        let c = ZImageTransformerConfig::from_json(
            r#"{"dim": 32, "n_heads": 2, "axes_dims": [4, 6, 6]}"#,
        )
        .unwrap();
        // int(32 / 3 * 8) = int(85.33...) = 85.
        assert_eq!(c.ffn_dim(), 85);
        assert_eq!(c.adaln_dim(), 32);
    }

    #[test]
    fn bad_values_are_refused_by_key() {
        let e = ZImageTransformerConfig::from_json(r#"{"all_patch_size": [4]}"#).unwrap_err();
        assert!(e.contains("`all_patch_size"), "{e}");
        let e = ZImageTransformerConfig::from_json(r#"{"n_heads": 0}"#).unwrap_err();
        assert!(e.contains("`n_heads` = 0"), "{e}");
        let e = ZImageTransformerConfig::from_json(r#"{"axes_dims": [32, 48, 40]}"#).unwrap_err();
        assert!(e.contains("adds up to 120"), "{e}");
        let e = ZImageTransformerConfig::from_json(r#"{"axes_dims": [31, 49, 48]}"#).unwrap_err();
        assert!(e.contains("must be even"), "{e}");
        let e = ZImageTransformerConfig::from_json(r#"{"axes_lens": [1024, 512]}"#).unwrap_err();
        assert!(e.contains("3 entries"), "{e}");
        let e = ZImageTransformerConfig::from_json(r#"{"norm_eps": 0}"#).unwrap_err();
        assert!(e.contains("`norm_eps`"), "{e}");
    }

    #[test]
    fn a_missing_file_is_bad_input_naming_it() {
        let path = Path::new("/nonexistent/transformer/config.json");
        let e = ZImageTransformerConfig::load(path).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/transformer/config.json"), "{e}");
    }
}
