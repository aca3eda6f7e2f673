//! `--init-latents FILE`: initial latents from NumPy `.npy` or `.safetensors`, as diffusers'
//! `latents=` argument takes them, checked against the job's size and batch.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

mod npy_header;

fn bad(path: &Path, what: impl std::fmt::Display) -> crate::Error {
    crate::Error::bad_input(format!("--init-latents {}: {what}", path.display()))
}

/// Reads latents of shape (1 or batch, 4, height/8, width/8) as f32 on the CPU. The shape is
/// read from the file's header and checked against the job before any data is allocated, so a
/// header claiming petabytes is refused, not allocated.
pub fn read_latents(
    path: &Path,
    batch: u32,
    channels: usize,
    width: u32,
    height: u32,
) -> crate::Result<Tensor> {
    read_checked(path, Expected::new(batch, channels, width, height))
}

/// Reads video latents of shape (1, channels, latent_frames, height/ratio, width/ratio) as f32
/// on the CPU (diffusers' 5-D noise; `ratio` the VAE's spatial compression), checked as
/// `read_latents` checks images'.
pub fn read_video_latents(
    path: &Path,
    (channels, latent_frames): (usize, usize),
    (width, height): (u32, u32),
    ratio: u32,
) -> crate::Result<Tensor> {
    let mut expect = Expected::new(1, channels, width, height);
    expect.frames = Some(latent_frames);
    expect.ratio = ratio.max(1);
    read_checked(path, expect)
}

fn read_checked(path: &Path, expect: Expected) -> crate::Result<Tensor> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !path.is_file() {
        return Err(bad(path, "no such file"));
    }
    let tensor = match ext.as_deref() {
        Some("npy") => {
            let header = npy_header::read(path)
                .map_err(|why| bad(path, format!("{why}; save it with numpy.save")))?;
            expect.check(path, header.shape.as_slice())?;
            if header.fortran_order || !matches!(header.descr.as_str(), "<f2" | "<f4" | "<f8") {
                return Err(bad(
                    path,
                    format!(
                        "holds `{}`{} values; latents must be little-endian float16/32/64 in C \
                         order (numpy.save of a float32 array)",
                        header.descr,
                        if header.fortran_order {
                            " Fortran-ordered"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            Tensor::read_npy(path).map_err(|e| {
                bad(
                    path,
                    format!("not a readable .npy array ({e}); save it with numpy.save"),
                )
            })?
        }
        Some("safetensors") => read_safetensors(path, &expect)?,
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
    expect.check(path, tensor.dims())?;
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

/// The shapes a job accepts: (1 or batch, 4, height/8, width/8).
struct Expected {
    batch: usize,
    /// 4 for Stable Diffusion, 16 for FLUX (the unpacked latents).
    channels: usize,
    width: u32,
    height: u32,
    /// Video: the latent frames (a 5-D shape).
    frames: Option<usize>,
    /// Pixels per latent on each side.
    ratio: u32,
}

impl Expected {
    fn new(batch: u32, channels: usize, width: u32, height: u32) -> Self {
        Self {
            batch: batch as usize,
            channels,
            width,
            height,
            frames: None,
            ratio: 8,
        }
    }

    fn latent_side(&self) -> (usize, usize) {
        (
            (self.height / self.ratio) as usize,
            (self.width / self.ratio) as usize,
        )
    }

    /// Bytes of the largest latents this job takes, stored as f64.
    fn max_bytes(&self) -> u64 {
        let (lh, lw) = self.latent_side();
        (self.batch.max(1) * self.channels * self.frames.unwrap_or(1) * lh * lw * 8) as u64
    }

    fn check<D: TryInto<usize> + Copy>(&self, path: &Path, dims: &[D]) -> crate::Result<()> {
        let dims: Vec<usize> = dims
            .iter()
            .map(|&d| d.try_into().unwrap_or(usize::MAX))
            .collect();
        let (lh, lw) = self.latent_side();
        let (batch, c) = (self.batch, self.channels);
        if let Some(f) = self.frames {
            if matches!(dims.as_slice(), [1, ch, fr, h, w] if *ch == c && *fr == f && *h == lh && *w == lw)
            {
                return Ok(());
            }
            return Err(bad(
                path,
                format!(
                    "shape {dims:?} does not fit this job: expected [1, {c}, {f}, {lh}, {lw}] \
                     for {} frames at {}x{}",
                    (f - 1) * 4 + 1,
                    self.width,
                    self.height
                ),
            ));
        }
        let ok = matches!(dims.as_slice(), [b, ch, h, w] if (*b == 1 || *b == batch) && *ch == c && *h == lh && *w == lw);
        if ok {
            return Ok(());
        }
        Err(bad(
            path,
            format!(
                "shape {dims:?} does not fit this job: expected [1, {c}, {lh}, {lw}]{} for {}x{}",
                if batch > 1 {
                    format!(" or [{batch}, {c}, {lh}, {lw}]")
                } else {
                    String::new()
                },
                self.width,
                self.height
            ),
        ))
    }
}

/// A `.safetensors` file's one tensor (or the one named `latents`), its shape checked from the
/// header before the data is read.
fn read_safetensors(path: &Path, expect: &Expected) -> crate::Result<Tensor> {
    let header = crate::models::safetensors_header::read_header(path)
        .map_err(|e| bad(path, format!("not a readable safetensors file ({e})")))?;
    let name = match header.tensors.len() {
        1 => header.tensors.keys().next().cloned(),
        _ => header.tensors.keys().find(|n| *n == "latents").cloned(),
    }
    .ok_or_else(|| bad(path, "holds several tensors and none named `latents`"))?;
    if let Some(info) = header.tensors.get(&name) {
        expect.check(path, info.shape.as_slice())?;
    }
    // Loading reads every tensor: a file far larger than this job's latents is not latents.
    if header.file_bytes > expect.max_bytes().saturating_mul(4) + (1 << 20) {
        return Err(bad(
            path,
            format!(
                "{} bytes, far more than this job's latents take; save only the latents",
                header.file_bytes
            ),
        ));
    }
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| bad(path, format!("not a readable safetensors file ({e})")))?;
    tensors
        .remove(&name)
        .ok_or_else(|| bad(path, format!("tensor `{name}` could not be read")))
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
        let t = read_latents(&npy, 1, 4, 64, 64).unwrap();
        assert_eq!(t.dims(), &[1, 4, 8, 8]);
        assert_eq!(t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[5], 5.0);

        let st = dir.path().join("l.safetensors");
        let f64s = latents(&[2, 4, 8, 16]).to_dtype(DType::F64).unwrap();
        candle_core::safetensors::save(&[("latents".to_string(), f64s)].into_iter().collect(), &st)
            .unwrap();
        let t = read_latents(&st, 2, 4, 128, 64).unwrap();
        assert_eq!((t.dims(), t.dtype()), (&[2usize, 4, 8, 16][..], DType::F32));
    }

    #[test]
    fn wrong_shape_truncated_and_unknown_files_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("l.npy");
        latents(&[1, 4, 8, 8]).write_npy(&npy).unwrap();
        let err = read_latents(&npy, 1, 4, 128, 64).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("expected [1, 4, 8, 16]"), "{err}");
        // batch 3 needs 1 or 3 in the first dimension
        latents(&[2, 4, 8, 8]).write_npy(&npy).unwrap();
        assert!(read_latents(&npy, 3, 4, 64, 64).is_err());

        let bytes = std::fs::read(&npy).unwrap();
        std::fs::write(&npy, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(read_latents(&npy, 2, 4, 64, 64).unwrap_err().exit_code(), 2);

        let txt = dir.path().join("l.txt");
        std::fs::write(&txt, "1 2 3").unwrap();
        assert!(
            read_latents(&txt, 1, 4, 64, 64)
                .unwrap_err()
                .to_string()
                .contains(".npy")
        );
        assert!(read_latents(&dir.path().join("none.npy"), 1, 4, 64, 64).is_err());
    }

    #[test]
    fn a_header_claiming_petabytes_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("huge.npy");
        let header =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 4, 100000, 100000), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        std::fs::write(&npy, bytes).unwrap();
        let err = read_latents(&npy, 1, 4, 64, 64).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("does not fit this job"), "{err}");

        let st = dir.path().join("huge.safetensors");
        let json =
            r#"{"latents":{"dtype":"F32","shape":[100000,4,100000,100000],"data_offsets":[0,16]}}"#;
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        std::fs::write(&st, bytes).unwrap();
        assert_eq!(read_latents(&st, 1, 4, 64, 64).unwrap_err().exit_code(), 2);

        // Right shape, but stored as big-endian doubles: refused, not misread.
        let be = dir.path().join("be.npy");
        let header = "{'descr': '>f8', 'fortran_order': False, 'shape': (1, 4, 8, 8), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 2048]);
        std::fs::write(&be, bytes).unwrap();
        let err = read_latents(&be, 1, 4, 64, 64).unwrap_err();
        assert!(err.to_string().contains(">f8"), "{err}");
    }
}
