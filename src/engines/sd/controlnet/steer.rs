//! Several ControlNets steering one generation, as diffusers' (Multi)ControlNet pipelines: each
//! runs on the CFG batch (the scaled latents, the text states, SDXL's added conditioning) with its
//! control image repeated to the batch and doubled for CFG, its residuals scaled by
//! `scale x keep[i]` (keep: 1 while step i of n lies within [start, end]), and the residuals
//! summed in order.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::ControlNet;
use crate::engines::sd::config::UNetConfig;
use crate::engines::sd::unet::{ControlResiduals, UNetStep};
use crate::error::{Error, Result};

/// One ControlNet of a request: its folder and control image (RGB, already at the job's size and
/// preprocessed).
#[derive(Debug, Clone)]
pub struct ControlInput {
    pub dir: PathBuf,
    pub image: image::RgbImage,
    pub scale: f64,
    pub start: f64,
    pub end: f64,
}

/// A loaded ControlNet with its batched control image.
pub struct Steering {
    net: Arc<ControlNet>,
    image: Tensor,
    scale: f64,
    start: f64,
    end: f64,
}

/// diffusers' `controlnet_keep`: 1 unless step `i` of `total` starts before `start` or ends after
/// `end` (as fractions of the steps run).
pub fn keep(i: usize, total: usize, start: f64, end: f64) -> f64 {
    let total = total.max(1) as f64;
    let (a, b) = (i as f64 / total, (i + 1) as f64 / total);
    if a < start || b > end { 0.0 } else { 1.0 }
}

/// The control image as diffusers' control image processor gives it: RGB / 255, (1, 3, H, W).
pub fn image_tensor(image: &image::RgbImage, device: &Device, dtype: DType) -> Result<Tensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let data: Vec<f32> = image
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect();
    Ok(Tensor::from_vec(data, (h, w, 3), &Device::Cpu)?
        .permute((2, 0, 1))?
        .unsqueeze(0)?
        .to_device(device)?
        .to_dtype(dtype)?)
}

/// Whether a ControlNet's encoding half fits the UNet it steers.
fn check_fits(net: &UNetConfig, unet: &UNetConfig, dir: &std::path::Path) -> Result<()> {
    let same = net.cross_attention_dim == unet.cross_attention_dim
        && net.block_out_channels == unet.block_out_channels
        && net.layers_per_block == unet.layers_per_block
        && net.addition_embed_type == unet.addition_embed_type;
    if same {
        return Ok(());
    }
    Err(Error::bad_input(format!(
        "--controlnet {}: made for another UNet (text width {:?}, blocks {:?} x {:?}; this \
         model's UNet: {:?}, {:?} x {:?})",
        dir.display(),
        net.cross_attention_dim,
        net.block_out_channels,
        net.layers_per_block,
        unet.cross_attention_dim,
        unet.block_out_channels,
        unet.layers_per_block
    )))
}

/// Pairs each input with its loaded ControlNet (`nets`, in the same order), checks it fits the
/// UNet, and batches its image for `n` images (doubled when `guided`).
pub fn steering(
    inputs: &[ControlInput],
    nets: Vec<Arc<ControlNet>>,
    unet: &UNetConfig,
    (device, dtype): (&Device, DType),
    n: usize,
    guided: bool,
) -> Result<Vec<Steering>> {
    inputs
        .iter()
        .zip(nets)
        .map(|(c, net)| {
            check_fits(net.unet_config(), unet, &c.dir)?;
            let one = image_tensor(&c.image, device, dtype)?;
            let batch = if guided { 2 * n } else { n };
            Ok(Steering {
                net,
                image: one.repeat((batch, 1, 1, 1))?,
                scale: c.scale,
                start: c.start,
                end: c.end,
            })
        })
        .collect()
}

/// The summed residuals of every ControlNet acting at step `i` of `total` (None: none acts).
pub fn residuals(
    nets: &[Steering],
    sample: &Tensor,
    step: &UNetStep<'_>,
    i: usize,
    total: usize,
) -> Result<Option<ControlResiduals>> {
    let mut sum: Option<ControlResiduals> = None;
    for s in nets {
        let scale = s.scale * keep(i, total, s.start, s.end);
        if scale == 0.0 {
            continue;
        }
        let r = s.net.forward(sample, &s.image, step, scale)?;
        sum = Some(match sum {
            None => r,
            Some(acc) => ControlResiduals {
                down: acc
                    .down
                    .iter()
                    .zip(&r.down)
                    .map(|(a, b)| a + b)
                    .collect::<candle_core::Result<Vec<_>>>()?,
                mid: (acc.mid + r.mid)?,
            },
        });
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_follows_diffusers_window() {
        // diffusers: 1 - float(i / n < start or (i + 1) / n > end)
        let k: Vec<f64> = (0..4).map(|i| keep(i, 4, 0.25, 0.75)).collect();
        assert_eq!(k, [0.0, 1.0, 1.0, 0.0]);
        let all: Vec<f64> = (0..5).map(|i| keep(i, 5, 0.0, 1.0)).collect();
        assert_eq!(all, [1.0; 5]);
    }
}
