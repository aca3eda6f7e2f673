//! `--init-latents FILE`: initial latents from NumPy `.npy` or `.safetensors`, as diffusers'
//! `latents=` argument takes them, checked against the job's size and batch.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

fn bad(path: &Path, what: impl std::fmt::Display) -> crate::Error {
    crate::Error::bad_input(format!("--init-latents {}: {what}", path.display()))
}

/// Reads latents of shape (1 or batch, 4, height/8, width/8) as f32 on the CPU.
pub fn read_latents(path: &Path, batch: u32, width: u32, height: u32) -> crate::Result<Tensor> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !path.is_file() {
        return Err(bad(path, "no such file"));
    }
    let tensor = match ext.as_deref() {
        Some("npy") => Tensor::read_npy(path).map_err(|e| {
            bad(
                path,
                format!("not a readable .npy array ({e}); save it with numpy.save"),
            )
        })?,
        Some("safetensors") => {
            let tensors = candle_core::safetensors::load(path, &Device::Cpu)
                .map_err(|e| bad(path, format!("not a readable safetensors file ({e})")))?;
            let mut tensors: Vec<_> = tensors.into_iter().collect();
            match tensors.len() {
                1 => tensors.remove(0).1,
                _ => tensors
                    .into_iter()
                    .find(|(name, _)| name == "latents")
                    .map(|(_, t)| t)
                    .ok_or_else(|| bad(path, "holds several tensors and none named `latents`"))?,
            }
        }
        _ => return Err(bad(path, "use a .npy or .safetensors file")),
    };
    if !matches!(
        tensor.dtype(),
        DType::F32 | DType::F64 | DType::F16 | DType::BF16
    ) {
        return Err(bad(
            path,
            format!(
                "holds {:?} values; latents must be floating point",
                tensor.dtype()
            ),
        ));
    }
    let dims = tensor.dims().to_vec();
    let (lh, lw) = ((height / 8) as usize, (width / 8) as usize);
    let batch = batch as usize;
    let ok =
        matches!(dims.as_slice(), [b, 4, h, w] if (*b == 1 || *b == batch) && *h == lh && *w == lw);
    if !ok {
        return Err(bad(
            path,
            format!(
                "shape {dims:?} does not fit this job: expected [1, 4, {lh}, {lw}]{} \
                 for {width}x{height}",
                if batch > 1 {
                    format!(" or [{batch}, 4, {lh}, {lw}]")
                } else {
                    String::new()
                }
            ),
        ));
    }
    let tensor = tensor.to_dtype(DType::F32)?;
    let finite = tensor
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .all(|v| v.is_finite());
    if !finite {
        return Err(bad(path, "contains NaN or infinite values"));
    }
    Ok(tensor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latents(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::arange(0f32, n as f32, &Device::Cpu)
            .unwrap()
            .reshape(shape)
            .unwrap()
    }

    #[test]
    fn npy_and_safetensors_of_the_right_shape_load() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("l.npy");
        latents(&[1, 4, 8, 8]).write_npy(&npy).unwrap();
        let t = read_latents(&npy, 1, 64, 64).unwrap();
        assert_eq!(t.dims(), &[1, 4, 8, 8]);
        assert_eq!(t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[5], 5.0);

        let st = dir.path().join("l.safetensors");
        let f64s = latents(&[2, 4, 8, 16]).to_dtype(DType::F64).unwrap();
        candle_core::safetensors::save(&[("latents".to_string(), f64s)].into_iter().collect(), &st)
            .unwrap();
        let t = read_latents(&st, 2, 128, 64).unwrap();
        assert_eq!((t.dims(), t.dtype()), (&[2usize, 4, 8, 16][..], DType::F32));
    }

    #[test]
    fn wrong_shape_truncated_and_unknown_files_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("l.npy");
        latents(&[1, 4, 8, 8]).write_npy(&npy).unwrap();
        let err = read_latents(&npy, 1, 128, 64).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("expected [1, 4, 8, 16]"), "{err}");
        // batch 3 needs 1 or 3 in the first dimension
        latents(&[2, 4, 8, 8]).write_npy(&npy).unwrap();
        assert!(read_latents(&npy, 3, 64, 64).is_err());

        let bytes = std::fs::read(&npy).unwrap();
        std::fs::write(&npy, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(read_latents(&npy, 2, 64, 64).unwrap_err().exit_code(), 2);

        let txt = dir.path().join("l.txt");
        std::fs::write(&txt, "1 2 3").unwrap();
        assert!(
            read_latents(&txt, 1, 64, 64)
                .unwrap_err()
                .to_string()
                .contains(".npy")
        );
        assert!(read_latents(&dir.path().join("none.npy"), 1, 64, 64).is_err());
    }
}
