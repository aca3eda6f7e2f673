//! Random-weight SD 1.5 at full size, for calibrating the planner against measured memory: the real
//! configs (as JSON literals) and every tensor the engine's constructors ask for, filled with
//! N(0, 0.02) so all pages are real. ~4.3 GB on disk; building it holds one component at a time.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::engines::sd::clip::TextEncoder;
use crate::engines::sd::config::{TextEncoderConfig, UNetConfig, VaeConfig};
use crate::engines::sd::unet::UNet;
use crate::engines::sd::vae::Vae;
use crate::{Error, Result};

pub const SD15_UNET: &str = r#"{"_class_name":"UNet2DConditionModel","act_fn":"silu","attention_head_dim":8,
"block_out_channels":[320,640,1280,1280],"center_input_sample":false,"cross_attention_dim":768,
"down_block_types":["CrossAttnDownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D","DownBlock2D"],
"downsample_padding":1,"flip_sin_to_cos":true,"freq_shift":0,"in_channels":4,"layers_per_block":2,
"mid_block_scale_factor":1,"norm_eps":1e-05,"norm_num_groups":32,"out_channels":4,"sample_size":64,
"up_block_types":["UpBlock2D","CrossAttnUpBlock2D","CrossAttnUpBlock2D","CrossAttnUpBlock2D"]}"#;

pub const SD15_VAE: &str = r#"{"_class_name":"AutoencoderKL","act_fn":"silu","block_out_channels":[128,256,512,512],
"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
"in_channels":3,"latent_channels":4,"layers_per_block":2,"norm_num_groups":32,"out_channels":3,"sample_size":512,
"scaling_factor":0.18215,"force_upcast":true,
"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"]}"#;

pub const SD15_TEXT_ENCODER: &str = r#"{"architectures":["CLIPTextModel"],"attention_dropout":0.0,"bos_token_id":0,
"eos_token_id":2,"hidden_act":"quick_gelu","hidden_size":768,"initializer_factor":1.0,"intermediate_size":3072,
"layer_norm_eps":1e-05,"max_position_embeddings":77,"model_type":"clip_text_model","num_attention_heads":12,
"num_hidden_layers":12,"pad_token_id":1,"projection_dim":768,"torch_dtype":"float32","vocab_size":49408}"#;

pub const SD15_SCHEDULER: &str = r#"{"_class_name":"PNDMScheduler","beta_end":0.012,"beta_schedule":"scaled_linear",
"beta_start":0.00085,"clip_sample":false,"num_train_timesteps":1000,"prediction_type":"epsilon",
"set_alpha_to_one":false,"skip_prk_steps":true,"steps_offset":1,"timestep_spacing":"leading"}"#;

pub const SD15_MODEL_INDEX: &str = r#"{"_class_name":"StableDiffusionPipeline","scheduler":["diffusers","PNDMScheduler"],
"text_encoder":["transformers","CLIPTextModel"],"tokenizer":["transformers","CLIPTokenizer"],
"unet":["diffusers","UNet2DConditionModel"],"vae":["diffusers","AutoencoderKL"],
"safety_checker":[null,null],"feature_extractor":[null,null],"requires_safety_checker":false}"#;

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Builds a component through its constructor over a VarMap, randomises every variable, saves it.
fn random_component(
    path: &Path,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<()>,
) -> Result<()> {
    let map = VarMap::new();
    build(VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu))?;
    {
        let vars = map
            .data()
            .lock()
            .map_err(|_| Error::job_failed("variable map poisoned"))?;
        for var in vars.values() {
            var.set(&Tensor::randn(0f32, 0.02, var.shape(), &Device::Cpu)?)?;
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    map.save(path)?;
    Ok(())
}

/// Writes a random-weight SD 1.5 pipeline (f32) into `dir`, with the tokenizer copied from
/// `tokenizer_dir` (vocab.json, merges.txt: the CLIP vocabulary, e.g. tests/fixtures/clip-tokenizer).
pub fn write_random_sd15(dir: &Path, tokenizer_dir: &Path) -> Result<()> {
    let bad = |e: String| Error::bad_input(format!("built-in SD 1.5 config: {e}"));
    write(&dir.join("model_index.json"), SD15_MODEL_INDEX)?;
    write(&dir.join("unet/config.json"), SD15_UNET)?;
    write(&dir.join("vae/config.json"), SD15_VAE)?;
    write(&dir.join("text_encoder/config.json"), SD15_TEXT_ENCODER)?;
    write(&dir.join("scheduler/scheduler_config.json"), SD15_SCHEDULER)?;
    for f in [
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
    ] {
        let (from, to) = (tokenizer_dir.join(f), dir.join("tokenizer").join(f));
        if from.is_file() {
            write(&to, "")?;
            std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
    }
    let te = TextEncoderConfig::from_json(SD15_TEXT_ENCODER).map_err(bad)?;
    random_component(&dir.join("text_encoder/model.safetensors"), |vb| {
        TextEncoder::new(vb, te).map(drop)
    })?;
    let vae = VaeConfig::from_json(SD15_VAE).map_err(bad)?;
    random_component(&dir.join("vae/diffusion_pytorch_model.safetensors"), |vb| {
        Vae::new(vb, vae, Default::default()).map(drop)
    })?;
    let unet = UNetConfig::from_json(SD15_UNET).map_err(bad)?;
    random_component(
        &dir.join("unet/diffusion_pytorch_model.safetensors"),
        |vb| UNet::new(vb, unet, Default::default()).map(drop),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_literal_configs_parse_as_sd15() {
        let unet = UNetConfig::from_json(SD15_UNET).unwrap();
        assert_eq!(unet.block_out_channels, vec![320, 640, 1280, 1280]);
        assert_eq!(unet.num_attention_heads, vec![8; 4]);
        let vae = VaeConfig::from_json(SD15_VAE).unwrap();
        assert_eq!(vae.downscale_factor(), 8);
        let te = TextEncoderConfig::from_json(SD15_TEXT_ENCODER).unwrap();
        assert_eq!(
            (te.hidden_size, te.num_hidden_layers, te.vocab_size),
            (768, 12, 49408)
        );
    }
}
