//! GGUF reading against gguf-py (tests/fixtures/make_gguf.py): every supported type dequantizes bit
//! for bit as `gguf.quants.dequantize` does, the tensor listing and metadata match what
//! `gguf.GGUFReader` reads, bad files (truncated, corrupt header, wrong architecture, unsupported
//! types) are `BadInput` naming the file, loading through the `VarBuilder` is lazy, and the
//! quantized-matmul path stays close to dequantize-then-matmul.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Module, Tensor};
use pallaidium::engines::nn::weights::gguf::{GgufFile, GgufWeights, NameMap, footprint};
use pallaidium::error::Error;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn tiny() -> PathBuf {
    dir().join("tiny-flux.gguf")
}

fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap()).unwrap()
}

fn references() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("reference.safetensors"), &Device::Cpu).unwrap()
}

/// The message of a BadInput, which must name `path`.
fn bad_input_naming(err: Error, path: &Path) -> String {
    let Error::BadInput { message } = err else {
        panic!("expected BadInput, got {err:?}");
    };
    assert!(
        message.contains(&path.display().to_string()),
        "{message} does not name {}",
        path.display()
    );
    message
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn gguf_every_type_dequantizes_bit_for_bit_as_gguf_py() {
    let file = GgufFile::open(&tiny()).unwrap();
    let refs = references();
    let manifest = manifest();
    let listed = manifest["tensors"].as_object().unwrap();
    assert_eq!(file.tensors().len(), listed.len());
    let mut types = std::collections::BTreeSet::new();
    for info in file.tensors() {
        let want = &listed[&info.name];
        assert_eq!(
            info.ggml.name,
            want["type"].as_str().unwrap(),
            "{}",
            info.name
        );
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.shape, shape, "{}", info.name);
        assert_eq!(info.bytes, want["bytes"].as_u64().unwrap(), "{}", info.name);
        let got = file.dequantize_f32(&info.name).unwrap();
        let reference = refs[&info.name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(got.iter().all(|v| !v.is_nan()), "{}: NaN", info.name);
        let (g, r) = (bits(&got), bits(&reference));
        let first = g.iter().zip(&r).position(|(a, b)| a != b);
        assert!(
            g.len() == r.len() && first.is_none(),
            "{} ({}): value {first:?} differs: {:?} vs gguf-py {:?}",
            info.name,
            info.ggml,
            first.map(|i| got[i]),
            first.map(|i| reference[i]),
        );
        types.insert(info.ggml.name);
    }
    let want: std::collections::BTreeSet<&str> = [
        "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K",
        "Q5_K", "Q6_K",
    ]
    .into_iter()
    .collect();
    assert_eq!(types, want);
}

#[test]
fn gguf_metadata_architecture_and_footprint() {
    let file = GgufFile::open(&tiny()).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.architecture(), Some("flux"));
    file.expect_architecture("flux").unwrap();
    let meta = &manifest()["metadata"];
    assert_eq!(
        file.metadata_str("general.name"),
        meta["general.name"].as_str()
    );
    assert!(matches!(file.metadata("flux.depth"), Some(Value::U32(2))));
    assert!(matches!(file.metadata("flux.guidance_scale"), Some(Value::F32(v)) if *v == 3.5));
    let Some(Value::Array(axes)) = file.metadata("flux.axes_dim") else {
        panic!("flux.axes_dim");
    };
    assert_eq!(axes.len(), 3);
    assert!(file.metadata_keys().contains(&"general.quantized_by"));

    let fp = footprint(&tiny()).unwrap();
    let listed = manifest()["tensors"].as_object().unwrap().clone();
    let stored: u64 = listed.values().map(|t| t["bytes"].as_u64().unwrap()).sum();
    let elements: u64 = listed
        .values()
        .map(|t| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product::<u64>()
        })
        .sum();
    assert_eq!(fp.stored, stored);
    assert_eq!(fp.dequantized(DType::F32), elements * 4);
    assert_eq!(fp.dequantized(DType::BF16), elements * 2);
    assert_eq!(fp.largest_dequantized(DType::F32), 6 * 256 * 4);
    assert!(fp.stored < fp.dequantized(DType::F16));
}

#[test]
fn gguf_wrong_architecture_is_bad_input_naming_both() {
    let path = tiny();
    let file = GgufFile::open(&path).unwrap();
    let msg = bad_input_naming(file.expect_architecture("t5encoder").unwrap_err(), &path);
    assert!(
        msg.contains("`flux`") && msg.contains("`t5encoder`"),
        "{msg}"
    );
    let err = GgufWeights::open(&path, Some("t5encoder"), DType::F32, &Device::Cpu, None)
        .err()
        .unwrap();
    bad_input_naming(err, &path);
}

#[test]
fn gguf_unsupported_types_are_refused_naming_file_tensor_and_type() {
    let path = dir().join("unsupported.gguf");
    // The file itself is valid: it opens, and its supported tensor reads.
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.dequantize_f32("ok.weight").unwrap().len(), 64);
    for (tensor, ty) in [
        ("iq4_nl.weight", "IQ4_NL"),
        ("q8_1.weight", "Q8_1"),
        ("q8_k.weight", "Q8_K"),
        ("tq2_0.weight", "TQ2_0"),
    ] {
        let msg = bad_input_naming(file.dequantize_f32(tensor).unwrap_err(), &path);
        assert!(
            msg.contains(tensor) && msg.contains(ty) && msg.contains("Q4_K, Q5_K, Q6_K"),
            "{msg}"
        );
        bad_input_naming(file.qtensor(tensor, &Device::Cpu).unwrap_err(), &path);
    }
    let msg = bad_input_naming(file.check_supported().unwrap_err(), &path);
    assert!(
        msg.contains("iq4_nl.weight") && msg.contains("tq2_0.weight"),
        "{msg}"
    );
    let err = GgufWeights::open(&path, Some("flux"), DType::F32, &Device::Cpu, None)
        .err()
        .unwrap();
    bad_input_naming(err, &path);
}

#[test]
fn gguf_truncated_and_corrupt_copies_are_bad_input_naming_the_file() {
    let bytes = std::fs::read(tiny()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, data).unwrap();
        path
    };
    // Cut inside the tensor data, inside the header, and to nothing.
    for (name, len) in [
        ("cut-data.gguf", bytes.len() - 100),
        ("cut-header.gguf", 200),
        ("empty.gguf", 0),
    ] {
        let path = write(name, &bytes[..len]);
        let msg = bad_input_naming(GgufFile::open(&path).err().unwrap(), &path);
        assert!(msg.contains("truncated"), "{msg}");
    }
    let mut magic = bytes.clone();
    magic[..4].copy_from_slice(b"GGML");
    let path = write("magic.gguf", &magic);
    bad_input_naming(GgufFile::open(&path).err().unwrap(), &path);
    // A tensor count of 2^40: refused before anything is allocated.
    let mut count = bytes.clone();
    count[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let path = write("count.gguf", &count);
    let msg = bad_input_naming(GgufFile::open(&path).err().unwrap(), &path);
    assert!(msg.contains("1099511627776 tensors"), "{msg}");
    let missing = bad_input_naming(
        GgufFile::open(&tiny())
            .unwrap()
            .dequantize_f32("nope")
            .unwrap_err(),
        &tiny(),
    );
    assert!(missing.contains("`nope` is missing"), "{missing}");
}

#[test]
fn gguf_var_builder_loads_lazily_with_a_name_map() {
    // Garbage over every tensor's bytes but one: getting that one still gives gguf-py's values,
    // and no other tensor is decoded.
    let file = GgufFile::open(&tiny()).unwrap();
    let keep = "blocks.q4_k.linear.weight";
    let mut bytes = std::fs::read(tiny()).unwrap();
    for t in file.tensors().iter().filter(|t| t.name != keep) {
        bytes[t.start as usize..(t.start + t.bytes) as usize].fill(0xFF);
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("garbage.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let names: NameMap = Arc::new(|name: &str| name.replace("diffusers.", "blocks."));
    let weights =
        GgufWeights::open(&path, Some("flux"), DType::F32, &Device::Cpu, Some(names)).unwrap();
    let vb = weights.vb().pp("diffusers.q4_k.linear");
    assert!(vb.contains_tensor("weight"));
    let got = vb.get((6, 256), "weight").unwrap();
    let want = &references()[keep];
    assert_eq!(
        bits(&got.flatten_all().unwrap().to_vec1::<f32>().unwrap()),
        bits(&want.flatten_all().unwrap().to_vec1::<f32>().unwrap())
    );
    assert_eq!(weights.file().tensors_read(), 1);
    // The quantized path through the same name map.
    let q = weights.qtensor("diffusers.q4_k.linear.weight").unwrap();
    assert_eq!(q.dtype(), candle_core::quantized::GgmlDType::Q4K);
    assert!(weights.qmatmul("diffusers.q4_k.linear.weight").is_ok());
    assert_eq!(weights.file().tensors_read(), 3);
    // A wrong shape or a missing tensor: BadInput naming the file, through `build`.
    let err = weights
        .build("transformer", |vb| {
            vb.get((256, 6), "diffusers.q4_k.linear.weight")
        })
        .err()
        .unwrap();
    let msg = bad_input_naming(err, &path);
    assert!(msg.contains("[6, 256]"), "{msg}");
    let err = weights
        .build("transformer", |vb| vb.get(3, "diffusers.none"))
        .err()
        .unwrap();
    bad_input_naming(err, &path);
    // f16 and bf16: the f32 values rounded as candle casts; stored F16 copied exactly.
    let half = GgufWeights::from_file(weights.file().clone(), DType::F16, &Device::Cpu, None);
    let h = half.vb().get((6, 256), keep).unwrap();
    assert_eq!(h.dtype(), DType::F16);
    let cast = want.to_dtype(DType::F16).unwrap();
    assert_eq!(
        h.flatten_all().unwrap().to_vec1::<half::f16>().unwrap(),
        cast.flatten_all().unwrap().to_vec1::<half::f16>().unwrap()
    );
}

#[test]
fn gguf_f16_and_bf16_loads_keep_stored_bits() {
    let file = GgufFile::open(&tiny()).unwrap();
    let refs = references();
    for (name, dtype) in [
        ("blocks.f16.linear.weight", DType::F16),
        ("blocks.bf16.linear.weight", DType::BF16),
        ("blocks.q8_0.linear.weight", DType::BF16),
    ] {
        let got = file.load(name, dtype, &Device::Cpu).unwrap();
        let want = refs[name].to_dtype(dtype).unwrap();
        let diff = (got.to_dtype(DType::F32).unwrap() - want.to_dtype(DType::F32).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }
}

#[test]
fn gguf_quantized_matmul_matches_dequantized_matmul() {
    // candle's CPU quantized matmul quantizes the activations (to Q8_0 or Q8_K blocks) before its
    // integer dot products, so it is close, not exact: within 2% of the output's largest value
    // (measured: at most 0.8%, Q4_K; F16 exactly, as candle dequantizes it).
    let file = GgufFile::open(&tiny()).unwrap();
    let refs = references();
    let x = (Tensor::arange(0f32, 3. * 256., &Device::Cpu).unwrap() * 0.173)
        .unwrap()
        .sin()
        .unwrap()
        .reshape((3, 256))
        .unwrap();
    for t in [
        "q4_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "f16",
    ] {
        let name = format!("blocks.{t}.linear.weight");
        let mm = file.qmatmul(&name, &Device::Cpu).unwrap();
        let got = mm.forward(&x).unwrap();
        let want = x.matmul(&refs[&name].t().unwrap()).unwrap();
        let scale = want
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let err = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(err <= 0.02 * scale, "{t}: {err} vs scale {scale}");
    }
}

#[test]
fn gguf_candle_content_reads_the_same_tensors_through_candle() {
    // What candle's quantized models (the prompt enhancer's qwen2/llama) would read after this
    // reader's checks.
    let file = GgufFile::open(&tiny()).unwrap();
    let content = file.candle_content().unwrap();
    assert_eq!(content.tensor_infos.len(), file.tensors().len());
    let mut reader = std::fs::File::open(tiny()).unwrap();
    let refs = references();
    for name in [
        "blocks.q4_k.linear.weight",
        "blocks.q8_0.narrow.weight",
        "final_layer.bias",
    ] {
        let q = content.tensor(&mut reader, name, &Device::Cpu).unwrap();
        let got = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        let want = refs[name].flatten_all().unwrap();
        assert_eq!(
            bits(&got.to_vec1::<f32>().unwrap()),
            bits(&want.to_vec1::<f32>().unwrap()),
            "{name}"
        );
    }
    let path = dir().join("unsupported.gguf");
    let err = GgufFile::open(&path)
        .unwrap()
        .candle_content()
        .err()
        .unwrap();
    let msg = bad_input_naming(err, &path);
    assert!(msg.contains("iq4_nl.weight"), "{msg}");
}
