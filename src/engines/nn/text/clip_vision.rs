//! The CLIP image tower (transformers' CLIPVisionModel): patches embedded by a strided
//! convolution, the class token and learned positions added, `pre_layrnorm`, then the text
//! tower's layers (`clip::EncoderLayer`) without a mask. Wan 2.1 image-to-video conditions on
//! `hidden_states[-2]` (the input of the last layer), so that is what `penultimate` returns.
//! Its image preprocessing (CLIPImageProcessor) is `clip_image`.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

use super::clip::{EncoderLayer, LayerShape};
use crate::engines::config_check::{self as check, bad_config, read_config, unsupported};
use crate::engines::nn::norm;
use crate::engines::nn::weights::Weights;
use crate::error::{Error, Result};

fn hidden() -> usize {
    768
}
fn inter() -> usize {
    3072
}
fn twelve() -> usize {
    12
}
fn three() -> usize {
    3
}
fn image_size() -> usize {
    224
}
fn patch() -> usize {
    32
}
fn quick_gelu() -> String {
    "quick_gelu".to_owned()
}
fn eps() -> f64 {
    1e-5
}

/// `image_encoder/config.json` (transformers' CLIPVisionConfig; its defaults where a key is
/// absent).
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "hidden")]
    pub hidden_size: usize,
    #[serde(default = "inter")]
    pub intermediate_size: usize,
    #[serde(default = "twelve")]
    pub num_hidden_layers: usize,
    #[serde(default = "twelve")]
    pub num_attention_heads: usize,
    #[serde(default = "three")]
    pub num_channels: usize,
    #[serde(default = "image_size")]
    pub image_size: usize,
    #[serde(default = "patch")]
    pub patch_size: usize,
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
}

impl VisionConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        let c: Self = serde_json::from_str(&text)
            .map_err(|e| bad_config(path, &format!("not a CLIPVisionConfig: {e}")))?;
        c.check().map_err(|why| bad_config(path, &why))?;
        Ok(c)
    }

    fn check(&self) -> check::Check {
        check::positive(&[
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("patch_size", self.patch_size),
            ("image_size", self.image_size),
        ])?;
        check::multiple_of(
            "hidden_size",
            self.hidden_size,
            "num_attention_heads",
            self.num_attention_heads,
        )?;
        check::multiple_of("image_size", self.image_size, "patch_size", self.patch_size)?;
        if self.num_channels != 3 {
            return Err(unsupported("num_channels", self.num_channels));
        }
        if crate::engines::nn::activation::Activation::parse(&self.hidden_act).is_none() {
            return Err(unsupported("hidden_act", &self.hidden_act));
        }
        Ok(())
    }

    /// Patch tokens plus the class token.
    pub fn tokens(&self) -> usize {
        let side = self.image_size / self.patch_size;
        side * side + 1
    }
}

/// A CLIP image tower loaded from an `image_encoder/` folder.
#[derive(Debug)]
pub struct VisionTower {
    config: VisionConfig,
    class_embedding: Tensor,
    patch_embedding: Conv2d,
    position_embedding: Embedding,
    pre_layrnorm: LayerNorm,
    layers: Vec<EncoderLayer>,
    device: Device,
    dtype: DType,
}

impl VisionTower {
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        switches: crate::engines::EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_image_encoder", dir = %dir.display()).entered();
        let config = VisionConfig::load(&dir.join("config.json"))?;
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        weights.build("image encoder", |vb| Self::new(vb, config.clone(), dtype))
    }

    /// From a VarBuilder at the weight file's root (`vision_model.` prefixed or not).
    pub fn new(vb: VarBuilder, config: VisionConfig, dtype: DType) -> candle_core::Result<Self> {
        let c = &config;
        let vm = if vb.contains_tensor("vision_model.embeddings.class_embedding") {
            vb.pp("vision_model")
        } else {
            vb.clone()
        };
        let h = c.hidden_size;
        let emb = vm.pp("embeddings");
        let conv = Conv2dConfig {
            stride: c.patch_size,
            ..Default::default()
        };
        let shape = LayerShape {
            hidden: h,
            heads: c.num_attention_heads,
            intermediate: c.intermediate_size,
            eps: c.layer_norm_eps,
            act: &c.hidden_act,
        };
        // hidden_states[-2] needs every layer but the last.
        let layers = (0..c.num_hidden_layers.saturating_sub(1))
            .map(|i| EncoderLayer::load(vm.pp(format!("encoder.layers.{i}")), &shape))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            class_embedding: emb.get(h, "class_embedding")?,
            patch_embedding: candle_nn::conv2d_no_bias(
                c.num_channels,
                h,
                c.patch_size,
                conv,
                emb.pp("patch_embedding"),
            )?,
            position_embedding: candle_nn::embedding(c.tokens(), h, emb.pp("position_embedding"))?,
            pre_layrnorm: norm::layer_norm(h, c.layer_norm_eps, vm.pp("pre_layrnorm"))?,
            layers,
            device: vb.device().clone(),
            dtype,
            config,
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// (b, 3, image_size, image_size) preprocessed pixels → `hidden_states[-2]` (b, tokens,
    /// hidden) in f32.
    pub fn penultimate(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = pixels.dims4()?;
        let side = self.config.image_size;
        if (c, h, w) != (3, side, side) {
            return Err(Error::bad_input(format!(
                "the CLIP image encoder takes (b, 3, {side}, {side}) pixels, got {:?}",
                pixels.dims()
            )));
        }
        let pixels = pixels.to_device(&self.device)?.to_dtype(self.dtype)?;
        let patches = self
            .patch_embedding
            .forward(&pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let hsz = self.config.hidden_size;
        let class = self
            .class_embedding
            .reshape((1, 1, hsz))?
            .broadcast_as((b, 1, hsz))?;
        let positions = Tensor::arange(0u32, self.config.tokens() as u32, &self.device)?;
        let xs = Tensor::cat(&[&class, &patches], 1)?
            .broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let mut xs = self.pre_layrnorm.forward(&xs)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, None)?;
        }
        Ok(xs.to_dtype(DType::F32)?)
    }
}
