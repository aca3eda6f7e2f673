//! A `VarBuilder` over a GGUF: model code builds from it as from safetensors, and each tensor is
//! dequantized when the model asks for it, one at a time (the mapped file is never decoded whole).
//! An optional name map turns the names model code asks for into the file's names (FLUX GGUFs
//! keep BFL's original names where our code may use diffusers').

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;

use super::GgufFile;
use crate::error::Result;

/// The name a model asks for -> the name stored in the file.
pub type NameMap = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A GGUF's weights: the open file and a `VarBuilder` over it.
pub struct GgufWeights {
    file: Arc<GgufFile>,
    names: Option<NameMap>,
    vb: VarBuilder<'static>,
}

impl GgufWeights {
    /// Opens `path`, refusing another architecture than `architecture` (when given) and files
    /// holding a tensor type pallaidium cannot read.
    pub fn open(
        path: &Path,
        architecture: Option<&str>,
        dtype: DType,
        device: &Device,
        names: Option<NameMap>,
    ) -> Result<Self> {
        let file = GgufFile::open(path)?;
        if let Some(arch) = architecture {
            file.expect_architecture(arch)?;
        }
        file.check_supported()?;
        Ok(Self::from_file(Arc::new(file), dtype, device, names))
    }

    /// A `VarBuilder` over an already open file (which may hold unsupported tensors the model
    /// never asks for).
    pub fn from_file(
        file: Arc<GgufFile>,
        dtype: DType,
        device: &Device,
        names: Option<NameMap>,
    ) -> Self {
        let backend = Backend {
            file: file.clone(),
            names: names.clone(),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        Self { file, names, vb }
    }

    pub fn vb(&self) -> &VarBuilder<'static> {
        &self.vb
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// The tensor a model calls `name` (through the name map), kept quantized on the
    /// `VarBuilder`'s device, for code that multiplies by it with candle's quantized matmul.
    pub fn qtensor(&self, name: &str) -> Result<QTensor> {
        self.file
            .qtensor(&stored_name(self.names.as_ref(), name), self.vb.device())
    }

    /// [`Self::qtensor`] as a `QMatMul` (F32/F16/BF16 tensors become plain ones).
    pub fn qmatmul(&self, name: &str) -> Result<QMatMul> {
        Ok(QMatMul::from_qtensor(self.qtensor(name)?)?)
    }

    /// Builds a model from these weights; a missing tensor or a wrong shape becomes `BadInput`
    /// naming the file (the safetensors loader's rule).
    pub fn build<T>(
        &self,
        what: &str,
        f: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
    ) -> Result<T> {
        let from = self.file.path().display().to_string();
        let mismatch = "the file's tensors do not match the model";
        f(self.vb.clone()).map_err(|e| super::super::build_error(what, &from, mismatch, &e))
    }
}

struct Backend {
    file: Arc<GgufFile>,
    names: Option<NameMap>,
}

impl Backend {
    fn stored_name(&self, name: &str) -> String {
        stored_name(self.names.as_ref(), name)
    }
}

fn stored_name(names: Option<&NameMap>, name: &str) -> String {
    match names {
        Some(map) => map(name),
        None => name.to_string(),
    }
}

/// Our error (which names the file) as candle's, for the `VarBuilder`.
fn to_candle(e: crate::error::Error) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl candle_nn::var_builder::SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let stored = self.stored_name(name);
        let info = self.file.tensor(&stored).map_err(to_candle)?;
        if info.shape != s.dims() {
            let asked = if stored == name {
                String::new()
            } else {
                format!(" (asked for as `{name}`)")
            };
            return Err(candle_core::Error::Msg(format!(
                "tensor `{stored}`{asked} in {} has shape {:?} but the model needs {:?}",
                self.file.path().display(),
                info.shape,
                s.dims()
            )));
        }
        self.file.load(&stored, dtype, dev).map_err(to_candle)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.file
            .load(&self.stored_name(name), dtype, dev)
            .map_err(to_candle)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.file.contains(&self.stored_name(name))
    }
}
