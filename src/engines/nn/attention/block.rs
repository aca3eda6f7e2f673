//! The multi-head attention block of transformer models: q/k/v projections (separate, or one
//! fused qkv), attention over the heads (`heads::attend`) and the output projection, loaded
//! under each checkpoint's own names. Self-attention, cross-attention with keys/values projected
//! once (`keys_values`), and decoder self-attention through a `KvCache`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::heads::{Numerics, attend};
use super::kv_cache::KvCache;

/// Where the projections live under the block's VarBuilder (dotted paths allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionNames {
    pub q: &'static str,
    pub k: &'static str,
    pub v: &'static str,
    pub out: &'static str,
}

impl ProjectionNames {
    /// transformers' CLIP/BART family: `q_proj`, `k_proj`, `v_proj`, `out_proj`.
    pub const QKV_PROJ: Self = Self {
        q: "q_proj",
        k: "k_proj",
        v: "v_proj",
        out: "out_proj",
    };
}

/// Which projections carry a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionBias {
    pub q: bool,
    pub k: bool,
    pub v: bool,
    pub out: bool,
}

impl ProjectionBias {
    pub const ALL: Self = Self {
        q: true,
        k: true,
        v: true,
        out: true,
    };
    pub const NONE: Self = Self {
        q: false,
        k: false,
        v: false,
        out: false,
    };
}

/// The shape and layout of one attention block; `new` gives the common case (separate biased
/// `q_proj`..`out_proj`, keys from the same width, as many key/value heads as query heads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionConfig {
    /// Width of the queries' input and of the output.
    pub hidden: usize,
    /// Width of the keys' and values' input (the context's, for cross-attention).
    pub kv_input: usize,
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    pub names: ProjectionNames,
    pub bias: ProjectionBias,
    /// One projection to q, k and v concatenated (BLIP's vision `qkv`) instead of three.
    pub fused_qkv: Option<&'static str>,
    pub numerics: Numerics,
}

impl AttentionConfig {
    pub fn new(hidden: usize, heads: usize) -> Self {
        Self {
            hidden,
            kv_input: hidden,
            heads,
            kv_heads: heads,
            names: ProjectionNames::QKV_PROJ,
            bias: ProjectionBias::ALL,
            fused_qkv: None,
            numerics: Numerics::default(),
        }
    }
}

#[derive(Debug)]
enum Projections {
    Separate { q: Linear, k: Linear, v: Linear },
    Fused(Linear),
}

#[derive(Debug)]
pub struct MultiHeadAttention {
    projections: Projections,
    out: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    numerics: Numerics,
}

fn linear(input: usize, output: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    if bias {
        candle_nn::linear(input, output, vb)
    } else {
        candle_nn::linear_no_bias(input, output, vb)
    }
}

impl MultiHeadAttention {
    pub fn load(vb: VarBuilder, c: &AttentionConfig) -> Result<Self> {
        if c.heads == 0
            || c.kv_heads == 0
            || !c.hidden.is_multiple_of(c.heads)
            || !c.heads.is_multiple_of(c.kv_heads)
        {
            candle_core::bail!(
                "attention: hidden {} over {} heads ({} key/value heads) does not divide",
                c.hidden,
                c.heads,
                c.kv_heads
            );
        }
        let head_dim = c.hidden / c.heads;
        let kv_width = c.kv_heads * head_dim;
        let (n, b) = (&c.names, &c.bias);
        let projections = match c.fused_qkv {
            Some(name) => Projections::Fused(linear(c.hidden, 3 * c.hidden, b.q, vb.pp(name))?),
            None => Projections::Separate {
                q: linear(c.hidden, c.hidden, b.q, vb.pp(n.q))?,
                k: linear(c.kv_input, kv_width, b.k, vb.pp(n.k))?,
                v: linear(c.kv_input, kv_width, b.v, vb.pp(n.v))?,
            },
        };
        Ok(Self {
            projections,
            out: linear(c.hidden, c.hidden, b.out, vb.pp(n.out))?,
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim,
            numerics: c.numerics,
        })
    }

    /// (b, t, heads*d) -> (b, heads, t, d), contiguous.
    fn split(&self, xs: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        xs.reshape((b, t, heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Keys and values of `context`, (b, kv_heads, s, d) each: a cross-attention's, computed
    /// once per context, or a self-attention step's new ones.
    pub fn keys_values(&self, context: &Tensor) -> Result<(Tensor, Tensor)> {
        let Projections::Separate { k, v, .. } = &self.projections else {
            candle_core::bail!("a fused qkv projection has no separate keys and values");
        };
        Ok((
            self.split(&k.forward(context)?, self.kv_heads)?,
            self.split(&v.forward(context)?, self.kv_heads)?,
        ))
    }

    /// `xs` (b, t, hidden) attending to keys/values (b, kv_heads, s, d) -> (b, t, hidden),
    /// output projection applied.
    pub fn attend(
        &self,
        xs: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let Projections::Separate { q, .. } = &self.projections else {
            candle_core::bail!("a block with a fused qkv projection only attends to itself");
        };
        let q = self.split(&q.forward(xs)?, self.heads)?;
        self.finish(xs, &attend(&q, k, v, mask, &self.numerics)?)
    }

    /// Self-attention over `xs` (b, t, hidden), `mask` added to the scores.
    pub fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        if let Projections::Fused(_) = &self.projections {
            let (q, k, v) = self.fused_qkv(xs)?;
            return self.finish(xs, &attend(&q, &k, &v, mask, &self.numerics)?);
        }
        let (k, v) = self.keys_values(xs)?;
        self.attend(xs, &k, &v, mask)
    }

    /// Decoder self-attention: `xs`'s new positions attend to `cache` and themselves, and are
    /// appended to it.
    pub fn forward_cached(
        &self,
        xs: &Tensor,
        cache: &mut KvCache,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (k, v) = self.keys_values(xs)?;
        let (k, v) = cache.append(k, v)?;
        self.attend(xs, &k, &v, mask)
    }

    /// The fused projection split into q, k (views) and v (contiguous), (b, heads, t, d) each.
    fn fused_qkv(&self, xs: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let Projections::Fused(qkv) = &self.projections else {
            candle_core::bail!("no fused qkv projection");
        };
        let (b, t, _) = xs.dims3()?;
        let qkv = qkv
            .forward(xs)?
            .reshape((b, t, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        Ok((qkv.get(0)?, qkv.get(1)?, qkv.get(2)?.contiguous()?))
    }

    /// (b, heads, t, d) -> (b, t, hidden) through the output projection.
    fn finish(&self, xs: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let ctx = ctx
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.out.forward(&ctx)
    }
}
