//! A T5 v1.1 encoder as the pipelines that condition on it hold it (FLUX, SD 3.5, LTX-Video):
//! dense from the model folder's safetensors, or from a llama.cpp GGUF kept quantized
//! (dequantized per layer as it runs).

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::t5::{self, T5Encoder};
use super::t5_quantized::QuantizedT5Encoder;
use crate::engines::EngineSwitches;
use crate::engines::nn::weights::Weights;
use crate::error::Result;

#[derive(Debug)]
pub enum T5Text {
    Dense(T5Encoder),
    Quantized(QuantizedT5Encoder),
}

/// Where a T5 encoder's weights come from and how they load.
#[derive(Debug, Clone, Copy)]
pub struct T5Source<'a> {
    /// The folder with config.json (and the dense weights).
    pub dir: &'a Path,
    /// A GGUF file replacing the folder's weights.
    pub gguf: Option<&'a Path>,
    pub device: &'a Device,
    /// The run's dtype (f16 widens to f32: T5 overflows in f16).
    pub dtype: DType,
    /// Prefer the folder's `.fp16` weight files.
    pub fp16_variant: bool,
    pub switches: EngineSwitches,
}

impl T5Text {
    pub fn load(source: T5Source<'_>) -> Result<Self> {
        let config = t5::load_config(&source.dir.join("config.json"))?;
        let dtype = T5Encoder::dtype_for(source.dtype);
        if let Some(gguf) = source.gguf {
            return Ok(Self::Quantized(QuantizedT5Encoder::load(
                gguf,
                &config,
                source.device,
                dtype,
            )?));
        }
        let weights = Weights::open(
            source.dir,
            source.device,
            dtype,
            source.fp16_variant,
            source.switches,
        )?;
        Ok(Self::Dense(
            weights.build("T5 text encoder", |vb: VarBuilder| {
                T5Encoder::new(vb, &config)
            })?,
        ))
    }

    /// The last hidden state of `ids`: (1, len, d_model).
    pub fn encode(&self, ids: &[u32]) -> Result<candle_core::Tensor> {
        match self {
            Self::Dense(t) => t.encode(ids),
            Self::Quantized(t) => t.encode(ids),
        }
    }
}
