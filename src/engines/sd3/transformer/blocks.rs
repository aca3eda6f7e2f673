//! SD 3's joint (MMDiT) block, as diffusers' JointTransformerBlock: the image stream (`x_block`)
//! and the text stream (`context_block`) each modulated by the conditioning vector, one attention
//! over image then text tokens, then each stream's MLP. MMDiT-X blocks (SD 3.5 Medium) add a
//! second attention over the image tokens alone (diffusers' `attn2`, SD35AdaLayerNormZeroX's
//! three extra modulations); the last block only reads the text stream (`context_pre_only`).

use candle_core::{D, Module, Result, Tensor};

use crate::engines::flux::transformer::blocks::{
    AttentionRun, QkNorm, clip_f16, gated_add, layer_norm, ln_modulate, modulate, modulation,
    split_qkv,
};
use crate::engines::flux::transformer::linear::Linear;
use crate::engines::nn::attention::attention_heads;

/// One attention's weights: the fused q/k/v projection, the optional per-head RMSNorms of queries
/// and keys, and the output projection (absent for the last block's text stream).
#[derive(Debug, Clone)]
pub struct Attention {
    pub qkv: Linear,
    pub norm: Option<QkNorm>,
    pub proj: Option<Linear>,
}

impl Attention {
    /// (b, s, dim) -> per-head q, k, v (b, heads, s, d), queries and keys normed.
    fn qkv(&self, x: &Tensor, heads: usize) -> Result<[Tensor; 3]> {
        split_qkv(&self.qkv.forward(x)?, heads, self.norm.as_ref())
    }

    fn project(&self, x: &Tensor) -> Result<Tensor> {
        match &self.proj {
            Some(p) => p.forward(x),
            None => Ok(x.clone()),
        }
    }
}

/// Scaled dot-product attention; (b, heads, s, d) in, (b, s, heads * d) out.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, run: AttentionRun) -> Result<Tensor> {
    let (b, heads, s, d) = q.dims4()?;
    let rows = |t: &Tensor| t.reshape((b * heads, t.dim(2)?, d));
    let q = (rows(q)? * (d as f64).powf(-0.5))?;
    let out = attention_heads(&q, &rows(k)?, &rows(v)?, false, run.mode, run.fast)?;
    out.reshape((b, heads, s, d))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, s, heads * d))
}

/// fc1, tanh-GELU, fc2 (diffusers' FeedForward with "gelu-approximate").
#[derive(Debug, Clone)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(xs)?.gelu()?)
    }
}

/// The image stream's weights.
#[derive(Debug, Clone)]
pub struct XBlock {
    /// shift, scale, gate for attention, then for the MLP (then for `attn2` in MMDiT-X).
    pub modulation: Linear,
    pub attn: Attention,
    pub attn2: Option<Attention>,
    pub mlp: Mlp,
}

/// The text stream's weights; the last block's has only a shift, scale and the q/k/v.
#[derive(Debug, Clone)]
pub struct ContextBlock {
    pub modulation: Linear,
    pub attn: Attention,
    /// None in the last block (`context_pre_only`).
    pub mlp: Option<Mlp>,
}

/// diffusers' JointTransformerBlock.
#[derive(Debug, Clone)]
pub struct JointBlock {
    pub x: XBlock,
    pub context: ContextBlock,
    pub heads: usize,
}

impl JointBlock {
    /// (image, text) -> (image, text); the text stream comes back unchanged from the last block
    /// (nothing reads it after).
    pub fn forward(
        &self,
        x: &Tensor,
        c: &Tensor,
        temb: &Tensor,
        run: AttentionRun,
    ) -> Result<(Tensor, Tensor)> {
        let dual = self.x.attn2.is_some();
        let xm = modulation(&self.x.modulation, temb, if dual { 9 } else { 6 })?;
        let x_normed = layer_norm(x)?;
        let nx = modulate(&x_normed, &xm[0], &xm[1])?;
        let pre_only = self.context.mlp.is_none();
        let cm = modulation(&self.context.modulation, temb, if pre_only { 2 } else { 6 })?;
        let nc = ln_modulate(c, &cm[0], &cm[1], run.fast)?;

        let [xq, xk, xv] = self.x.attn.qkv(&nx, self.heads)?;
        let [cq, ck, cv] = self.context.attn.qkv(&nc, self.heads)?;
        let cat = |a: &Tensor, b: &Tensor| Tensor::cat(&[a, b], 2);
        let joint = attend(&cat(&xq, &cq)?, &cat(&xk, &ck)?, &cat(&xv, &cv)?, run)?;
        let n_img = x.dim(1)?;
        let x_attn = self.x.attn.project(&joint.narrow(1, 0, n_img)?)?;
        let mut x = gated_add(x, &xm[2], &x_attn, run.fast)?;
        if let Some(attn2) = &self.x.attn2 {
            let nx2 = modulate(&x_normed, &xm[6], &xm[7])?;
            let [q, k, v] = attn2.qkv(&nx2, self.heads)?;
            x = gated_add(
                &x,
                &xm[8],
                &attn2.project(&attend(&q, &k, &v, run)?)?,
                run.fast,
            )?;
        }
        let ff = self
            .x
            .mlp
            .forward(&ln_modulate(&x, &xm[3], &xm[4], run.fast)?)?;
        let x = gated_add(&x, &xm[5], &ff, run.fast)?;

        let c = match &self.context.mlp {
            None => c.clone(),
            Some(mlp) => {
                let n_txt = c.dim(1)?;
                let c_attn = self.context.attn.project(&joint.narrow(1, n_img, n_txt)?)?;
                let c = gated_add(c, &cm[2], &c_attn, run.fast)?;
                let ff = mlp.forward(&ln_modulate(&c, &cm[3], &cm[4], run.fast)?)?;
                clip_f16(gated_add(&c, &cm[5], &ff, run.fast)?)?
            }
        };
        Ok((clip_f16(x)?, c))
    }
}

/// The final AdaLayerNormContinuous and projection: shift, scale from `temb`, then the linear.
#[derive(Debug, Clone)]
pub struct FinalLayer {
    /// `final_layer.adaLN_modulation.1`: shift, scale.
    pub modulation: Linear,
    pub linear: Linear,
}

impl FinalLayer {
    pub fn forward(&self, x: &Tensor, temb: &Tensor) -> Result<Tensor> {
        let m = self
            .modulation
            .forward(&temb.silu()?)?
            .chunk(2, D::Minus1)?;
        self.linear
            .forward(&modulate(&layer_norm(x)?, &m[0], &m[1])?)
    }
}
