//! f32 weights kept f32 on the CPU become tensors over a private mapping of their file: no copy
//! at load, pages read in when first used and shared with the page cache (the way PyTorch's
//! safetensors loader leaves CPU tensors). `PALLAIDIUM_COPY_WEIGHTS=1` (`EngineSwitches::copy_weights`) copies them instead
//! (measurements, or a file system that cannot map).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use candle_core::Tensor;

use super::TensorRead;

use crate::platform::mapped_alloc::{TAGGED_BYTES, map_f32};

/// One safetensors file opened for mapping its tensors.
pub(super) struct MappedFile {
    file: File,
    /// The file offset of the data section (8 + the header's length).
    data_offset: u64,
    /// Where the data section starts in the loader's own mapping of the file.
    data_ptr: usize,
}

impl MappedFile {
    /// `data_ptr`: the lowest tensor address in the loader's mapping, which is the data section's
    /// start (safetensors' tensors cover it from offset 0 without holes). None when the file
    /// cannot be read again.
    pub(super) fn open(path: &Path, data_ptr: usize) -> Option<Self> {
        let mut file = File::open(path).ok()?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).ok()?;
        let data_offset = u64::from_le_bytes(len).checked_add(8)?;
        Some(Self {
            file,
            data_offset,
            data_ptr,
        })
    }

    /// The tensor whose bytes are `data` (a slice of the loader's mapping of this file), mapped
    /// instead of copied; None where that does not apply (another device or dtype, a small or
    /// misaligned tensor): the caller copies.
    pub(super) fn tensor(&self, read: &TensorRead) -> candle_core::Result<Option<Tensor>> {
        if !read.f32_kept_on_cpu(TAGGED_BYTES) {
            return Ok(None);
        }
        let data = read.data;
        let Some(inner) = (data.as_ptr() as usize).checked_sub(self.data_ptr) else {
            return Ok(None);
        };
        let offset = self.data_offset + inner as u64;
        match map_f32(&self.file, offset, data.len() / 4) {
            Some(values) => Tensor::from_vec(values, read.shape, read.dev).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::safetensors::MmapedSafetensors;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    #[test]
    fn large_f32_tensors_map_and_the_rest_are_left_to_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let n = TAGGED_BYTES / 4 + 3;
        let big = (Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap() * 0.5).unwrap();
        let small = Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap();
        let tensors = HashMap::from([("a".to_string(), small), ("b".to_string(), big.clone())]);
        candle_core::safetensors::save(&tensors, &path).unwrap();
        // SAFETY: a test file nobody else writes.
        let st = unsafe { MmapedSafetensors::new(&path) }.unwrap();
        let start = st
            .tensors()
            .iter()
            .map(|(_, v)| v.data().as_ptr() as usize)
            .min()
            .unwrap();
        let file = MappedFile::open(&path, start).unwrap();
        let view = st.get("b").unwrap();
        let cpu = &Device::Cpu;
        let shape_n = [n];
        let read = |data, shape, stored, dtype| TensorRead {
            data,
            shape,
            stored: Some(stored),
            dtype,
            dev: cpu,
        };
        let got = file
            .tensor(&read(view.data(), &shape_n, DType::F32, DType::F32))
            .unwrap();
        assert_eq!(
            got.unwrap().to_vec1::<f32>().unwrap(),
            big.to_vec1::<f32>().unwrap()
        );
        let declined = |r: TensorRead| file.tensor(&r).unwrap().is_none();
        assert!(declined(read(
            view.data(),
            &shape_n,
            DType::F32,
            DType::F16
        )));
        assert!(declined(read(
            view.data(),
            &shape_n,
            DType::F16,
            DType::F32
        )));
        let view = st.get("a").unwrap();
        assert!(declined(read(view.data(), &[2], DType::F32, DType::F32)));
    }
}
