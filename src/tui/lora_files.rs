//! The LoRA files the picker offers: `.safetensors` files in the LoRA folder (`[loras] dir` in
//! `<PALLAIDIUM_HOME>/config.toml`, else `$PALLAIDIUM_LORA_DIR`, else `<PALLAIDIUM_HOME>/loras`)
//! and the top-level `.safetensors` files of the Hugging Face cache's snapshots whose tensor names
//! are LoRA names. Only safetensors headers are read, never tensor data: the names (parsed by
//! `engines::nn::lora::keys`, as the engine parses them) and one shape tell the model family.
//!
//! ```toml
//! [loras]
//! dir = "/data/loras"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engines::nn::lora::keys::{KeyKind, Part, Target, parse_key};
use crate::models::Family;
use crate::models::safetensors_header::{TensorInfo, read_header};

/// Cache files larger than this are models, not LoRAs, and their headers are not read.
const MAX_CACHED_LORA_BYTES: u64 = 2 << 30;
/// How deep the LoRA folder's subfolders are searched.
const MAX_DEPTH: usize = 3;

/// Where LoRAs are looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoraSources {
    pub dir: PathBuf,
    pub hf_cache: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    loras: Option<LorasSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LorasSection {
    dir: PathBuf,
}

impl LoraSources {
    /// The folder from `config` (`[loras] dir`), else `env_dir` (`PALLAIDIUM_LORA_DIR`), else
    /// `<home>/loras`. A config file that cannot be read or parsed is an error naming it.
    pub fn load(
        home: &Path,
        config: &Path,
        env_dir: Option<&Path>,
        hf_cache: Option<PathBuf>,
    ) -> crate::Result<Self> {
        let from_file = match std::fs::read_to_string(config) {
            Ok(text) => toml::from_str::<ConfigFile>(&text)
                .map_err(|e| {
                    crate::Error::bad_input(format!(
                        "{}: {}; [loras] takes dir = \"FOLDER\"",
                        config.display(),
                        e.message()
                    ))
                })?
                .loras
                .map(|l| l.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(crate::Error::io(config, e)),
        };
        let dir = from_file
            .or_else(|| env_dir.map(Path::to_path_buf))
            .unwrap_or_else(|| home.join("loras"));
        Ok(Self { dir, hf_cache })
    }
}

/// What model family a LoRA is for, as far as its names and shapes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraFamily {
    Sd1,
    Sd2,
    Sdxl,
    /// A UNet or CLIP LoRA whose SD version the names do not tell.
    Sd,
    Flux,
    /// Not readable as a LoRA (the engine will say why if it is used).
    Unknown,
}

impl LoraFamily {
    /// The family of a LoRA from its header; `None` when no tensor is a plain LoRA tensor.
    pub fn from_tensors(tensors: &BTreeMap<String, TensorInfo>) -> Option<Self> {
        let mut found = None;
        for (key, info) in tensors {
            let KeyKind::Lora(module, part) = parse_key(key) else {
                continue;
            };
            let path = module.path.replace('.', "_");
            let flux_unet = ["double_blocks", "single_blocks"]
                .iter()
                .any(|p| path.starts_with(p));
            let sgm_unet = ["input_blocks", "output_blocks", "middle_block"]
                .iter()
                .any(|p| path.starts_with(p));
            let family = match module.target {
                Target::Transformer => Self::Flux,
                Target::Unet if flux_unet => Self::Flux,
                Target::TextEncoder2 => Self::Sdxl,
                Target::Unet if sgm_unet => Self::Sdxl,
                // The cross-attention's input is the text encoder's width: 768 (SD 1.x), 1024
                // (SD 2.x), 2048 (SDXL).
                Target::Unet if part == Part::Down && path.ends_with("attn2_to_k") => {
                    match info.shape.get(1) {
                        Some(768) => Self::Sd1,
                        Some(1024) => Self::Sd2,
                        Some(2048) => Self::Sdxl,
                        _ => Self::Sd,
                    }
                }
                _ => Self::Sd,
            };
            if family == Self::Flux {
                return Some(family);
            }
            if found.is_none_or(|f| f == Self::Sd) {
                found = Some(family);
            }
        }
        found
    }

    /// Whether a model of `family` takes it (`Unknown`: not known, so yes).
    pub fn fits(self, family: Family) -> bool {
        match self {
            Self::Unknown => true,
            Self::Sd => matches!(family, Family::Sd1 | Family::Sd2 | Family::Sdxl),
            Self::Sd1 => family == Family::Sd1,
            Self::Sd2 => family == Family::Sd2,
            Self::Sdxl => family == Family::Sdxl,
            Self::Flux => family == Family::Flux,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Sd1 => "SD1",
            Self::Sd2 => "SD2",
            Self::Sdxl => "SDXL",
            Self::Sd => "SD",
            Self::Flux => "FLUX",
            Self::Unknown => "?",
        }
    }
}

/// One LoRA the picker offers.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraFile {
    pub path: PathBuf,
    /// The folder's relative path, or `org/name:file` for the cache.
    pub label: String,
    pub family: LoraFamily,
}

/// The LoRAs of the folder (every `.safetensors`), then of the cache (LoRA tensors only).
pub fn scan(sources: &LoraSources) -> Vec<LoraFile> {
    let mut files = Vec::new();
    let mut found = Vec::new();
    walk(&sources.dir, 0, &mut found);
    found.sort();
    for path in found {
        let family = read_header(&path)
            .ok()
            .and_then(|h| LoraFamily::from_tensors(&h.tensors))
            .unwrap_or(LoraFamily::Unknown);
        let label = path
            .strip_prefix(&sources.dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        files.push(LoraFile {
            path,
            label,
            family,
        });
    }
    if let Some(cache) = &sources.hf_cache {
        files.extend(scan_cache(cache));
    }
    files
}

fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth < MAX_DEPTH {
            walk(&path, depth + 1, out);
        } else if path.is_file() && is_safetensors(&path) {
            out.push(path);
        }
    }
}

/// `models--org--name/snapshots/<commit>/<file>.safetensors` whose header holds LoRA tensors.
fn scan_cache(cache: &Path) -> Vec<LoraFile> {
    let mut out = Vec::new();
    let Ok(repos) = std::fs::read_dir(cache) else {
        return out;
    };
    let mut repos: Vec<PathBuf> = repos.flatten().map(|e| e.path()).collect();
    repos.sort();
    for folder in repos {
        let Some(repo) = folder
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("models--"))
            .map(|n| n.replacen("--", "/", 1))
        else {
            continue;
        };
        let Ok(snapshots) = std::fs::read_dir(folder.join("snapshots")) else {
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        for snapshot in snapshots.flatten() {
            let Ok(files) = std::fs::read_dir(snapshot.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let name = file.file_name().to_string_lossy().into_owned();
                // Metadata follows the link into blobs/.
                let small = std::fs::metadata(&path)
                    .is_ok_and(|m| m.is_file() && m.len() <= MAX_CACHED_LORA_BYTES);
                if !small || !is_safetensors(&path) || !seen.insert(name.clone()) {
                    continue;
                }
                let family = read_header(&path)
                    .ok()
                    .and_then(|h| LoraFamily::from_tensors(&h.tensors));
                if let Some(family) = family {
                    out.push(LoraFile {
                        path,
                        label: format!("{repo}:{name}"),
                        family,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/loras")
            .join(name)
    }

    fn family(name: &str) -> Option<LoraFamily> {
        LoraFamily::from_tensors(&read_header(&fixture(name)).unwrap().tensors)
    }

    #[test]
    fn the_family_follows_the_names() {
        assert_eq!(family("flux-kohya.safetensors"), Some(LoraFamily::Flux));
        assert_eq!(family("flux-peft.safetensors"), Some(LoraFamily::Flux));
        assert_eq!(family("sdxl-kohya.safetensors"), Some(LoraFamily::Sdxl));
        assert_eq!(family("sdxl-peft.safetensors"), Some(LoraFamily::Sdxl));
        // The tiny fixtures' widths are not SD 1.x's 768, so the version is not told.
        assert_eq!(family("sd1-kohya.safetensors"), Some(LoraFamily::Sd));
        assert!(LoraFamily::Sd.fits(Family::Sd1) && !LoraFamily::Sd.fits(Family::Flux));
        assert!(!LoraFamily::Flux.fits(Family::Sdxl) && LoraFamily::Unknown.fits(Family::Flux));
        let mut real = BTreeMap::new();
        real.insert(
            "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"
                .to_owned(),
            TensorInfo {
                dtype: crate::models::safetensors_header::StoredDtype::F16,
                shape: vec![8, 768],
            },
        );
        assert_eq!(LoraFamily::from_tensors(&real), Some(LoraFamily::Sd1));
        real.clear();
        real.insert("model.diffusion.weight".to_owned(), real_info());
        assert_eq!(LoraFamily::from_tensors(&real), None, "not a LoRA");
    }

    fn real_info() -> TensorInfo {
        TensorInfo {
            dtype: crate::models::safetensors_header::StoredDtype::F32,
            shape: vec![4, 4],
        }
    }

    #[test]
    fn folder_and_cache_are_scanned_and_the_config_names_the_folder() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("mine");
        std::fs::create_dir_all(dir.join("styles")).unwrap();
        std::fs::copy(fixture("sd1-kohya.safetensors"), dir.join("a.safetensors")).unwrap();
        std::fs::copy(
            fixture("flux-peft.safetensors"),
            dir.join("styles/b.safetensors"),
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        let cache = home.path().join("hub");
        let snap = cache.join("models--me--style-lora/snapshots/abc");
        std::fs::create_dir_all(snap.join("unet")).unwrap();
        std::fs::copy(fixture("sdxl-peft.safetensors"), snap.join("s.safetensors")).unwrap();
        // A component of a model, and a file that is no LoRA: neither is offered.
        std::fs::copy(
            fixture("sd1-peft.safetensors"),
            snap.join("unet/x.safetensors"),
        )
        .unwrap();
        let model = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/upscale/rrdb_x2.safetensors");
        std::fs::copy(model, snap.join("model.safetensors")).unwrap();

        let config = home.path().join("config.toml");
        std::fs::write(
            &config,
            format!("[[hosts]]\nname = \"a\"\nurl = \"http://a\"\n\n[loras]\ndir = {dir:?}\n"),
        )
        .unwrap();
        let elsewhere = home.path().join("elsewhere");
        let sources =
            LoraSources::load(home.path(), &config, Some(&elsewhere), Some(cache)).unwrap();
        assert_eq!(sources.dir, dir);
        let files = scan(&sources);
        let labels: Vec<(&str, LoraFamily)> =
            files.iter().map(|f| (f.label.as_str(), f.family)).collect();
        assert_eq!(
            labels,
            [
                ("a.safetensors", LoraFamily::Sd),
                ("styles/b.safetensors", LoraFamily::Flux),
                ("me/style-lora:s.safetensors", LoraFamily::Sdxl),
            ]
        );

        std::fs::write(&config, "[loras]\nfolder = \"x\"\n").unwrap();
        let err = LoraSources::load(home.path(), &config, None, None).unwrap_err();
        assert!(err.to_string().contains("config.toml"), "{err}");
        let no_config = home.path().join("no.toml");
        let none = LoraSources::load(home.path(), &no_config, None, None).unwrap();
        assert_eq!(none.dir, home.path().join("loras"));
        let env = LoraSources::load(home.path(), &no_config, Some(&elsewhere), None).unwrap();
        assert_eq!(env.dir, elsewhere);
    }
}
