//! The GGUF reader on hand-made headers: every malformed count, length, dimension, offset and type
//! id is an error saying what is wrong (never a panic or a huge allocation); unaligned data and the
//! threaded decode give the same values. The fixture tests against gguf-py are in
//! tests/parity/parity_gguf.rs.

#![allow(clippy::unwrap_used)]

use super::*;
use candle_core::quantized::GgmlDType;

/// A GGUF written by hand: header fields, metadata entries and tensor infos as given.
struct Builder {
    version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    alignment: usize,
    data: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Self {
            version: 3,
            kv: Vec::new(),
            n_kv: 0,
            infos: Vec::new(),
            n_tensors: 0,
            alignment: 32,
            data: Vec::new(),
        }
    }

    fn string(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u64).to_le_bytes());
        buf.extend(s.as_bytes());
    }

    fn kv(mut self, key: &str, kind: u32, value: &[u8]) -> Self {
        Self::string(&mut self.kv, key);
        self.kv.extend(kind.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }

    fn kv_str(self, key: &str, value: &str) -> Self {
        let mut v = Vec::new();
        Self::string(&mut v, value);
        self.kv(key, 8, &v)
    }

    fn tensor(mut self, name: &str, ne: &[u64], id: u32, offset: u64) -> Self {
        Self::string(&mut self.infos, name);
        self.infos.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(id.to_le_bytes());
        self.infos.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    fn data(mut self, data: &[u8]) -> Self {
        self.data = data.to_vec();
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        while !out.len().is_multiple_of(self.alignment) {
            out.push(0);
        }
        out.extend(&self.data);
        out
    }

    fn parse(&self) -> std::result::Result<header::Header, String> {
        header::parse(&self.bytes())
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn err(b: &Builder) -> String {
    b.parse().err().unwrap()
}

#[test]
fn a_valid_header_reads_metadata_of_every_kind_and_tensor_ranges() {
    let mut array = 6u32.to_le_bytes().to_vec();
    array.extend(2u64.to_le_bytes());
    array.extend(f32_bytes(&[1.5, -2.0]));
    let b = Builder::new()
        .kv_str("general.architecture", "flux")
        .kv("a.u8", 0, &[7])
        .kv("a.i16", 3, &(-3i16).to_le_bytes())
        .kv("a.bool", 7, &[1])
        .kv("a.u64", 10, &5u64.to_le_bytes())
        .kv("a.f64", 12, &0.25f64.to_le_bytes())
        .kv("a.array", 9, &array)
        .tensor("w", &[4, 2], 0, 0)
        .tensor("b", &[4], 0, 32)
        .data(
            &[
                f32_bytes(&[1., 2., 3., 4., 5., 6., 7., 8.]),
                f32_bytes(&[9.; 4]),
            ]
            .concat(),
        );
    let h = b.parse().unwrap();
    assert_eq!(h.version, 3);
    assert!(matches!(h.metadata["a.u8"], Value::U8(7)));
    assert!(matches!(h.metadata["a.i16"], Value::I16(-3)));
    assert!(matches!(h.metadata["a.bool"], Value::Bool(true)));
    assert!(matches!(h.metadata["a.f64"], Value::F64(v) if v == 0.25));
    assert!(matches!(&h.metadata["a.array"], Value::Array(v) if v.len() == 2));
    assert_eq!(h.tensors[0].shape, vec![2, 4]);
    assert_eq!((h.tensors[0].bytes, h.tensors[1].bytes), (32, 16));
    assert_eq!(h.tensors[1].start - h.tensors[0].start, 32);
}

#[test]
fn malformed_headers_are_errors_saying_what_is_wrong() {
    let ok = || Builder::new().tensor("w", &[32], 0, 0).data(&[0; 128]);
    assert!(ok().parse().is_ok());
    let cases: Vec<(Builder, &str)> = vec![
        (Builder { version: 1, ..ok() }, "version 1"),
        (
            Builder {
                version: 3 << 24,
                ..ok()
            },
            "big-endian",
        ),
        (Builder { version: 9, ..ok() }, "unknown GGUF version 9"),
        (
            Builder {
                n_tensors: u64::MAX,
                ..ok()
            },
            "more than the file",
        ),
        (
            Builder {
                n_kv: 1 << 50,
                ..ok()
            },
            "more than the file",
        ),
        (Builder::new().tensor("w", &[32], 999, 0), "type id 999"),
        (
            Builder::new().tensor("w", &[u64::MAX, 16], 0, 0),
            "absurd dimensions",
        ),
        (
            Builder::new().tensor("w", &[1, 1, 1, 1, 1], 0, 0),
            "5 dimensions",
        ),
        (
            Builder::new().tensor("w", &[32], 0, 64).data(&[0; 128]),
            "past the end",
        ),
        (
            Builder::new().tensor("w", &[32], 0, u64::MAX - 31),
            "past the end",
        ),
        (
            Builder::new().tensor("w", &[32], 0, 4).data(&[0; 256]),
            "not a multiple of the alignment",
        ),
        (
            Builder::new().tensor("w", &[48, 2], 12, 0).data(&[0; 512]),
            "not a multiple of Q4_K's block",
        ),
        (ok().tensor("w", &[32], 0, 0), "`w` appears twice"),
        (ok().kv_str("k", "a").kv_str("k", "b"), "`k` appears twice"),
        (
            ok().kv("general.alignment", 4, &0u32.to_le_bytes()),
            "power of two",
        ),
        (
            ok().kv("general.alignment", 10, &32u64.to_le_bytes()),
            "power of two",
        ),
        (ok().kv("k", 7, &[2]), "a bool of value 2"),
        (ok().kv("k", 13, &[0]), "unknown value type 13"),
        (
            ok().kv("k", 8, &(1u64 << 60).to_le_bytes()),
            "past the end of the file",
        ),
    ];
    for (b, want) in cases {
        let got = err(&b);
        assert!(got.contains(want), "{got:?} should say {want:?}");
    }
    // An array claiming 2^40 values, and arrays nested past the limit.
    let mut huge = 0u32.to_le_bytes().to_vec();
    huge.extend((1u64 << 40).to_le_bytes());
    assert!(err(&ok().kv("k", 9, &huge)).contains("longer than the file"));
    let mut nested = Vec::new();
    for _ in 0..12 {
        nested.extend(9u32.to_le_bytes());
        nested.extend(1u64.to_le_bytes());
    }
    assert!(err(&ok().kv("k", 9, &nested)).contains("nested too deep"));
    // Every prefix of a valid file is an error, never a panic.
    let bytes = ok().kv_str("general.architecture", "flux").bytes();
    for len in 0..bytes.len() {
        assert!(
            header::parse(&bytes[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn unaligned_quantized_data_reads_as_aligned_data_does() {
    // general.alignment = 1 puts the Q4_K tensor at an odd address in the mapping.
    let x = (Tensor::arange(0f32, 512., &Device::Cpu).unwrap() * 0.37)
        .unwrap()
        .sin()
        .unwrap()
        .reshape((2, 256))
        .unwrap();
    let q = QTensor::quantize(&x, GgmlDType::Q4K).unwrap();
    let want = q.dequantize(&Device::Cpu).unwrap();
    let raw = q.data().unwrap().to_vec();
    let mut b = Builder::new()
        .kv("general.alignment", 4, &1u32.to_le_bytes())
        .tensor("q", &[256, 2], 12, 1)
        .data(&[&[0u8][..], &raw].concat());
    b.alignment = 1;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.gguf");
    std::fs::write(&path, b.bytes()).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert!(!(file.raw(&file.tensors()[0]).as_ptr() as usize).is_multiple_of(2));
    let got = file.load("q", DType::F32, &Device::Cpu).unwrap();
    let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    let again = file.qtensor("q", &Device::Cpu).unwrap();
    assert_eq!(again.data().unwrap().as_ref(), raw.as_slice());
    assert_eq!(file.tensors_read(), 2);
}

#[test]
fn threaded_decoding_equals_the_single_threaded_one_for_every_type() {
    // Arbitrary bytes (NaN and infinite scales included): the pieces must line up with blocks.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..2 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 32) as u8
        })
        .collect();
    for id in [0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 30] {
        let ty = GgmlType::from_id(id).unwrap();
        let blocks = (4 * 65536usize).div_ceil(ty.block) + 3;
        let data = &bytes[..blocks * ty.bytes];
        let mut threaded = vec![0f32; blocks * ty.block];
        assert!(dequant::to_f32(ty, data, &mut threaded));
        let mut single = vec![0f32; blocks * ty.block];
        for (o, d) in single.chunks_mut(ty.block).zip(data.chunks(ty.bytes)) {
            assert!(dequant::to_f32(ty, d, o));
        }
        let same = threaded
            .iter()
            .zip(&single)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{ty}");
    }
    // BF16 keeps a signalling NaN's payload, as gguf-py's `<< 16` does (half would quiet it).
    let bf16 = GgmlType::from_id(30).unwrap();
    let mut one = [0f32; 1];
    assert!(dequant::to_f32(bf16, &[0x81, 0x7F], &mut one));
    assert_eq!(one[0].to_bits(), 0x7F81_0000);
    // Unsupported types and mismatched lengths decode nothing.
    let iq4 = GgmlType::from_id(20).unwrap();
    assert!(!dequant::to_f32(iq4, &bytes[..18], &mut [0f32; 32]));
    let q8 = GgmlType::from_id(8).unwrap();
    assert!(!dequant::to_f32(q8, &bytes[..34], &mut [0f32; 31]));
}

#[test]
fn open_refuses_missing_short_and_corrupt_files_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.gguf");
    let short = dir.path().join("short.gguf");
    std::fs::write(&short, b"GGUF").unwrap();
    let zero_align = dir.path().join("align.gguf");
    let b = Builder::new().kv("general.alignment", 4, &0u32.to_le_bytes());
    std::fs::write(&zero_align, b.bytes()).unwrap();
    for path in [missing, short, zero_align] {
        let Err(Error::BadInput { message }) = GgufFile::open(&path) else {
            panic!("{} opened", path.display());
        };
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}

#[test]
fn architecture_checks_name_what_was_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, b: Builder| {
        let path = dir.path().join(name);
        std::fs::write(&path, b.bytes()).unwrap();
        GgufFile::open(&path).unwrap()
    };
    let none = write(
        "none.gguf",
        Builder::new().tensor("w", &[8], 0, 0).data(&[0; 32]),
    );
    assert_eq!(none.architecture(), None);
    let Err(Error::BadInput { message }) = none.expect_architecture("flux") else {
        panic!("accepted");
    };
    assert!(message.contains("none.gguf") && message.contains("without general.architecture"));
    let t5 = write(
        "t5.gguf",
        Builder::new().kv_str("general.architecture", "t5encoder"),
    );
    t5.expect_architecture("t5encoder").unwrap();
    let Err(Error::BadInput { message }) = t5.expect_architecture("flux") else {
        panic!("accepted");
    };
    assert!(
        message.contains("t5.gguf")
            && message.contains("`t5encoder`")
            && message.contains("`flux`")
    );
    assert!(t5.tensors().is_empty());
    assert_eq!(t5.footprint().stored, 0);
}
