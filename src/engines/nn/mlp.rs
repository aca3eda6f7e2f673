//! The feed-forward blocks the families share:
//! - [`Mlp`]: linear -> activation -> linear (CLIP, Whisper, BLIP, MusicGen, Parler; with
//!   diffusers' names `net.0.proj` / `net.2` and GELU-tanh it is diffusers' "gelu-approximate"
//!   FeedForward, FLUX's);
//! - [`Geglu`]: diffusers' "geglu" FeedForward (SD's transformer blocks), on the fused CPU/CUDA
//!   GEGLU kernels of `nn::kernels`;
//! - [`GatedMlp`]: down(act(gate(x)) * up(x)) without biases, T5 v1.1's "gated-gelu"
//!   (transformers' T5DenseGatedActDense: `wi_0`, `wi_1`, `wo`).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::activation::Activation;
use crate::engines::nn::kernels::{self, Kernels};

/// Sizes, activation, biases and weight names of an [`Mlp`].
#[derive(Debug, Clone, Copy)]
pub struct MlpConfig<'a> {
    pub dim: usize,
    pub hidden: usize,
    pub act: Activation,
    pub bias: bool,
    pub fc1: &'a str,
    pub fc2: &'a str,
}

impl MlpConfig<'static> {
    /// `fc1` / `fc2` with biases (transformers' CLIP, Whisper, BLIP vision).
    pub fn new(dim: usize, hidden: usize, act: Activation) -> Self {
        Self {
            dim,
            hidden,
            act,
            bias: true,
            fc1: "fc1",
            fc2: "fc2",
        }
    }
}

fn linear(i: usize, o: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    if bias {
        candle_nn::linear(i, o, vb)
    } else {
        candle_nn::linear_no_bias(i, o, vb)
    }
}

/// fc2(act(fc1(x))).
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    pub fn load(vb: VarBuilder, c: &MlpConfig) -> Result<Self> {
        Ok(Self {
            fc1: linear(c.dim, c.hidden, c.bias, vb.pp(c.fc1))?,
            fc2: linear(c.hidden, c.dim, c.bias, vb.pp(c.fc2))?,
            act: c.act,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(xs)?)?)
    }
}

/// diffusers' FeedForward(activation_fn="geglu"): `net.0.proj` to twice `inner`, the first half
/// times GELU(second half), then `net.2`.
#[derive(Debug, Clone)]
pub struct Geglu {
    proj: Linear,
    out: Linear,
    kernels: Kernels,
}

impl Geglu {
    pub fn load(vb: VarBuilder, dim: usize, inner: usize, kernels: Kernels) -> Result<Self> {
        Ok(Self {
            proj: candle_nn::linear(dim, inner * 2, vb.pp("net.0.proj"))?,
            out: candle_nn::linear(inner, dim, vb.pp("net.2"))?,
            kernels,
        })
    }
}

impl Module for Geglu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let fast = self.kernels.fast();
        let gated = kernels::linear_geglu(&self.proj, xs, fast)?;
        kernels::linear(&self.out, &gated, fast)
    }
}

/// down(act(gate(x)) * up(x)), no biases; `names` = [gate, up, down].
#[derive(Debug, Clone)]
pub struct GatedMlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    act: Activation,
}

impl GatedMlp {
    /// T5's names.
    pub const T5_NAMES: [&'static str; 3] = ["wi_0", "wi_1", "wo"];

    pub fn load(
        vb: VarBuilder,
        dim: usize,
        hidden: usize,
        act: Activation,
        names: [&str; 3],
    ) -> Result<Self> {
        Ok(Self {
            gate: candle_nn::linear_no_bias(dim, hidden, vb.pp(names[0]))?,
            up: candle_nn::linear_no_bias(dim, hidden, vb.pp(names[1]))?,
            down: candle_nn::linear_no_bias(hidden, dim, vb.pp(names[2]))?,
            act,
        })
    }
}

impl Module for GatedMlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gated = (self.act.apply(&self.gate.forward(xs)?)? * self.up.forward(xs)?)?;
        self.down.forward(&gated)
    }
}

#[cfg(test)]
#[path = "mlp_tests.rs"]
mod tests;
