//! The conditioning vector FLUX modulates every block with: sinusoidal embeddings of the timestep
//! (and of dev's guidance) through two-layer MLPs, plus CLIP's pooled output through another
//! (diffusers' CombinedTimestep(Guidance)TextProjEmbeddings; BFL's time_in, guidance_in,
//! vector_in).

use candle_core::{DType, Module, Result, Tensor};

use super::linear::Linear;

/// Width of the sinusoidal timestep embedding (diffusers' `Timesteps(256, ...)`).
pub const TIME_PROJ_DIM: usize = 256;
/// diffusers' `max_period`.
const MAX_PERIOD: f64 = 10_000.0;

/// diffusers' `get_timestep_embedding(t, 256, flip_sin_to_cos=True, downscale_freq_shift=0)`:
/// (b,) -> (b, 256) f32, cosines first ([`sinusoidal`] at FLUX's width).
pub fn timestep_projection(timesteps: &Tensor) -> Result<Tensor> {
    sinusoidal(timesteps, TIME_PROJ_DIM)
}

/// diffusers' `get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)`
/// for any even `dim`: (n,) -> (n, dim) f32, cosines first. Computed in f32 as torch does (the
/// exponent, its exp and the product with `t`), each f32 operation rounded once; exp, sin and
/// cos are taken in f64 and rounded, which is what torch's f32 kernels return up to an ulp.
pub fn sinusoidal(timesteps: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let neg_log = -(MAX_PERIOD.ln() as f32);
    let freqs: Vec<f32> = (0..half)
        .map(|i| {
            let exponent = (neg_log * i as f32) / half as f32;
            f64::from(exponent).exp() as f32
        })
        .collect();
    let ts = timesteps
        .to_dtype(DType::F32)?
        .to_device(&candle_core::Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut out = Vec::with_capacity(ts.len() * 2 * half);
    for &t in &ts {
        let args: Vec<f64> = freqs.iter().map(|&f| f64::from(t * f)).collect();
        out.extend(args.iter().map(|a| a.cos() as f32));
        out.extend(args.iter().map(|a| a.sin() as f32));
    }
    Tensor::from_vec(out, (ts.len(), 2 * half), timesteps.device())
}

/// Linear, SiLU, linear (diffusers' TimestepEmbedding / PixArtAlphaTextProjection; BFL's
/// MLPEmbedder with `in_layer`, `out_layer`).
#[derive(Debug, Clone)]
pub struct MlpEmbedder {
    pub in_layer: Linear,
    pub out_layer: Linear,
}

impl Module for MlpEmbedder {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.out_layer.forward(&self.in_layer.forward(xs)?.silu()?)
    }
}

/// The conditioning vector `temb` (b, inner_dim).
#[derive(Debug, Clone)]
pub struct TimeTextEmbed {
    pub time: MlpEmbedder,
    pub guidance: Option<MlpEmbedder>,
    pub vector: MlpEmbedder,
}

impl TimeTextEmbed {
    /// `timestep`, `guidance` already scaled by 1000 and in the hidden dtype (as the model's
    /// forward leaves them); `pooled` (b, pooled_dim) in the hidden dtype.
    pub fn forward(
        &self,
        timestep: &Tensor,
        guidance: Option<&Tensor>,
        pooled: &Tensor,
    ) -> Result<Tensor> {
        let dtype = pooled.dtype();
        let mut emb = self
            .time
            .forward(&timestep_projection(timestep)?.to_dtype(dtype)?)?;
        match (&self.guidance, guidance) {
            (Some(embedder), Some(g)) => {
                let g = embedder.forward(&timestep_projection(g)?.to_dtype(dtype)?)?;
                emb = (emb + g)?;
            }
            (Some(_), None) => candle_core::bail!(
                "this transformer embeds a guidance value (guidance_embeds, FLUX.1-dev) but none \
                 was given"
            ),
            (None, _) => {}
        }
        emb + self.vector.forward(pooled)?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn projection_is_cosines_then_sines_of_t_times_the_frequencies() {
        let t = Tensor::new(&[0f32, 500.0], &Device::Cpu).unwrap();
        let p = timestep_projection(&t).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(p[0].len(), 256);
        // t = 0: cos 0 = 1, sin 0 = 0.
        assert!(p[0][..128].iter().all(|&v| v == 1.0));
        assert!(p[0][128..].iter().all(|&v| v == 0.0));
        // First frequency is 1: cos(500), sin(500).
        assert!((p[1][0] - 500f32.cos()).abs() < 1e-6);
        assert!((p[1][128] - 500f32.sin()).abs() < 1e-6);
        // Last frequency: exp(-ln(1e4) * 127 / 128).
        let f = (-(10_000f64.ln()) * 127.0 / 128.0).exp();
        assert!((f64::from(p[1][127]) - (500.0 * f).cos()).abs() < 1e-5);
    }
}
