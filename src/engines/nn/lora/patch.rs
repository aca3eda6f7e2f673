//! LoRA deltas merged into weights as they are fetched: a VarBuilder backend that wraps the
//! safetensors one and adds `scale * up @ down` (reshaped to the weight, so conv LoRAs work too)
//! to each weight a LoRA changes. The layers never know; the merged weight is computed in f32 on
//! the device and cast to the model's dtype, as diffusers' `fuse_lora`.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

/// One LoRA's change to one weight.
#[derive(Debug, Clone)]
pub struct Delta {
    /// (out, rank, 1, ...) or (out, rank).
    pub up: Tensor,
    /// (rank, in, ...).
    pub down: Tensor,
    /// weight x alpha / rank.
    pub scale: f64,
}

/// Every delta of a component, by weight tensor name.
#[derive(Debug, Clone, Default)]
pub struct WeightPatch {
    deltas: HashMap<String, Vec<Delta>>,
}

impl WeightPatch {
    pub fn add(&mut self, weight: String, delta: Delta) {
        self.deltas.entry(weight).or_default().push(delta);
    }

    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    pub fn len(&self) -> usize {
        self.deltas.values().map(Vec::len).sum()
    }

    /// `base` (the weight `name`) with its deltas added; itself when it has none.
    pub fn apply(&self, name: &str, base: Tensor) -> candle_core::Result<Tensor> {
        let Some(deltas) = self.deltas.get(name) else {
            return Ok(base);
        };
        let (dtype, device) = (base.dtype(), base.device().clone());
        let mut merged = base.to_dtype(DType::F32)?;
        for d in deltas {
            let up = d.up.to_device(&device)?.flatten_from(1)?;
            let down = d.down.to_device(&device)?.flatten_from(1)?;
            let delta = (up.matmul(&down)? * d.scale)?.reshape(merged.shape())?;
            merged = (merged + delta)?;
        }
        merged.to_dtype(dtype)
    }
}

/// A backend whose weights come from `inner` with `patch` merged in.
pub struct PatchedBackend {
    pub inner: Box<dyn SimpleBackend>,
    pub patch: Arc<WeightPatch>,
}

impl SimpleBackend for PatchedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let base = self.inner.get(s, name, h, dtype, dev)?;
        self.patch.apply(name, base)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let base = self.inner.get_unchecked(name, dtype, dev)?;
        self.patch.apply(name, base)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_and_conv_deltas_add_scaled_up_times_down() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let mut patch = WeightPatch::default();
        let up = Tensor::new(&[[1f32], [2.]], &dev)?;
        let down = Tensor::new(&[[3f32, 4.]], &dev)?;
        patch.add(
            "w".into(),
            Delta {
                up: up.clone(),
                down: down.clone(),
                scale: 0.5,
            },
        );
        let merged = patch.apply("w", Tensor::ones((2, 2), DType::F32, &dev)?)?;
        assert_eq!(merged.to_vec2::<f32>()?, [[2.5, 3.], [4., 5.]]);
        // A 1x1 conv: (out, rank, 1, 1) x (rank, in, 1, 1).
        patch.add(
            "conv".into(),
            Delta {
                up: up.reshape((2, 1, 1, 1))?,
                down: down.reshape((1, 2, 1, 1))?,
                scale: 1.0,
            },
        );
        let conv = patch.apply("conv", Tensor::zeros((2, 2, 1, 1), DType::F32, &dev)?)?;
        assert_eq!(conv.flatten_all()?.to_vec1::<f32>()?, [3., 4., 6., 8.]);
        let untouched = patch.apply("other", Tensor::zeros(2, DType::F32, &dev)?)?;
        assert_eq!(untouched.to_vec1::<f32>()?, [0., 0.]);
        Ok(())
    }
}
