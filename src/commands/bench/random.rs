//! Random weights for benchmarks: every tensor a network asks its `VarBuilder` for is created
//! from the layer's own init hint (Kaiming normal for weights, uniform biases, GroupNorm ones and
//! zeros), so magnitudes look like a real model's and no value is trivially zero. Optionally
//! records each tensor so `bench image` can write them out as safetensors.

use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

/// Creates tensors on request; `recorded` keeps (name, tensor) when recording.
pub struct RandomBackend {
    recorded: Option<Mutex<Vec<(String, Tensor)>>>,
    /// Names reported as absent, for optional tensors a network probes with `contains_tensor`
    /// (e.g. CLIPTextModel has no `text_projection`).
    absent: Vec<String>,
}

impl RandomBackend {
    pub fn new(record: bool, absent: &[&str]) -> Self {
        Self {
            recorded: record.then(|| Mutex::new(Vec::new())),
            absent: absent.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl SimpleBackend for RandomBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        // Generated in f32 (candle's randn on the CPU is f32-native), then cast.
        let t = h
            .var(s, DType::F32, dev)?
            .as_detached_tensor()
            .to_dtype(dtype)?;
        if let Some(rec) = &self.recorded {
            match rec.lock() {
                Ok(mut v) => v.push((name.to_string(), t.clone())),
                Err(_) => candle_core::bail!("random weight recorder poisoned"),
            }
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("random weights need a shape for {name}")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        !self.absent.iter().any(|a| a == name)
    }
}

/// A `VarBuilder` over fresh random weights (nothing recorded).
pub fn random_vb(dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(RandomBackend::new(false, &[])),
        dtype,
        device.clone(),
    )
}

/// Builds a network with random f32 weights on the CPU and returns its tensors by name, for
/// writing a safetensors file.
pub fn build_recorded<T>(
    absent: &[&str],
    build: impl FnOnce(VarBuilder<'static>) -> Result<T>,
) -> Result<Vec<(String, Tensor)>> {
    let backend = std::sync::Arc::new(RandomBackend::new(true, absent));
    let vb = VarBuilder::from_backend(
        Box::new(SharedBackend(backend.clone())),
        DType::F32,
        Device::Cpu,
    );
    drop(build(vb)?);
    let recorded = match &backend.recorded {
        Some(m) => match m.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => candle_core::bail!("random weight recorder poisoned"),
        },
        None => Vec::new(),
    };
    Ok(recorded)
}

/// Lets the caller keep a handle on the backend the `VarBuilder` owns.
struct SharedBackend(std::sync::Arc<RandomBackend>);

impl SimpleBackend for SharedBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.get(s, name, h, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.get_unchecked(name, dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_layer_hints() {
        let vb = random_vb(DType::F32, &Device::Cpu);
        let lin = candle_nn::linear(64, 32, vb.pp("l")).unwrap();
        let w = lin.weight().flatten_all().unwrap();
        let std = w
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt();
        // Kaiming normal over fan-in 64: std = sqrt(2/64) ~ 0.18.
        assert!((0.1..0.3).contains(&std), "std {std}");
        let gn = candle_nn::group_norm(4, 8, 1e-5, vb.pp("gn")).unwrap();
        let x = Tensor::ones((1, 8, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(candle_core::Module::forward(&gn, &x).is_ok());
    }

    #[test]
    fn recording_returns_every_tensor_by_name() {
        let rec = build_recorded(&["skip.weight"], |vb| {
            assert!(!vb.contains_tensor("skip.weight"));
            candle_nn::linear(4, 3, vb.pp("proj"))
        })
        .unwrap();
        let mut names: Vec<_> = rec
            .iter()
            .map(|(n, t)| (n.clone(), t.dims().to_vec()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                ("proj.bias".into(), vec![3]),
                ("proj.weight".into(), vec![3, 4])
            ]
        );
    }
}
