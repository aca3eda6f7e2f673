#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{Conv3d, Conv3dConfig, conv3d_naive};
use crate::engines::nn::compare::max_rel_diff;
use crate::engines::nn::kernels::Kernels;

struct Case {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    y: Tensor,
    cfg: Conv3dConfig,
}

impl Case {
    fn conv(&self, kernels: Kernels) -> Conv3d {
        Conv3d::new(self.w.clone(), Some(self.b.clone()), self.cfg, kernels).unwrap()
    }
}

/// The cases of tests/fixtures/make_conv3d.py (PyTorch's conv3d outputs).
fn cases() -> Vec<Case> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conv3d/conv3d.safetensors");
    let all: HashMap<String, Tensor> = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let mut out = Vec::new();
    for i in 0.. {
        let Some(x) = all.get(&format!("case{i}.x")) else {
            break;
        };
        let get = |k: &str| all[&format!("case{i}.{k}")].clone();
        let c: Vec<i64> = get("cfg").to_vec1().unwrap();
        let u = |j: usize| c[j] as usize;
        out.push(Case {
            x: x.clone(),
            w: get("w"),
            b: get("b"),
            y: get("y"),
            cfg: Conv3dConfig {
                padding: [u(0), u(1), u(2)],
                stride: [u(3), u(4), u(5)],
                dilation: [u(6), u(7), u(8)],
                groups: u(9),
            },
        });
    }
    assert!(out.len() >= 8, "the fixture holds {} cases", out.len());
    out
}

#[test]
fn conv3d_matches_pytorch() {
    for (i, case) in cases().iter().enumerate() {
        for kernels in [Kernels::Ours, Kernels::Stock] {
            let conv = case.conv(kernels);
            let y = conv.forward(&case.x).unwrap();
            assert_eq!(y.dims(), case.y.dims(), "case {i} shape");
            let rel = max_rel_diff(&y, &case.y).unwrap();
            assert!(
                rel <= 1e-5,
                "case {i} ({:?}, {kernels:?}): rel diff {rel}",
                case.cfg
            );
        }
        // The input moves the output: a zero input leaves only the bias.
        let conv = case.conv(Kernels::Ours);
        let y0 = conv.forward(&case.x.zeros_like().unwrap()).unwrap();
        assert!(max_rel_diff(&y0, &case.y).unwrap() > 0.1, "case {i}");
    }
}

#[test]
fn conv3d_matches_the_naive_reference() {
    for (i, case) in cases().iter().enumerate() {
        let conv = case.conv(Kernels::Ours);
        let y = conv.forward(&case.x).unwrap();
        let naive = conv3d_naive(&case.x, &case.w, Some(&case.b), case.cfg).unwrap();
        let rel = max_rel_diff(&y, &naive).unwrap();
        assert!(
            rel <= 1e-5,
            "case {i}: rel diff {rel} against the naive loop"
        );
    }
}

#[test]
fn conv3d_in_f16_stays_close() {
    let case = &cases()[0];
    let conv = Conv3d::new(
        case.w.to_dtype(DType::F16).unwrap(),
        Some(case.b.to_dtype(DType::F16).unwrap()),
        case.cfg,
        Kernels::Ours,
    )
    .unwrap();
    let y = conv.forward(&case.x.to_dtype(DType::F16).unwrap()).unwrap();
    assert_eq!(y.dtype(), DType::F16);
    let rel = max_rel_diff(&y, &case.y).unwrap();
    assert!(rel <= 5e-3, "f16 rel diff {rel}");
}

#[test]
fn conv3d_rejects_what_it_cannot_do() {
    let w = Tensor::zeros((2, 2, 3, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let cfg = Conv3dConfig {
        stride: [1, 2, 1],
        ..Default::default()
    };
    let err = Conv3d::new(w.clone(), None, cfg, Kernels::Ours).unwrap_err();
    assert!(err.to_string().contains("height and width"), "{err}");
    let conv = Conv3d::new(w, None, Conv3dConfig::default(), Kernels::Ours).unwrap();
    let x = Tensor::zeros((1, 2, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let err = conv.forward(&x).unwrap_err();
    assert!(err.to_string().contains("fewer than"), "{err}");
}
