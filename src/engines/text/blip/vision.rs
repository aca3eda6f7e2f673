//! BLIP's vision encoder (`BlipVisionModel`: a pre-norm ViT with a class token, returning the
//! post-LayerNorm last hidden state), read under transformers' weight names. Ours so the text
//! decoder can come from the same weights without candle's `BlipForConditionalGeneration`
//! loading (and copying) a second decoder; the math is the same as candle's and transformers'.
//! Attention is the shared `nn::attention` block (with BLIP's fused qkv projection), the MLP
//! nn's (its exact GELU on all CPU cores).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, VarBuilder};
use candle_transformers::models::blip::VisionConfig;

use crate::engines::nn::activation::Activation;
use crate::engines::nn::attention::{
    AttentionConfig, MultiHeadAttention, Numerics, Precision, ProjectionNames, ScaleAt,
};
use crate::engines::nn::mlp::{Mlp, MlpConfig};
use crate::engines::nn::norm;

/// transformers' BlipAttention: one fused `qkv` projection, the scale on q (n x head_dim) rather
/// than on the n x n scores (9x fewer elements), scores and softmax in the model's type.
const BLIP_VISION_ATTENTION: Numerics = Numerics {
    scale_at: ScaleAt::Queries,
    precision: Precision::Native,
    contiguous_keys: true,
    split_heads_above: None,
};

struct Layer {
    norm1: LayerNorm,
    attention: MultiHeadAttention,
    norm2: LayerNorm,
    mlp: Mlp,
}

impl Layer {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let width = cfg.hidden_size;
        let attention = AttentionConfig {
            names: ProjectionNames {
                out: "projection",
                ..ProjectionNames::QKV_PROJ
            },
            fused_qkv: Some("qkv"),
            numerics: BLIP_VISION_ATTENTION,
            ..AttentionConfig::new(width, cfg.num_attention_heads)
        };
        Ok(Self {
            norm1: norm::layer_norm(width, cfg.layer_norm_eps, vb.pp("layer_norm1"))?,
            attention: MultiHeadAttention::load(vb.pp("self_attn"), &attention)?,
            norm2: norm::layer_norm(width, cfg.layer_norm_eps, vb.pp("layer_norm2"))?,
            mlp: Mlp::load(
                vb.pp("mlp"),
                &MlpConfig::new(
                    width,
                    cfg.intermediate_size,
                    Activation::from_candle(cfg.hidden_act),
                ),
            )?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = (self.attention.forward(&xs.apply(&self.norm1)?, None)? + xs)?;
        self.mlp.forward(&xs.apply(&self.norm2)?)? + xs
    }
}

pub(super) struct VisionEncoder {
    class_embedding: Tensor,
    patch_embedding: Conv2d,
    position_embedding: Tensor,
    layers: Vec<Layer>,
    post_norm: LayerNorm,
}

impl VisionEncoder {
    /// `vb` points at `vision_model`.
    pub(super) fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let width = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let side = cfg.image_size / cfg.patch_size;
        let conv = Conv2dConfig {
            stride: cfg.patch_size,
            ..Default::default()
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, vb.pp("encoder").pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            class_embedding: emb.get((1, 1, width), "class_embedding")?,
            patch_embedding: candle_nn::conv2d(
                3,
                width,
                cfg.patch_size,
                conv,
                emb.pp("patch_embedding"),
            )?,
            position_embedding: emb.get((1, side * side + 1, width), "position_embedding")?,
            layers,
            post_norm: norm::layer_norm(width, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
        })
    }

    /// (b, 3, H, W) pixels in the weights' dtype -> (b, patches + 1, width).
    pub(super) fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        // (b, width, gh, gw) -> (b, patches, width)
        let patches = self
            .patch_embedding
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let width = patches.dim(2)?;
        let class = self.class_embedding.broadcast_as((b, 1, width))?;
        let mut xs =
            Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        for layer in &self.layers {
            xs = layer.forward(&xs)?;
        }
        xs.apply(&self.post_norm)
    }
}
