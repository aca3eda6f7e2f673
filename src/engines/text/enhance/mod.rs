//! Prompt enhancement: a small quantized instruct LLM (GGUF: Qwen2.5 or SmolLM2 Instruct) rewrites a
//! short idea into one detailed image prompt, streaming its tokens.

mod config;
mod model;
mod prompt;
mod sampling;
mod tokenizer;
mod utf8_stream;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use crate::engines::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

pub use prompt::{SYSTEM_PROMPT, chat_prompt, clean_output};
use tokenizer::TextTokenizer;
use utf8_stream::Utf8Stream;

/// What a run needs beyond the weights: the kv cache of prompt and answer (the memory planner asks).
pub const WORKING_SET: crate::engines::media::WorkingSet =
    crate::engines::media::WorkingSet::mib(128, 0);

/// How the enhancer writes: `temperature` 0 is greedy (reproducible without a seed).
#[derive(Debug, Clone, PartialEq)]
pub struct EnhanceOptions {
    pub max_tokens: u32,
    pub seed: u64,
    pub temperature: f64,
    pub top_p: f64,
}

impl Default for EnhanceOptions {
    fn default() -> Self {
        Self {
            max_tokens: 200,
            seed: 0,
            temperature: 0.7,
            top_p: 0.9,
        }
    }
}

/// What one generation produced, before clean-up: the answer's token ids (stop token excluded) and
/// their text, exactly what the streamed deltas add up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub ids: Vec<u32>,
    pub text: String,
}

pub struct PromptEnhancer {
    /// candle's models keep their kv cache inside and need `&mut`; one generation at a time.
    model: Mutex<model::Model>,
    tokenizer: TextTokenizer,
    device: Device,
    architecture: String,
    context_length: usize,
    stop_ids: Vec<u32>,
    gguf: PathBuf,
    tokenizer_from_json: bool,
}

/// The checks `PromptEnhancer::load` makes of a file's header (whole, a supported
/// architecture, a model shape candle can build), without loading it: run before a job is
/// queued.
pub fn check_model_file(path: &Path) -> Result<()> {
    let files = model::locate(path)?;
    let gguf = model::open_gguf(&files.gguf)?;
    let arch = model::architecture(&gguf.content, &files.gguf)?;
    config::check_header(&gguf.content, &arch, &files.gguf)
}

impl PromptEnhancer {
    /// `path`: a .gguf file, or a folder holding exactly one .gguf (a tokenizer.json beside it is used when present;
    /// otherwise the tokenizer is built from the GGUF's own tokenizer.ggml.* metadata, so one file is enough).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let span = tracing::info_span!("enhancer.load", path = %path.display());
        let _enter = span.enter();
        let started = Instant::now();
        let files = model::locate(path)?;
        let gguf = model::open_gguf(&files.gguf)?;
        let arch = model::architecture(&gguf.content, &files.gguf)?;
        config::check_header(&gguf.content, &arch, &files.gguf)?;
        let tokenizer = match &files.tokenizer_json {
            Some(json) => TextTokenizer::from_file(json)?,
            None => TextTokenizer::from_gguf(&gguf.content, &files.gguf)?,
        };
        // Stop at the end of the assistant turn, at end-of-text, and at whatever the file calls eos.
        let mut stop_ids: Vec<u32> = ["<|im_end|>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| tokenizer.token_id(t))
            .collect();
        if let Some(eos) = gguf
            .content
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
        {
            stop_ids.push(eos);
        }
        if tokenizer.token_id("<|im_start|>").is_none() || stop_ids.is_empty() {
            return Err(Error::bad_input(format!(
                "{}: the tokenizer has no <|im_start|>/<|im_end|> chat tokens; the prompt enhancer \
                 needs a ChatML instruct model (Qwen2.5-Instruct, SmolLM2-Instruct)",
                files.gguf.display()
            )));
        }
        let loaded = model::load_model(gguf, &files.gguf, device)?;
        tracing::info!(
            architecture = %loaded.architecture,
            tokenizer_json = files.tokenizer_json.is_some(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "prompt enhancer loaded"
        );
        Ok(Self {
            model: Mutex::new(loaded.model),
            tokenizer,
            device: device.clone(),
            architecture: loaded.architecture,
            context_length: loaded.context_length,
            stop_ids,
            gguf: files.gguf,
            tokenizer_from_json: files.tokenizer_json.is_some(),
        })
    }

    /// `general.architecture` of the loaded file ("qwen2", "llama").
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Whether the tokenizer came from a tokenizer.json beside the GGUF (else from its metadata).
    pub fn tokenizer_from_json(&self) -> bool {
        self.tokenizer_from_json
    }

    /// Token ids of `text` (special tokens written in it become their ids; no BOS added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    /// Rewrites `idea` into a detailed image prompt: the cleaned-up answer (trimmed, surrounding
    /// quotes and a "Prompt:"-style label removed). Streams `EngineEvent::Text` deltas of the raw
    /// answer as it is written.
    pub fn enhance(
        &self,
        idea: &str,
        opts: &EnhanceOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<String> {
        let idea = idea.trim();
        if idea.is_empty() {
            return Err(Error::bad_input(
                "the idea to enhance is empty; type a few words first",
            ));
        }
        sink.emit(EngineEvent::Loading {
            stage: "prompt".to_string(),
        });
        let ids = {
            let span = tracing::info_span!("enhancer.encode");
            let _enter = span.enter();
            self.encode(&chat_prompt(SYSTEM_PROMPT, idea))?
        };
        let generation = self.generate(&ids, opts, sink, cancel)?;
        let cleaned = clean_output(&generation.text);
        if cleaned.is_empty() {
            return Err(Error::job_failed(format!(
                "the enhancer model ({}) wrote no prompt; try another seed or more tokens",
                self.gguf.display()
            )));
        }
        Ok(cleaned)
    }

    /// Generates the answer after `prompt_ids` until a stop token or `opts.max_tokens`, emitting a
    /// Text delta (whole characters only) and a Progress event per token; checks `cancel` each step.
    pub fn generate(
        &self,
        prompt_ids: &[u32],
        opts: &EnhanceOptions,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Generation> {
        let mut sampler = sampling::Sampler::new(opts.seed, opts.temperature, opts.top_p)?;
        if opts.max_tokens == 0 {
            return Err(Error::bad_input("enhancer max_tokens must be at least 1"));
        }
        if prompt_ids.is_empty() || prompt_ids.len() >= self.context_length {
            return Err(Error::bad_input(format!(
                "the enhancer prompt is {} tokens; the model takes at most {}: shorten the idea",
                prompt_ids.len(),
                self.context_length.saturating_sub(1)
            )));
        }
        let room = self.context_length - prompt_ids.len();
        let steps = (opts.max_tokens as usize).min(room);
        let span = tracing::info_span!("enhancer.decode", prompt_tokens = prompt_ids.len(), steps);
        let _enter = span.enter();
        sink.emit(EngineEvent::Loading {
            stage: "decoder".to_string(),
        });
        let mut model = self.model.lock().map_err(|_| {
            Error::job_failed("the enhancer model is unusable after an earlier crash")
        })?;
        model.clear_kv_cache();
        let started = Instant::now();
        let mut logits = self.last_logits(&mut model, prompt_ids, 0)?;
        let mut stream = Utf8Stream::default();
        let mut ids = Vec::new();
        let mut text = String::new();
        for step in 0..steps {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let next = sampler.next(&logits)?;
            if self.stop_ids.contains(&next) {
                break;
            }
            ids.push(next);
            let delta = stream.push(&self.tokenizer.token_bytes(next));
            if !delta.is_empty() {
                text.push_str(&delta);
                sink.emit(EngineEvent::Text { delta });
            }
            let elapsed_s = started.elapsed().as_secs_f64();
            let done = step + 1;
            sink.emit(EngineEvent::Progress {
                step: done as u32,
                steps: steps as u32,
                elapsed_s,
                eta_s: elapsed_s / done as f64 * (steps - done) as f64,
            });
            if done < steps {
                logits = self.last_logits(&mut model, &[next], prompt_ids.len() + step)?;
            }
        }
        let tail = stream.finish();
        if !tail.is_empty() {
            text.push_str(&tail);
            sink.emit(EngineEvent::Text { delta: tail });
        }
        tracing::info!(
            tokens = ids.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "enhancer decode done"
        );
        Ok(Generation { ids, text })
    }

    /// Logits after the prompt (first `prompt_len` ids in one pass), then after each following id
    /// fed one at a time through the kv cache: what the decode loop computes, for parity tests.
    pub fn step_logits(&self, ids: &[u32], prompt_len: usize) -> Result<Vec<Vec<f32>>> {
        if prompt_len == 0 || prompt_len > ids.len() {
            return Err(Error::bad_input(
                "step_logits: prompt_len must be in 1..=ids.len()",
            ));
        }
        let mut model = self.model.lock().map_err(|_| {
            Error::job_failed("the enhancer model is unusable after an earlier crash")
        })?;
        model.clear_kv_cache();
        let mut out = vec![self.last_logits(&mut model, &ids[..prompt_len], 0)?];
        for (pos, id) in ids.iter().enumerate().skip(prompt_len) {
            out.push(self.last_logits(&mut model, &[*id], pos)?);
        }
        Ok(out)
    }

    fn last_logits(&self, model: &mut model::Model, ids: &[u32], pos: usize) -> Result<Vec<f32>> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let logits = model.forward(&input, pos)?;
        Ok(logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }
}
