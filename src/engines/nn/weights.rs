//! Opening one component folder's safetensors (an SD unet/ or vae/, a text encoder, a Parler,
//! MusicGen, Whisper or BLIP model folder), memory-mapped.
//!
//! Every failure a user can cause (no weights file, a pickle instead of safetensors, a truncated
//! or corrupt file, a tensor missing or of the wrong shape for the config) becomes
//! `Error::BadInput` naming the file and the tensor; nothing panics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;

use crate::engines::nn::lora::{PatchedBackend, WeightPatch};
use crate::error::{Error, Result};

mod convert;
pub mod gguf;
mod mapped;
mod pages;
mod upload;
use mapped::MappedFile;
use pages::{parallel_f32_copy, populate, release_pages};
use upload::Staging;

/// The weight file stems diffusers (models) and transformers (text encoders) write.
const STEMS: [&str; 2] = ["diffusion_pytorch_model", "model"];
/// Files we refuse to unpickle: loading them can run arbitrary code.
const PICKLE_EXTS: [&str; 4] = ["bin", "ckpt", "pt", "pth"];

/// A component's weights: the files found and a `VarBuilder` over them.
pub struct Weights {
    files: Vec<PathBuf>,
    vb: VarBuilder<'static>,
}

impl Weights {
    /// Opens the safetensors of `dir`: `<stem>.safetensors` (or `<stem>.fp16.safetensors` when
    /// `fp16_variant` and present), or a sharded `<stem>.safetensors.index.json`.
    /// Large f32 tensors kept f32 on the CPU are mapped from the file, not copied
    /// (`weights/mapped.rs`); a CUDA device gets its weights through pinned staging buffers,
    /// converted on the CPU (`weights/upload.rs`). `switches.copy_weights`
    /// (PALLAIDIUM_COPY_WEIGHTS) does neither (copies on the CPU, candle's upload on a GPU), to
    /// measure against or for a file system that cannot be mapped.
    pub fn open(
        dir: &Path,
        device: &Device,
        dtype: DType,
        fp16_variant: bool,
        switches: crate::engines::EngineSwitches,
    ) -> Result<Self> {
        Self::open_patched(dir, device, dtype, fp16_variant, switches, None)
    }

    /// `open` with LoRA deltas merged into the weights they change as those are fetched.
    pub fn open_patched(
        dir: &Path,
        device: &Device,
        dtype: DType,
        fp16_variant: bool,
        switches: crate::engines::EngineSwitches,
        patch: Option<&std::sync::Arc<WeightPatch>>,
    ) -> Result<Self> {
        let patch = patch.filter(|p| !p.is_empty()).cloned();
        Self::open_with(
            dir,
            device,
            dtype,
            fp16_variant,
            !switches.copy_weights,
            patch,
        )
    }

    fn open_with(
        dir: &Path,
        device: &Device,
        dtype: DType,
        fp16_variant: bool,
        fast: bool,
        patch: Option<std::sync::Arc<WeightPatch>>,
    ) -> Result<Self> {
        let files = find_weight_files(dir, fp16_variant)?;
        let staging = if fast { Staging::new(device) } else { None };
        let mut shards = Vec::with_capacity(files.len());
        let mut mapped = Vec::with_capacity(files.len());
        let mut routing = HashMap::new();
        for (index, file) in files.iter().enumerate() {
            // SAFETY: the mapping is read-only; a file modified while mapped is the user's
            // doing, as with every memory-mapped model loader.
            let st = unsafe { MmapedSafetensors::new(file) }.map_err(|e| {
                Error::bad_input(format!(
                    "{} is not a valid safetensors file (truncated or corrupt?): {}; \
                     download it again",
                    file.display(),
                    first_line(&e)
                ))
            })?;
            let mut span: Option<(usize, usize)> = None;
            for (name, view) in st.tensors() {
                let (start, len) = (view.data().as_ptr() as usize, view.data().len());
                span = Some(match span {
                    Some((a, b)) => (a.min(start), b.max(start + len)),
                    None => (start, start + len),
                });
                routing.insert(name, index);
            }
            // For a GPU every weight is read once, straight into device memory: mapping the
            // file's pages in one call costs far less than a page fault per 4 KiB during the
            // copies. (Not for the CPU, whose loader drops each tensor's pages once copied so a
            // model is never held twice, nor for the staged upload, whose threads fault the
            // pages of the large tensors in parallel.)
            if device.is_cuda()
                && staging.is_none()
                && let Some((start, end)) = span
            {
                populate(start, end);
            }
            mapped.push(
                span.filter(|_| fast)
                    .and_then(|(start, _)| MappedFile::open(file, start)),
            );
            shards.push(st);
        }
        tracing::debug!(files = ?files, tensors = routing.len(), "opened weights");
        let backend = CheckedBackend {
            files: files.clone(),
            shards,
            mapped,
            staging: std::sync::Mutex::new(staging),
            routing,
        };
        let backend: Box<dyn candle_nn::var_builder::SimpleBackend> = match patch {
            Some(patch) => Box::new(PatchedBackend {
                inner: Box::new(backend),
                patch,
            }),
            None => Box::new(backend),
        };
        let vb = VarBuilder::from_backend(backend, dtype, device.clone());
        Ok(Self { files, vb })
    }

    pub fn vb(&self) -> &VarBuilder<'static> {
        &self.vb
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Builds a model from these weights, turning lookup errors (missing tensor, wrong shape)
    /// into `BadInput` that names the files.
    pub fn build<T>(
        &self,
        what: &str,
        f: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
    ) -> Result<T> {
        f(self.vb.clone()).map_err(|e| {
            build_error(
                what,
                &self.describe(),
                "the weights do not match the folder's config.json",
                &e,
            )
        })
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        names.join(", ")
    }
}

/// A model build's error from weights in `from` (file names): out of device memory is a failed
/// job, anything else (a tensor missing, a wrong shape) bad input naming the files; `mismatch`
/// says what did not match.
fn build_error(what: &str, from: &str, mismatch: &str, e: &candle_core::Error) -> Error {
    let why = first_line(e);
    if is_out_of_memory(&why) {
        return Error::job_failed(format!(
            "not enough device memory to load the {what} ({why}); close other programs \
             using the GPU, run in f16 (--dtype f16) or pick a smaller model: `--plan` \
             shows what the job needs"
        ));
    }
    Error::bad_input(format!(
        "cannot load the {what} from {from}: {why}; {mismatch} (a different model or a damaged \
         download)"
    ))
}

/// A device allocation that failed while loading: CUDA's and Metal's wordings.
fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "out_of_memory",
        "out of memory",
        "failed to create metal resource",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// candle errors carry backtraces and wrapped context; the first line is the message.
fn first_line(e: &candle_core::Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or_default().to_string()
}

/// The weight files of one component folder, as the loader picks them (fp16 variant first when
/// asked, sharded indexes followed); pickles are refused with how to convert them.
pub fn find_weight_files(dir: &Path, fp16_variant: bool) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::bad_input(format!(
            "{} is not a folder; expected a diffusers component folder with a config.json and \
             safetensors weights",
            dir.display()
        )));
    }
    let variants: &[&str] = if fp16_variant { &[".fp16", ""] } else { &[""] };
    for variant in variants {
        for stem in STEMS {
            let single = dir.join(format!("{stem}{variant}.safetensors"));
            if single.is_file() {
                return Ok(vec![single]);
            }
            let index = dir.join(format!("{stem}{variant}.safetensors.index.json"));
            if index.is_file() {
                return shards_from_index(&index);
            }
        }
    }
    let pickles: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| PICKLE_EXTS.contains(&e))
        })
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    if !pickles.is_empty() {
        return Err(Error::bad_input(format!(
            "{} holds only pickled weights ({}), which are refused because loading them can run \
             arbitrary code; convert the model once in Python: \
             `from_pretrained(path).save_pretrained(out, safe_serialization=True)` (diffusers' \
             DiffusionPipeline for image models, transformers' Auto classes for the rest)",
            dir.display(),
            pickles.join(", ")
        )));
    }
    Err(Error::bad_input(format!(
        "no weights in {}: expected diffusion_pytorch_model.safetensors or model.safetensors{}",
        dir.display(),
        if fp16_variant {
            " (or their .fp16. variants)"
        } else {
            ""
        }
    )))
}

/// Every tensor's name and shape in a component folder's weight files, from their headers.
pub fn tensor_shapes(dir: &Path, fp16_variant: bool) -> Result<Vec<(String, Vec<usize>)>> {
    let mut out = vec![];
    for file in find_weight_files(dir, fp16_variant)? {
        // SAFETY: read-only mapping, as `Weights::open_with`.
        let st = unsafe { MmapedSafetensors::new(&file) }.map_err(|e| {
            Error::bad_input(format!(
                "{} is not a valid safetensors file: {}",
                file.display(),
                first_line(&e)
            ))
        })?;
        out.extend(
            st.tensors()
                .into_iter()
                .map(|(name, view)| (name, view.shape().to_vec())),
        );
    }
    Ok(out)
}

fn shards_from_index(index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let bad = |why: String| Error::bad_input(format!("{}: {why}", index.display()));
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let parsed: Index =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a shard index: {e}")))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = parsed.weight_map.values().map(|f| dir.join(f)).collect();
    files.sort();
    files.dedup();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(bad(format!("shard {} is missing", missing.display())));
    }
    Ok(files)
}

/// One tensor as the backend reads it: its stored bytes and what it is to become.
struct TensorRead<'a> {
    data: &'a [u8],
    shape: &'a [usize],
    /// The stored dtype, when candle has it.
    stored: Option<DType>,
    dtype: DType,
    dev: &'a Device,
}

impl TensorRead<'_> {
    /// An f32 weight of at least `min_bytes` that stays f32 on the CPU.
    fn f32_kept_on_cpu(&self, min_bytes: usize) -> bool {
        self.dev.is_cpu()
            && self.dtype == DType::F32
            && self.stored == Some(DType::F32)
            && self.data.len() >= min_bytes
    }
}

/// A safetensors backend that checks shapes from the header before reading any data and names
/// the file in every error.
struct CheckedBackend {
    files: Vec<PathBuf>,
    shards: Vec<MmapedSafetensors>,
    /// Each shard opened again for mapping its f32 tensors (None: they are copied).
    mapped: Vec<Option<MappedFile>>,
    /// Pinned buffers for a CUDA device (None: candle uploads).
    staging: std::sync::Mutex<Option<Staging>>,
    routing: HashMap<String, usize>,
}

impl CheckedBackend {
    fn locate(&self, name: &str) -> candle_core::Result<usize> {
        self.routing.get(name).copied().ok_or_else(|| {
            let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
            candle_core::Error::Msg(format!(
                "tensor `{name}` is missing from {}",
                files.join(", ")
            ))
        })
    }
}

impl candle_nn::var_builder::SimpleBackend for CheckedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let index = self.locate(name)?;
        let shard = &self.shards[index];
        let view = shard.get(name)?;
        if view.shape() != s.dims() {
            return Err(candle_core::Error::Msg(format!(
                "tensor `{name}` in {} has shape {:?} but the config needs {:?}",
                self.files[index].display(),
                view.shape(),
                s.dims()
            )));
        }
        let read = TensorRead {
            data: view.data(),
            shape: view.shape(),
            stored: DType::try_from(view.dtype()).ok(),
            dtype,
            dev,
        };
        if let Some(file) = &self.mapped[index]
            && let Some(t) = file.tensor(&read)?
        {
            return Ok(t);
        }
        if let Ok(mut guard) = self.staging.lock()
            && let Some(staging) = guard.as_mut()
            && let Some(t) = staging.upload(&read)?
        {
            release_pages(view.data());
            return Ok(t);
        }
        let tensor = match parallel_f32_copy(&read)? {
            Some(t) => t,
            None => shard.load(name, dev)?.to_dtype(dtype)?,
        };
        release_pages(view.data());
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let index = self.locate(name)?;
        let tensor = self.shards[index].load(name, dev)?.to_dtype(dtype)?;
        if let Ok(view) = self.shards[index].get(name) {
            release_pages(view.data());
        }
        Ok(tensor)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.routing.contains_key(name)
    }
}

#[cfg(test)]
mod tests;
