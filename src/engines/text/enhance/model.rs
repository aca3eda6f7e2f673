//! Opening a GGUF instruct model: find the file, check it is whole, pick the architecture and load
//! candle-transformers' quantized model for it.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};

use crate::engines::nn::weights::gguf::GgufFile as CheckedGguf;
use crate::error::{Error, Result};

/// The GGUF file and the tokenizer.json beside it, if any.
pub struct ModelFiles {
    pub gguf: PathBuf,
    pub tokenizer_json: Option<PathBuf>,
}

/// `path` is a .gguf file, or a folder holding exactly one.
pub fn locate(path: &Path) -> Result<ModelFiles> {
    let gguf = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let p = entry.path();
            if p.is_file()
                && p.extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
            {
                found.push(p);
            }
        }
        found.sort();
        match found.len() {
            1 => found.remove(0),
            0 => {
                return Err(Error::bad_input(format!(
                    "{}: no .gguf file in this folder; download a GGUF instruct model \
                     (e.g. Qwen2.5-0.5B-Instruct-GGUF) into it",
                    path.display()
                )));
            }
            n => {
                return Err(Error::bad_input(format!(
                    "{}: {n} .gguf files in this folder; point at one of them",
                    path.display()
                )));
            }
        }
    } else if path.is_file() {
        path.to_path_buf()
    } else {
        return Err(Error::bad_input(format!(
            "{}: no such file or folder; download the enhancer model first",
            path.display()
        )));
    };
    let tokenizer_json = gguf
        .parent()
        .map(|dir| dir.join("tokenizer.json"))
        .filter(|p| p.is_file());
    Ok(ModelFiles {
        gguf,
        tokenizer_json,
    })
}

/// The parsed GGUF header and a reader positioned anywhere in the file.
pub struct GgufFile {
    pub content: gguf_file::Content,
    pub reader: BufReader<File>,
}

fn corrupt(file: &Path, what: impl std::fmt::Display) -> Error {
    Error::bad_input(format!(
        "{}: not a usable GGUF file ({what}); it may be truncated or corrupt: download it again",
        file.display()
    ))
}

/// Reads the header through nn's GGUF reader, which checks every count, offset, alignment and
/// tensor type against the file's size (candle's own parser panics on some damaged headers and
/// allocates whatever a header claims), so a truncated or corrupt download is reported here,
/// naming the file, rather than deep in the model loader; candle's quantized model code then
/// reads the tensors through `reader`.
pub fn open_gguf(file: &Path) -> Result<GgufFile> {
    let content = CheckedGguf::open(file)?.candle_content()?;
    let handle = File::open(file).map_err(|e| Error::io(file, e))?;
    Ok(GgufFile {
        content,
        reader: BufReader::new(handle),
    })
}

pub fn metadata_string(content: &gguf_file::Content, key: &str) -> Option<String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

/// The architectures this engine runs (GGUF `general.architecture`).
pub enum Model {
    Qwen2(quantized_qwen2::ModelWeights),
    Llama(quantized_llama::ModelWeights),
}

pub struct LoadedModel {
    pub model: Model,
    pub architecture: String,
    /// Positions the model's rotary tables cover: prompt plus answer must fit.
    pub context_length: usize,
}

/// `general.architecture`, if this engine runs it; checked before anything else is read.
pub fn architecture(content: &gguf_file::Content, file: &Path) -> Result<String> {
    let arch = metadata_string(content, "general.architecture")
        .ok_or_else(|| corrupt(file, "metadata key general.architecture is missing"))?;
    if !matches!(arch.as_str(), "qwen2" | "llama") {
        return Err(Error::bad_input(format!(
            "{}: architecture '{arch}' is not supported by the prompt enhancer \
             (qwen2 and llama are: e.g. Qwen2.5-Instruct or SmolLM2-Instruct GGUF)",
            file.display()
        )));
    }
    Ok(arch)
}

pub fn load_model(mut gguf: GgufFile, file: &Path, device: &Device) -> Result<LoadedModel> {
    let arch = architecture(&gguf.content, file)?;
    let context_length = gguf
        .content
        .metadata
        .get(&format!("{arch}.context_length"))
        .and_then(|v| v.to_u32().ok())
        .map_or(usize::MAX, |v| v as usize);
    // candle's quantized llama builds its rotary tables for MAX_SEQ_LEN positions only.
    let context_length = if arch == "llama" {
        context_length.min(quantized_llama::MAX_SEQ_LEN)
    } else {
        context_length
    };
    let loaded = match arch.as_str() {
        "qwen2" => quantized_qwen2::ModelWeights::from_gguf(gguf.content, &mut gguf.reader, device)
            .map(Model::Qwen2),
        "llama" => quantized_llama::ModelWeights::from_gguf(gguf.content, &mut gguf.reader, device)
            .map(Model::Llama),
        other => {
            return Err(Error::bad_input(format!(
                "{}: architecture '{other}' is not supported by the prompt enhancer",
                file.display()
            )));
        }
    };
    // The header was checked, so what fails here is a missing key or tensor: the file's fault.
    let model = loaded.map_err(|e| corrupt(file, e))?;
    Ok(LoadedModel {
        model,
        architecture: arch,
        context_length,
    })
}

impl Model {
    /// Logits of the last position of `ids` (1, n), which sit at positions `pos..pos + n`; the
    /// kv cache holds the positions before `pos` (and is dropped when `pos` is 0).
    pub fn forward(&mut self, ids: &Tensor, pos: usize) -> Result<Tensor> {
        let logits = match self {
            Self::Qwen2(m) => m.forward(ids, pos)?,
            Self::Llama(m) => m.forward(ids, pos)?,
        };
        Ok(logits)
    }

    pub fn clear_kv_cache(&mut self) {
        match self {
            Self::Qwen2(m) => m.clear_kv_cache(),
            Self::Llama(m) => m.clear_kv_cache(),
        }
    }
}
