//! Rotary position embeddings (RoPE) as the coming families use them, applied in f32 whatever
//! the activations' dtype:
//! - [`Rope1d`]: Llama's and Qwen's, rotate-half (transformers' `apply_rotary_pos_emb`): value i
//!   of a head pairs with value i + head_dim / 2;
//! - [`MultiAxisRope`]: FLUX's (diffusers' `FluxPosEmbed` and `apply_rotary_emb(use_real=True,
//!   use_real_unbind_dim=-1)`): a position has one id per axis, each axis rotates its own slice
//!   of the head (`axes_dim`), and neighbouring values (2i, 2i + 1) pair up.
//!
//! Both make [`RopeTables`]: cos and sin of every (position, pair), half a head wide, which
//! candle_nn's rope kernels apply (`rope` for rotate-half, `rope_i` for neighbouring pairs).

use candle_core::{DType, Device, Result, Tensor};

/// Which values of a head rotate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// i with i + head_dim / 2 (Llama, Qwen).
    Halves,
    /// 2i with 2i + 1 (FLUX).
    Neighbours,
}

/// cos and sin per position and pair, (seq, head_dim / 2) in f32.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
    pub pairing: Pairing,
}

impl RopeTables {
    fn from_angles(
        angles: &[f64],
        seq: usize,
        pairs: usize,
        pairing: Pairing,
        device: &Device,
    ) -> Result<Self> {
        let table = |f: fn(f64) -> f64| -> Result<Tensor> {
            let values: Vec<f32> = angles.iter().map(|&a| f(a) as f32).collect();
            Tensor::from_vec(values, (seq, pairs), device)
        };
        Ok(Self {
            cos: table(f64::cos)?,
            sin: table(f64::sin)?,
            pairing,
        })
    }

    /// Rotates `x` (batch, heads, seq, head_dim): computed in f32, returned in `x`'s dtype.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, seq, head_dim) = x.dims4()?;
        let (rows, pairs) = self.cos.dims2()?;
        if head_dim != 2 * pairs || seq != rows {
            candle_core::bail!(
                "rotary tables for {rows} positions x {pairs} pairs do not fit {:?} (batch, heads, \
                 seq, head_dim)",
                x.dims()
            );
        }
        let xf = x.to_dtype(DType::F32)?.contiguous()?;
        let out = match self.pairing {
            Pairing::Halves => candle_nn::rotary_emb::rope(&xf, &self.cos, &self.sin)?,
            Pairing::Neighbours => candle_nn::rotary_emb::rope_i(&xf, &self.cos, &self.sin)?,
        };
        out.to_dtype(x.dtype())
    }
}

fn check_theta(theta: f64) -> Result<()> {
    if theta.is_finite() && theta > 0.0 {
        Ok(())
    } else {
        candle_core::bail!("rotary theta {theta}: it must be a number above 0")
    }
}

/// Llama/Qwen RoPE over consecutive positions.
#[derive(Debug, Clone)]
pub struct Rope1d {
    /// theta^(-2i / head_dim) for each pair, in f32 as transformers computes it.
    inv_freq: Vec<f32>,
}

impl Rope1d {
    pub fn new(head_dim: usize, theta: f64) -> Result<Self> {
        check_theta(theta)?;
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            candle_core::bail!("rotary head_dim {head_dim}: it must be even and above 0");
        }
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        Ok(Self { inv_freq })
    }

    /// Tables for positions `start .. start + len` (a decoder step starts at its cache length).
    pub fn tables(&self, start: usize, len: usize, device: &Device) -> Result<RopeTables> {
        let pairs = self.inv_freq.len();
        // position x frequency in f32 as transformers does, then cos/sin of that f32 angle.
        let angles: Vec<f64> = (start..start + len)
            .flat_map(|p| self.inv_freq.iter().map(move |&f| f64::from(p as f32 * f)))
            .collect();
        RopeTables::from_angles(&angles, len, pairs, Pairing::Halves, device)
    }
}

/// FLUX's RoPE: one id per axis and position, `axes_dim[a]` head values for axis `a`.
#[derive(Debug, Clone)]
pub struct MultiAxisRope {
    /// Per axis, theta^(-2i / axis_dim) for each of its pairs (f64, as diffusers outside MPS).
    axes_freqs: Vec<Vec<f64>>,
}

impl MultiAxisRope {
    pub fn new(theta: f64, axes_dim: &[usize]) -> Result<Self> {
        check_theta(theta)?;
        if axes_dim.is_empty() || axes_dim.iter().any(|&d| d == 0 || !d.is_multiple_of(2)) {
            candle_core::bail!(
                "rotary axes_dim {axes_dim:?}: it needs at least one axis, each even and above 0"
            );
        }
        let axes_freqs = axes_dim
            .iter()
            .map(|&d| {
                (0..d / 2)
                    .map(|i| 1.0 / theta.powf((2 * i) as f64 / d as f64))
                    .collect()
            })
            .collect();
        Ok(Self { axes_freqs })
    }

    /// The head width the axes add up to.
    pub fn head_dim(&self) -> usize {
        2 * self.axes_freqs.iter().map(Vec::len).sum::<usize>()
    }

    /// Tables for `ids` (seq, axes): one row of (integer-valued) ids per position, e.g. FLUX's
    /// text ids (zeros) followed by its image ids (0, row, column). Built on `ids`' device.
    pub fn tables(&self, ids: &Tensor) -> Result<RopeTables> {
        let (seq, axes) = ids.dims2()?;
        if axes != self.axes_freqs.len() {
            candle_core::bail!(
                "rotary ids have {axes} axes per position; the embedding has {}",
                self.axes_freqs.len()
            );
        }
        // diffusers casts the ids to f32, then computes the angles in f64.
        let rows = ids
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let pairs = self.head_dim() / 2;
        let mut angles = Vec::with_capacity(seq * pairs);
        for row in &rows {
            for (&id, freqs) in row.iter().zip(&self.axes_freqs) {
                angles.extend(freqs.iter().map(|&f| f64::from(id) * f));
            }
        }
        RopeTables::from_angles(&angles, seq, pairs, Pairing::Neighbours, ids.device())
    }
}

#[cfg(test)]
#[path = "rotary_tests.rs"]
mod tests;
