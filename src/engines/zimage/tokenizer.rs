//! Z-Image's Qwen3 tokenizer (`tokenizer/`) as diffusers' ZImagePipeline uses it: each prompt goes
//! through Qwen3's chat template (`apply_chat_template([{"role": "user", "content": prompt}],
//! tokenize=False, add_generation_prompt=True, enable_thinking=True)`), then
//! `tokenizer(text, padding="max_length", max_length=n, truncation=True)`; the attention mask marks the
//! real tokens, and the pipeline keeps the encoder's states at those positions only.
//!
//! No Jinja engine: for one user message that template renders as
//! `<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n` (with thinking enabled nothing follows
//! the assistant header). A tokenizer_config.json whose template is not Qwen3's (checked by the parts
//! that decide that rendering) is refused rather than rendered wrong.
//!
//! The ids come from the `tokenizers` library over `tokenizer.json`, as transformers' fast tokenizer;
//! added tokens (`<|im_start|>`, `<think>`, ...) typed in a prompt are matched as tokens there too.

use std::path::{Path, PathBuf};

use crate::engines::nn::text::padding::PaddingSettings;
use serde_json::Value;
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use crate::error::{Error, Result};

/// ZImagePipeline's default `max_sequence_length`.
pub const DEFAULT_MAX_LENGTH: usize = 512;

/// Qwen3's pad token when tokenizer_config.json names none.
const DEFAULT_PAD: &str = "<|endoftext|>";

/// The parts of Qwen3's chat template that decide how one user message renders with
/// `add_generation_prompt=True, enable_thinking=True`: the user turn, the generation prompt, the
/// thinking switch that adds nothing when thinking is on, and no system turn unless one is given.
const TEMPLATE_PARTS: [&str; 4] = [
    r#"{%- if (message.role == "user") or (message.role == "system" and not loop.first) %}"#,
    r"{{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}",
    r"{{- '<|im_start|>assistant\n' }}",
    r"{%- if enable_thinking is defined and enable_thinking is false %}",
];

/// What marks a template as another one: a default system prompt (Qwen2.5's) or a thinking block
/// opened whenever thinking is on.
const TEMPLATE_FOREIGN: [&str; 2] = [
    "You are a helpful assistant",
    r"'<|im_start|>assistant\n<think>\n' }}",
];

/// One prompt's ids and attention mask (1 for a real token, 0 for padding), both `max_length` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
}

impl Encoded {
    /// How many real tokens (the rows of the prompt embeds the pipeline keeps).
    pub fn real_tokens(&self) -> usize {
        self.mask.iter().filter(|&&m| m != 0).count()
    }
}

/// The Qwen3 tokenizer of a Z-Image folder.
#[derive(Debug, Clone)]
pub struct QwenTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    pad_token: String,
    pad_id: u32,
    padding_side: PaddingDirection,
    truncation_side: TruncationDirection,
}

/// Qwen3's chat template rendered for one user message with the generation prompt and thinking on.
pub fn chat_text(prompt: &str) -> String {
    format!("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
}

impl QwenTokenizer {
    /// Reads `dir/tokenizer.json` and `dir/tokenizer_config.json` (pad token, sides and the chat
    /// template; the template may instead be in `dir/chat_template.jinja`, as newer transformers save
    /// it). A missing, unreadable or foreign file is bad input naming it.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::bad_input(format!(
                "no tokenizer.json in {}: a Z-Image model folder needs Qwen3's tokenizer.json there; \
                 download the model again",
                dir.display()
            )));
        }
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| {
            Error::bad_input(format!(
                "cannot load the Qwen3 tokenizer {}: {e}; download the model again",
                path.display()
            ))
        })?;
        let settings = settings(dir)?;
        let pad_id = settings.pad_id(&tokenizer, &path)?;
        Ok(Self {
            tokenizer,
            path,
            pad_token: settings.pad_token,
            pad_id,
            padding_side: settings.padding_side,
            truncation_side: settings.truncation_side,
        })
    }

    /// The pad token's id (`<|endoftext|>`).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The ids of `text` as is (no template, no padding): `tokenizer(text).input_ids`.
    pub fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| self.fail(e))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The prompt chat-templated, truncated to and padded up to `max_length`, with its mask.
    pub fn encode(&self, prompt: &str, max_length: usize) -> Result<Encoded> {
        if max_length == 0 {
            return Err(Error::bad_input(
                "the Qwen3 max sequence length must be at least 1",
            ));
        }
        // Settings are per call (the length varies); the clone costs little next to the encoder.
        let mut tokenizer = self.tokenizer.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: self.truncation_side,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| self.fail(e))?
            .with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::Fixed(max_length),
                direction: self.padding_side,
                pad_to_multiple_of: None,
                pad_id: self.pad_id,
                pad_type_id: 0,
                pad_token: self.pad_token.clone(),
            }));
        let encoding = tokenizer
            .encode(chat_text(prompt), true)
            .map_err(|e| self.fail(e))?;
        let out = Encoded {
            ids: encoding.get_ids().to_vec(),
            mask: encoding.get_attention_mask().to_vec(),
        };
        if out.ids.len() != max_length || out.mask.len() != max_length {
            return Err(Error::job_failed(format!(
                "the Qwen3 tokenizer gave {} ids where {max_length} were asked for",
                out.ids.len()
            )));
        }
        Ok(out)
    }

    fn fail(&self, e: tokenizers::Error) -> Error {
        Error::bad_input(format!(
            "the Qwen3 tokenizer {} failed on the prompt: {e}",
            self.path.display()
        ))
    }
}

/// Checks that `template` is Qwen3's chat template; `source` names the file for the error.
pub fn check_template(template: &str, source: &Path) -> Result<()> {
    let missing = TEMPLATE_PARTS.iter().find(|p| !template.contains(*p));
    let foreign = TEMPLATE_FOREIGN.iter().find(|p| template.contains(*p));
    if missing.is_none() && foreign.is_none() {
        return Ok(());
    }
    let why = match (missing, foreign) {
        (Some(p), _) => format!("it lacks {p:?}"),
        (None, Some(p)) => format!("it has {p:?}"),
        (None, None) => String::new(),
    };
    Err(Error::bad_input(format!(
        "{}: the chat template is not Qwen3's ({why}); Z-Image needs the Qwen3 tokenizer its \
         repository ships; download the model's tokenizer/ folder again",
        source.display()
    )))
}

/// What tokenizer_config.json sets about padding, once its chat template is checked.
fn settings(dir: &Path) -> Result<PaddingSettings> {
    let path = dir.join("tokenizer_config.json");
    let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        bad(format!(
            "cannot read it ({e}); Z-Image needs it for the chat template; download the model again"
        ))
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    match value.get("chat_template") {
        Some(Value::String(t)) => check_template(t, &path)?,
        Some(Value::Null) | None => {
            let jinja = dir.join("chat_template.jinja");
            let t = std::fs::read_to_string(&jinja).map_err(|_| {
                bad(
                    "no chat_template in it (nor a chat_template.jinja beside it); Z-Image \
                         needs Qwen3's; download the model's tokenizer/ folder again"
                        .to_string(),
                )
            })?;
            check_template(&t, &jinja)?;
        }
        Some(_) => return Err(bad("`chat_template` is not one template string".into())),
    }
    PaddingSettings::from_config(&value, &path, DEFAULT_PAD)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn tok_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zimage-tiny/tokenizer")
    }

    /// A copy of the fixture's tokenizer folder whose config `edit` rewrites.
    fn edited(name: &str, edit: impl Fn(&mut Value)) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pallaidium-qwentok-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(tok_dir().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
        let text = std::fs::read_to_string(tok_dir().join("tokenizer_config.json")).unwrap();
        let mut cfg: Value = serde_json::from_str(&text).unwrap();
        edit(&mut cfg);
        std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
        dir
    }

    #[test]
    fn template_pads_and_masks() {
        let tok = QwenTokenizer::from_dir(&tok_dir()).unwrap();
        assert_eq!(tok.pad_id(), 420);
        let e = tok.encode("", 16).unwrap();
        // <|im_start|> user \n <|im_end|> \n <|im_start|> assistant \n, then padding.
        assert_eq!(e.ids[0], 421);
        assert_eq!(e.real_tokens(), tok.ids(&chat_text("")).unwrap().len());
        let n = e.real_tokens();
        assert!(e.mask[..n].iter().all(|&m| m == 1) && e.mask[n..].iter().all(|&m| m == 0));
        assert!(e.ids[n..].iter().all(|&i| i == 420));
        let cut = tok
            .encode("a photo of an astronaut riding a horse", 4)
            .unwrap();
        assert_eq!(cut.mask, vec![1; 4]);
        assert!(tok.encode("x", 0).is_err());
    }

    #[test]
    fn foreign_or_missing_templates_are_refused() {
        let qwen25 = edited("qwen25", |c| {
            c["chat_template"] = Value::String(
                "{{- '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}".into(),
            );
        });
        let err = QwenTokenizer::from_dir(&qwen25).unwrap_err().to_string();
        assert!(
            err.contains("tokenizer_config.json") && err.contains("not Qwen3's"),
            "{err}"
        );
        let none = edited("none", |c| {
            c.as_object_mut().unwrap().remove("chat_template");
        });
        let err = QwenTokenizer::from_dir(&none).unwrap_err().to_string();
        assert!(err.contains("no chat_template"), "{err}");
        // The same template in chat_template.jinja is accepted.
        let t = fixture_template();
        std::fs::write(none.join("chat_template.jinja"), t).unwrap();
        assert!(QwenTokenizer::from_dir(&none).is_ok());
        let always_think = edited("think", |c| {
            let t = c["chat_template"].as_str().unwrap().to_string();
            c["chat_template"] = Value::String(t.replace(
                r"{{- '<|im_start|>assistant\n' }}",
                r"{{- '<|im_start|>assistant\n<think>\n' }}",
            ));
        });
        assert!(QwenTokenizer::from_dir(&always_think).is_err());
        for d in [qwen25, none, always_think] {
            std::fs::remove_dir_all(d).unwrap();
        }
        let missing = std::env::temp_dir().join("pallaidium-qwentok-nowhere");
        let err = QwenTokenizer::from_dir(&missing).unwrap_err().to_string();
        assert!(err.contains("no tokenizer.json"), "{err}");
    }

    fn fixture_template() -> String {
        let text = std::fs::read_to_string(tok_dir().join("tokenizer_config.json")).unwrap();
        let cfg: Value = serde_json::from_str(&text).unwrap();
        cfg["chat_template"].as_str().unwrap().to_string()
    }
}
