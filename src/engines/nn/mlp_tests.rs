#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::*;
use crate::engines::nn::compare::max_abs_diff;

/// A deterministic (rows, cols) matrix with values in [-1, 1].
fn mat(rows: usize, cols: usize, phase: f32) -> Tensor {
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| (i as f32 * 0.37 + phase).sin())
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

fn vb(tensors: HashMap<String, Tensor>) -> VarBuilder<'static> {
    VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
}

fn close(a: &Tensor, b: &Tensor) {
    let (d, _) = max_abs_diff(a, b).unwrap();
    assert!(d < 1e-5, "{d}");
}

/// x W^T (+ b) by hand.
fn affine(xs: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let y = xs.matmul(&w.t().unwrap()).unwrap();
    match b {
        Some(b) => y.broadcast_add(b).unwrap(),
        None => y,
    }
}

#[test]
fn mlp_is_fc2_act_fc1_with_its_names_and_biases() {
    let (dim, hidden) = (4, 6);
    let xs = mat(3, dim, 0.1);
    let (w1, b1, w2, b2) = (
        mat(hidden, dim, 0.2),
        mat(1, hidden, 0.3).squeeze(0).unwrap(),
        mat(dim, hidden, 0.4),
        mat(1, dim, 0.5).squeeze(0).unwrap(),
    );
    let with_bias = Mlp::load(
        vb(HashMap::from([
            ("fc1.weight".into(), w1.clone()),
            ("fc1.bias".into(), b1.clone()),
            ("fc2.weight".into(), w2.clone()),
            ("fc2.bias".into(), b2.clone()),
        ])),
        &MlpConfig::new(dim, hidden, Activation::QuickGelu),
    )
    .unwrap();
    let h = Activation::QuickGelu
        .apply(&affine(&xs, &w1, Some(&b1)))
        .unwrap();
    close(
        &with_bias.forward(&xs).unwrap(),
        &affine(&h, &w2, Some(&b2)),
    );

    let diffusers = MlpConfig {
        bias: false,
        fc1: "net.0.proj",
        fc2: "net.2",
        ..MlpConfig::new(dim, hidden, Activation::GeluTanh)
    };
    let no_bias = Mlp::load(
        vb(HashMap::from([
            ("net.0.proj.weight".into(), w1.clone()),
            ("net.2.weight".into(), w2.clone()),
        ])),
        &diffusers,
    )
    .unwrap();
    let h = affine(&xs, &w1, None).gelu().unwrap();
    close(&no_bias.forward(&xs).unwrap(), &affine(&h, &w2, None));
}

#[test]
fn geglu_is_hidden_times_gelu_of_gate_on_either_kernels() {
    let (dim, inner) = (4, 5);
    let xs = mat(3, dim, 0.7).unsqueeze(0).unwrap();
    let (wp, bp, wo, bo) = (
        mat(inner * 2, dim, 0.8),
        mat(1, inner * 2, 0.9).squeeze(0).unwrap(),
        mat(dim, inner, 1.0),
        mat(1, dim, 1.1).squeeze(0).unwrap(),
    );
    let tensors = HashMap::from([
        ("net.0.proj.weight".into(), wp.clone()),
        ("net.0.proj.bias".into(), bp.clone()),
        ("net.2.weight".into(), wo.clone()),
        ("net.2.bias".into(), bo.clone()),
    ]);
    let x2 = xs.squeeze(0).unwrap();
    let proj = affine(&x2, &wp, Some(&bp));
    let (hidden, gate) = (
        proj.narrow(1, 0, inner).unwrap(),
        proj.narrow(1, inner, inner).unwrap(),
    );
    let want = affine(
        &(hidden * gate.gelu_erf().unwrap()).unwrap(),
        &wo,
        Some(&bo),
    );
    for k in [Kernels::Ours, Kernels::Stock] {
        let ff = Geglu::load(vb(tensors.clone()), dim, inner, k).unwrap();
        close(&ff.forward(&xs).unwrap().squeeze(0).unwrap(), &want);
    }
}

#[test]
fn gated_mlp_is_t5s_gated_gelu() {
    let (dim, hidden) = (4, 6);
    let xs = mat(5, dim, 1.2);
    let (w0, w1, wo) = (
        mat(hidden, dim, 1.3),
        mat(hidden, dim, 1.4),
        mat(dim, hidden, 1.5),
    );
    let ff = GatedMlp::load(
        vb(HashMap::from([
            ("wi_0.weight".into(), w0.clone()),
            ("wi_1.weight".into(), w1.clone()),
            ("wo.weight".into(), wo.clone()),
        ])),
        dim,
        hidden,
        Activation::GeluTanh,
        GatedMlp::T5_NAMES,
    )
    .unwrap();
    let gated = (affine(&xs, &w0, None).gelu().unwrap() * affine(&xs, &w1, None)).unwrap();
    close(&ff.forward(&xs).unwrap(), &affine(&gated, &wo, None));
}
