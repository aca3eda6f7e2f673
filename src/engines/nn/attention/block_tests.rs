//! The per-head path, the block, the cache and the mask against plain formulas.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::*;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| ((((i as u64 + seed * 7919) as f64) * 12.9898).sin() * 43758.5453).fract() as f32)
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    crate::engines::nn::compare::max_abs_diff(a, b).unwrap().0
}

/// softmax(q kᵀ / √d + mask) v written with candle ops, f32, every head at once.
fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
    let d = q.dim(3).unwrap();
    let mut scores = (q.matmul(&k.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
    if let Some(m) = mask {
        scores = scores.broadcast_add(m).unwrap();
    }
    candle_nn::ops::softmax_last_dim(&scores)
        .unwrap()
        .matmul(v)
        .unwrap()
}

#[test]
fn every_numerics_variant_computes_attention() {
    let (q, k, v) = (
        random(&[2, 3, 5, 4], 1),
        random(&[2, 3, 5, 4], 2),
        random(&[2, 3, 5, 4], 3),
    );
    let mask = causal_mask(5, 0, f32::NEG_INFINITY, &Device::Cpu).unwrap();
    let want = reference(&q, &k, &v, Some(&mask));
    for scale_at in [ScaleAt::Queries, ScaleAt::Scores] {
        for precision in [
            Precision::Native,
            Precision::SoftmaxF32,
            Precision::ScoresF32,
        ] {
            for contiguous_keys in [false, true] {
                for split_heads_above in [None, Some(0)] {
                    let n = Numerics {
                        scale_at,
                        precision,
                        contiguous_keys,
                        split_heads_above,
                    };
                    let got = attend(&q, &k, &v, Some(&mask), &n).unwrap();
                    assert!(max_diff(&got, &want) < 1e-6, "{n:?}");
                }
            }
        }
    }
}

#[test]
fn grouped_key_value_heads_are_repeated() {
    let q = random(&[1, 4, 3, 2], 4);
    let (k, v) = (random(&[1, 2, 6, 2], 5), random(&[1, 2, 6, 2], 6));
    let repeat = |t: &Tensor| {
        let heads: Vec<Tensor> = (0..4).map(|h| t.narrow(1, h / 2, 1).unwrap()).collect();
        Tensor::cat(&heads, 1).unwrap()
    };
    let got = attend(&q, &k, &v, None, &Numerics::default()).unwrap();
    assert!(max_diff(&got, &reference(&q, &repeat(&k), &repeat(&v), None)) < 1e-6);
}

/// Query scale as BLIP wrote it (`1 / sqrt(d)`) and as the shared path does (`d^-0.5`): the f64
/// values differ for some d, never once rounded to the tensors' types.
#[test]
fn both_scale_formulas_round_to_the_same_factor() {
    for d in 1..=4096u32 {
        let (a, b) = ((d as f64).powf(-0.5), 1.0 / (d as f64).sqrt());
        assert_eq!(a as f32, b as f32, "d = {d}");
        assert_eq!(half::f16::from_f64(a), half::f16::from_f64(b), "d = {d}");
        assert_eq!(half::bf16::from_f64(a), half::bf16::from_f64(b), "d = {d}");
    }
}

#[test]
fn the_mask_hides_later_positions_only() {
    let rows = causal_mask(2, 3, f32::MIN, &Device::Cpu)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(rows[0], vec![0.0, 0.0, 0.0, 0.0, f32::MIN]);
    assert_eq!(rows[1], vec![0.0; 5]);
}

fn block(config: &AttentionConfig, weights: HashMap<String, Tensor>) -> MultiHeadAttention {
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    MultiHeadAttention::load(vb, config).unwrap()
}

fn separate_weights(hidden: usize, seed: u64) -> HashMap<String, Tensor> {
    let mut w = HashMap::new();
    for (i, name) in ["q_proj", "k_proj", "v_proj", "out_proj"]
        .iter()
        .enumerate()
    {
        let s = seed + 10 * i as u64;
        w.insert(format!("{name}.weight"), random(&[hidden, hidden], s));
        w.insert(format!("{name}.bias"), random(&[hidden], s + 1));
    }
    w
}

#[test]
fn a_cached_decoder_step_by_step_equals_one_masked_pass() {
    let config = AttentionConfig::new(8, 2);
    let attn = block(&config, separate_weights(8, 20));
    let xs = random(&[1, 5, 8], 7);
    let mask = causal_mask(5, 0, f32::NEG_INFINITY, &Device::Cpu).unwrap();
    let whole = attn.forward(&xs, Some(&mask)).unwrap();
    let mut cache = KvCache::new();
    let first = causal_mask(3, 0, f32::NEG_INFINITY, &Device::Cpu).unwrap();
    let mut parts = vec![
        attn.forward_cached(&xs.narrow(1, 0, 3).unwrap(), &mut cache, Some(&first))
            .unwrap(),
    ];
    for t in 3..5 {
        let step = xs.narrow(1, t, 1).unwrap();
        parts.push(attn.forward_cached(&step, &mut cache, None).unwrap());
    }
    assert_eq!(cache.len(), 5);
    assert!(max_diff(&Tensor::cat(&parts, 1).unwrap(), &whole) < 1e-6);
}

#[test]
fn a_fused_qkv_projection_equals_separate_ones() {
    let w = separate_weights(8, 40);
    let cat = |suffix: &str| {
        let parts: Vec<&Tensor> = ["q_proj", "k_proj", "v_proj"]
            .iter()
            .map(|n| &w[&format!("{n}.{suffix}")])
            .collect();
        Tensor::cat(&parts, 0).unwrap()
    };
    let fused_weights = HashMap::from([
        ("qkv.weight".to_string(), cat("weight")),
        ("qkv.bias".to_string(), cat("bias")),
        ("out_proj.weight".to_string(), w["out_proj.weight"].clone()),
        ("out_proj.bias".to_string(), w["out_proj.bias"].clone()),
    ]);
    let separate = block(&AttentionConfig::new(8, 4), w);
    let fused_config = AttentionConfig {
        fused_qkv: Some("qkv"),
        ..AttentionConfig::new(8, 4)
    };
    let fused = block(&fused_config, fused_weights);
    let xs = random(&[2, 6, 8], 9);
    let want = separate.forward(&xs, None).unwrap();
    assert!(max_diff(&fused.forward(&xs, None).unwrap(), &want) < 1e-6);
    assert!(fused.keys_values(&xs).is_err());
}

#[test]
fn heads_that_do_not_divide_are_refused() {
    let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
    assert!(MultiHeadAttention::load(vb.clone(), &AttentionConfig::new(10, 4)).is_err());
    let grouped = AttentionConfig {
        kv_heads: 3,
        ..AttentionConfig::new(8, 4)
    };
    assert!(MultiHeadAttention::load(vb, &grouped).is_err());
}
