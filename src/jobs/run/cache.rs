//! Loaded engines stay loaded between jobs, so a batch on one model loads its weights once.
//! Keyed by (model folder, device, dtype, residency); least recently used entries are dropped
//! when the next one would not fit the memory budget.

use std::path::{Path, PathBuf};

use candle_core::DType;

use crate::vocab::Residency;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineKey {
    pub model_dir: PathBuf,
    pub device: String,
    pub dtype: DType,
    pub residency: Residency,
    /// Files replacing some of the model's weights (FLUX's `--transformer`, `--text-encoder-2`).
    pub weights: Vec<PathBuf>,
    /// SD 3.5 loaded without T5 (`--no-t5`).
    pub no_t5: bool,
    /// LoRAs merged at load: (file, weight's bits). A job without them gets another engine,
    /// the base model's weights as stored.
    pub loras: Vec<(PathBuf, u64)>,
}

struct Entry<E> {
    key: EngineKey,
    engine: E,
    bytes: u64,
    last_used: u64,
}

/// An LRU cache of loaded engines, bounded by estimated bytes (always room for one).
pub struct EngineCache<E> {
    entries: Vec<Entry<E>>,
    capacity_bytes: u64,
    clock: u64,
}

impl<E> EngineCache<E> {
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            entries: Vec::new(),
            capacity_bytes,
            clock: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn used_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    pub fn contains(&self, key: &EngineKey) -> bool {
        self.entries.iter().any(|e| &e.key == key)
    }

    /// The cached engine for `key`, or `load()`'s, after evicting what must go to make room for
    /// `bytes`. Returns the engine and whether it was loaded now.
    pub fn get_or_load(
        &mut self,
        key: &EngineKey,
        bytes: u64,
        load: impl FnOnce() -> crate::Result<E>,
    ) -> crate::Result<(&mut E, bool)> {
        self.clock += 1;
        let now = self.clock;
        let index = match self.entries.iter().position(|e| &e.key == key) {
            Some(i) => (i, false),
            None => {
                self.make_room(bytes);
                let engine = load()?;
                self.entries.push(Entry {
                    key: key.clone(),
                    engine,
                    bytes,
                    last_used: now,
                });
                (self.entries.len() - 1, true)
            }
        };
        let entry = &mut self.entries[index.0];
        entry.last_used = now;
        Ok((&mut entry.engine, index.1))
    }

    /// Drops least recently used engines until `bytes` more fit (or nothing is left).
    fn make_room(&mut self, bytes: u64) {
        while !self.entries.is_empty()
            && self.used_bytes().saturating_add(bytes) > self.capacity_bytes
        {
            let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            else {
                break;
            };
            let gone = self.entries.remove(oldest);
            tracing::info!(
                model = %gone.key.model_dir.display(),
                bytes = gone.bytes,
                "engine evicted to make room"
            );
        }
    }

    /// Drops an engine whose state can no longer be trusted (e.g. it panicked mid-job).
    pub fn evict(&mut self, key: &EngineKey) {
        self.entries.retain(|e| &e.key != key);
    }

    /// Drops every engine (after a panic whose engine is not known).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Bytes the weights of a diffusers folder take when loaded: the safetensors files it would
/// read (fp16 variants when `fp16` and present), scaled to the compute dtype.
pub fn estimate_bytes(model_dir: &Path, dtype: DType) -> u64 {
    let Ok(components) = std::fs::read_dir(model_dir) else {
        return 0;
    };
    let mut total = 0u64;
    for component in components.flatten() {
        let Ok(files) = std::fs::read_dir(component.path()) else {
            continue;
        };
        let (mut full, mut half) = (0u64, 0u64);
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let size = file.metadata().map_or(0, |m| m.len());
            if name.ends_with(".fp16.safetensors") {
                half += size;
            } else if name.ends_with(".safetensors") {
                full += size;
            }
        }
        total += match dtype {
            // f32 weights (assumed) are halved when cast to f16/bf16.
            DType::F16 | DType::BF16 if half > 0 => half,
            DType::F16 | DType::BF16 => full / 2,
            _ if full > 0 => full,
            _ => half * 2,
        };
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> EngineKey {
        EngineKey {
            weights: vec![],
            no_t5: false,
            loras: vec![],
            model_dir: name.into(),
            device: "cpu".into(),
            dtype: DType::F32,
            residency: Residency::Resident,
        }
    }

    #[test]
    fn a_cached_engine_is_not_loaded_again() {
        let mut cache = EngineCache::new(100);
        let mut loads = 0;
        for _ in 0..3 {
            let (engine, fresh) = cache
                .get_or_load(&key("a"), 10, || {
                    loads += 1;
                    Ok(String::from("engine a"))
                })
                .unwrap();
            assert_eq!(engine, "engine a");
            let _ = fresh;
        }
        assert_eq!(loads, 1);
        let mut other = key("a");
        other.dtype = DType::F16;
        let (_, fresh) = cache
            .get_or_load(&other, 10, || Ok("a f16".into()))
            .unwrap();
        assert!(fresh, "another dtype is another engine");
    }

    #[test]
    fn least_recently_used_goes_first_when_memory_runs_out() {
        let mut cache = EngineCache::new(100);
        cache.get_or_load(&key("a"), 40, || Ok(1)).unwrap();
        cache.get_or_load(&key("b"), 40, || Ok(2)).unwrap();
        cache.get_or_load(&key("a"), 40, || Ok(1)).unwrap(); // a is now newer than b
        cache.get_or_load(&key("c"), 40, || Ok(3)).unwrap();
        assert!(cache.contains(&key("a")) && cache.contains(&key("c")));
        assert!(!cache.contains(&key("b")));
        // One too big for the budget still loads, alone.
        cache.get_or_load(&key("huge"), 500, || Ok(4)).unwrap();
        assert_eq!(cache.len(), 1);
        cache.evict(&key("huge"));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_failed_load_caches_nothing() {
        let mut cache: EngineCache<u8> = EngineCache::new(100);
        assert!(
            cache
                .get_or_load(&key("a"), 1, || Err(crate::Error::bad_input("x")))
                .is_err()
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn estimates_follow_the_weight_files() {
        let dir = tempfile::tempdir().unwrap();
        let unet = dir.path().join("unet");
        std::fs::create_dir_all(&unet).unwrap();
        std::fs::write(
            unet.join("diffusion_pytorch_model.safetensors"),
            vec![0u8; 400],
        )
        .unwrap();
        std::fs::write(unet.join("config.json"), b"{}").unwrap();
        assert_eq!(estimate_bytes(dir.path(), DType::F32), 400);
        assert_eq!(estimate_bytes(dir.path(), DType::F16), 200);
        std::fs::write(
            unet.join("diffusion_pytorch_model.fp16.safetensors"),
            vec![0u8; 150],
        )
        .unwrap();
        assert_eq!(estimate_bytes(dir.path(), DType::F16), 150);
    }
}
