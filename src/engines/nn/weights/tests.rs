//! The loader's tests: file layouts, mapped and copied CPU tensors, the staged GPU upload, bad input.

#![allow(clippy::unwrap_used)]

use super::*;

fn write_tiny(dir: &Path, file: &str) -> PathBuf {
    let path = dir.join(file);
    let t = Tensor::arange(0f32, 6., &Device::Cpu)
        .unwrap()
        .reshape((2, 3))
        .unwrap();
    candle_core::safetensors::save(&HashMap::from([("w".to_string(), t)]), &path).unwrap();
    path
}

#[test]
fn loads_a_tensor_and_prefers_the_fp16_variant_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path(), "model.safetensors");
    let w = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F32,
        true,
        Default::default(),
    )
    .unwrap();
    assert!(w.files()[0].ends_with("model.safetensors"));
    let t = w.vb().get((2, 3), "w").unwrap();
    assert_eq!(t.to_vec2::<f32>().unwrap()[1], vec![3., 4., 5.]);
    write_tiny(dir.path(), "diffusion_pytorch_model.fp16.safetensors");
    let w = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F32,
        true,
        Default::default(),
    )
    .unwrap();
    assert!(w.files()[0].ends_with("diffusion_pytorch_model.fp16.safetensors"));
    let w = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F32,
        false,
        Default::default(),
    )
    .unwrap();
    assert!(w.files()[0].ends_with("model.safetensors"));
}

#[test]
fn large_f32_tensors_are_mapped_or_copied_over_the_threads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let n = pages::PARALLEL_COPY_BYTES / 4 * 3 + 7;
    let t = (Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap() * 0.37)
        .unwrap()
        .sin()
        .unwrap();
    // A second, smaller tensor (mapped too) and a tiny one (copied) at odd offsets.
    let mid = (Tensor::arange(0f32, 20_001., &Device::Cpu).unwrap() * 1.5).unwrap();
    let tiny = Tensor::new(&[3f32, 4.], &Device::Cpu).unwrap();
    let path = dir.path().join("model.safetensors");
    let all = HashMap::from([
        ("big".to_string(), t.clone()),
        ("mid".to_string(), mid.clone()),
        ("tiny".to_string(), tiny.clone()),
    ]);
    candle_core::safetensors::save(&all, &path).unwrap();
    for map in [true, false] {
        let w = Weights::open_with(dir.path(), &Device::Cpu, DType::F32, false, map, None).unwrap();
        let got = w.vb().get(n, "big").unwrap();
        assert_eq!(got.to_vec1::<f32>().unwrap(), t.to_vec1::<f32>().unwrap());
        let got = w.vb().get(20_001, "mid").unwrap();
        assert_eq!(got.to_vec1::<f32>().unwrap(), mid.to_vec1::<f32>().unwrap());
        let got = w.vb().get(2, "tiny").unwrap();
        assert_eq!(got.to_vec1::<f32>().unwrap(), vec![3., 4.]);
        // Used after the loader is gone (the mapping belongs to the tensor).
        drop(w);
        assert_eq!((got.sum_all().unwrap().to_scalar::<f32>().unwrap()), 7.);
    }
    // Converted to another dtype, it goes through candle's path and still arrives.
    let w16 = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F16,
        false,
        Default::default(),
    )
    .unwrap();
    assert_eq!(w16.vb().get(n, "big").unwrap().dtype(), DType::F16);
}

/// A device test (`cargo test --features cuda -- --ignored` on a GPU): the staged upload gives
/// exactly what candle's upload and device cast give.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs a CUDA GPU"]
fn staged_upload_matches_candles_upload_and_cast() {
    let gpu =
        Device::new_cuda(0).unwrap_or_else(|e| panic!("this device test needs a CUDA GPU: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let n = (40 << 20) / 4 + 13; // more than one staging buffer
    let big = (Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap() * 0.173)
        .unwrap()
        .sin()
        .unwrap();
    let big = (big * 3000.0).unwrap();
    let small = Tensor::new(&[1.5f32, -2.25, 65519.0, 1e-8], &Device::Cpu).unwrap();
    let all = HashMap::from([("big".to_string(), big), ("small".to_string(), small)]);
    candle_core::safetensors::save(&all, dir.path().join("model.safetensors")).unwrap();
    for dtype in [DType::F16, DType::BF16, DType::F32] {
        let staged = Weights::open_with(dir.path(), &gpu, dtype, false, true, None).unwrap();
        let stock = Weights::open_with(dir.path(), &gpu, dtype, false, false, None).unwrap();
        for (name, len) in [("big", n), ("small", 4)] {
            let a = staged.vb().get(len, name).unwrap();
            let b = stock.vb().get(len, name).unwrap();
            assert_eq!(a.dtype(), dtype);
            let a = a.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
            let b = b.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{name} {dtype:?}"
            );
        }
    }
}

#[test]
fn truncated_file_is_bad_input_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tiny(dir.path(), "model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let err = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F32,
        false,
        Default::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    let err = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F32,
        false,
        Default::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn wrong_shape_and_missing_tensor_are_bad_input_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path(), "model.safetensors");
    let w = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F32,
        false,
        Default::default(),
    )
    .unwrap();
    let err = w
        .build("test model", |vb| vb.get((3, 2), "w"))
        .err()
        .unwrap();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("`w`") && msg.contains("[2, 3]"), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    let err = w
        .build("test model", |vb| vb.get((2, 3), "absent"))
        .err()
        .unwrap();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("`absent`"), "{err}");
}

#[test]
fn running_out_of_device_memory_while_loading_says_so_instead_of_blaming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path(), "model.safetensors");
    let w = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F32,
        false,
        Default::default(),
    )
    .unwrap();
    let oom =
        candle_core::Error::Msg("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into());
    let err = w.build("UNet", |_| Err::<(), _>(oom)).err().unwrap();
    assert_eq!(err.exit_code(), 1);
    let msg = err.to_string();
    assert!(
        msg.contains("not enough device memory to load the UNet"),
        "{msg}"
    );
    assert!(
        msg.contains("--dtype f16") && !msg.contains("do not match"),
        "{msg}"
    );
}

#[test]
fn pickles_are_refused_with_the_conversion_recipe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("diffusion_pytorch_model.bin"), b"pickle").unwrap();
    let err = Weights::open(
        dir.path(),
        &Device::Cpu,
        DType::F32,
        false,
        Default::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("safe_serialization=True"), "{msg}");
    let empty = tempfile::tempdir().unwrap();
    let err = Weights::open(
        empty.path(),
        &Device::Cpu,
        DType::F32,
        false,
        Default::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.exit_code(), 2);
}
