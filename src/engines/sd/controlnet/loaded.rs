//! The ControlNets a pipeline keeps between jobs: the last job's set stays loaded (unless memory
//! is staged), so a run of jobs with the same ControlNet reads its weights once. A job that asks
//! for other nets (or none) drops the ones it does not use before loading anything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::DType;

use crate::error::Result;

/// Loaded networks by folder and dtype (`T`: a ControlNet; anything in the tests).
pub struct LoadedNets<T> {
    nets: Vec<(PathBuf, DType, Arc<T>)>,
}

impl<T> Default for LoadedNets<T> {
    fn default() -> Self {
        Self { nets: Vec::new() }
    }
}

impl<T> LoadedNets<T> {
    /// The nets for `dirs`, in order (a folder named twice is one net): loaded ones are reused,
    /// the rest come from `load`; nets no job asks for now are dropped first.
    pub fn get(
        &mut self,
        dirs: &[&Path],
        dtype: DType,
        mut load: impl FnMut(&Path) -> Result<T>,
    ) -> Result<Vec<Arc<T>>> {
        self.nets
            .retain(|(dir, d, _)| *d == dtype && dirs.contains(&dir.as_path()));
        dirs.iter()
            .map(|&dir| {
                if let Some((_, _, net)) = self.nets.iter().find(|(d, _, _)| d == dir) {
                    return Ok(Arc::clone(net));
                }
                let net = Arc::new(load(dir)?);
                self.nets.push((dir.to_path_buf(), dtype, Arc::clone(&net)));
                Ok(net)
            })
            .collect()
    }

    /// Forget every net (staged memory frees them with the UNet).
    pub fn clear(&mut self) {
        self.nets.clear();
    }

    pub fn len(&self) -> usize {
        self.nets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_last_jobs_nets_are_reused_and_others_dropped() {
        let mut loaded: LoadedNets<String> = LoadedNets::default();
        let mut loads = Vec::new();
        let mut get = |loaded: &mut LoadedNets<String>, dirs: &[&str], dtype| {
            let dirs: Vec<&Path> = dirs.iter().map(Path::new).collect();
            loaded
                .get(&dirs, dtype, |d| {
                    loads.push(d.display().to_string());
                    Ok(d.display().to_string())
                })
                .unwrap()
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            get(&mut loaded, &["a", "b", "a"], DType::F16),
            ["a", "b", "a"]
        );
        assert_eq!(get(&mut loaded, &["b", "a"], DType::F16), ["b", "a"]);
        assert_eq!(loaded.len(), 2);
        assert_eq!(get(&mut loaded, &["c"], DType::F16), ["c"]);
        assert_eq!(loaded.len(), 1, "a and b are dropped");
        assert_eq!(get(&mut loaded, &["c"], DType::F32), ["c"]);
        assert_eq!(get(&mut loaded, &[], DType::F32), Vec::<String>::new());
        assert!(loaded.is_empty());
        assert_eq!(
            loads,
            ["a", "b", "c", "c"],
            "each folder loads once per dtype"
        );
    }
}
