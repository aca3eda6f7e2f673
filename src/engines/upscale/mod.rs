//! Image upscaling with Real-ESRGAN's networks (RRDBNet x4plus / x2plus, SRVGGNetCompact
//! general-x4v3 / animevideov3) from safetensors converted from the released .pth files. The
//! image is processed as `RealESRGANer.enhance` does: sides padded (reflect) to what the network
//! divides, tiles with context cropped off, clamped to 0..1; an alpha channel goes through the
//! network as grey RGB and comes back as its luma. Output is 8-bit whatever the input's depth.

pub mod compact;
pub mod detect;
pub mod footprint;
mod image_io;
mod layers;
pub mod rrdb;
mod tiles;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::engines::nn::kernels::Kernels;
use crate::engines::{CancelToken, EngineSwitches, ProgressSink};
pub use detect::Arch;

/// Working memory the planner adds per run beyond the tile's (`footprint` sizes the tiles).
pub const WORKING_SET: crate::engines::media::WorkingSet =
    crate::engines::media::WorkingSet::mib(64, 0);

enum Net {
    Rrdb(Box<rrdb::RrdbNet>),
    Compact(compact::CompactNet),
}

/// A loaded upscaling network.
pub struct Upscaler {
    arch: Arch,
    net: Net,
    device: Device,
    dtype: DType,
}

impl Upscaler {
    /// Loads `path` (a .safetensors file) onto `device` in `dtype`.
    pub fn load(
        path: &Path,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
    ) -> crate::Result<Self> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            crate::Error::bad_input(format!(
                "{}: not a readable safetensors file ({e})",
                path.display()
            ))
        })?;
        Self::from_tensors(tensors, device, dtype, switches.kernels()).map_err(|e| match e {
            crate::Error::BadInput { message } => {
                crate::Error::bad_input(format!("{}: {message}", path.display()))
            }
            other => other,
        })
    }

    /// The network held by `tensors` (any accepted naming).
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
        kernels: Kernels,
    ) -> crate::Result<Self> {
        let (arch, tensors) = detect::detect(tensors).map_err(|e| crate::Error::bad_input(e.0))?;
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(dtype)?.to_device(device)?)))
            .collect::<candle_core::Result<HashMap<_, _>>>()?;
        let net = match &arch {
            Arch::Rrdb(s) => Net::Rrdb(Box::new(rrdb::RrdbNet::new(s.clone(), &tensors, kernels)?)),
            Arch::Compact(s) => {
                Net::Compact(compact::CompactNet::new(s.clone(), &tensors, kernels)?)
            }
        };
        tracing::info!(arch = %arch.describe(), "upscaler loaded");
        Ok(Self {
            arch,
            net,
            device: device.clone(),
            dtype,
        })
    }

    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    pub fn scale(&self) -> u32 {
        self.arch.scale() as u32
    }

    /// The network on one (1, 3, h, w) tile in 0..1, sides a multiple of `side_multiple`.
    fn run(&self, x: &Tensor, cancel: &CancelToken) -> candle_core::Result<Tensor> {
        let x = x.to_device(&self.device)?.to_dtype(self.dtype)?;
        let y = match &self.net {
            Net::Rrdb(n) => n.forward(&x, cancel)?,
            Net::Compact(n) => n.forward(&x, cancel)?,
        };
        y.to_dtype(DType::F32)?.to_device(&Device::Cpu)
    }

    /// `image` upscaled by the network's scale, in tiles of at most `tile` input pixels a side
    /// (None: the whole image at once). RGB stays RGB, an alpha channel is kept; 8-bit out.
    pub fn upscale(
        &self,
        image: &image::DynamicImage,
        tile: Option<u32>,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> crate::Result<image::DynamicImage> {
        image_io::upscale_image(self, image, tile, sink, cancel)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
