use candle_core::{DType, Device, Tensor};

use super::packed::{WATCHED_QUERY_CHUNK, score_dtype};
use super::*;
use crate::engines::progress::CancelToken;

fn random(shape: (usize, usize, usize), seed: f64) -> Tensor {
    // Deterministic pseudo-random values without a global RNG.
    let n = shape.0 * shape.1 * shape.2;
    let data: Vec<f32> = (0..n)
        .map(|i| (((i as f64 + seed) * 12.9898).sin() * 43758.5453).fract() as f32 * 2.0)
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    crate::engines::nn::compare::max_rel_diff(a, b).unwrap()
}

/// Attention written out loop by loop, independent of the tensor code under test.
fn naive(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Tensor {
    let (b, nq, inner) = q.dims3().unwrap();
    let nk = k.dim(1).unwrap();
    let d = inner / heads;
    let (q, k, v) = (
        q.to_vec3::<f32>().unwrap(),
        k.to_vec3::<f32>().unwrap(),
        v.to_vec3::<f32>().unwrap(),
    );
    let mut out = vec![0f32; b * nq * inner];
    for bi in 0..b {
        for h in 0..heads {
            for i in 0..nq {
                let s: Vec<f32> = (0..nk)
                    .map(|j| {
                        (0..d)
                            .map(|c| q[bi][i][h * d + c] * k[bi][j][h * d + c])
                            .sum::<f32>()
                            / (d as f32).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f32 = e.iter().sum();
                for c in 0..d {
                    out[(bi * nq + i) * inner + h * d + c] =
                        (0..nk).map(|j| e[j] / z * v[bi][j][h * d + c]).sum();
                }
            }
        }
    }
    Tensor::from_vec(out, (b, nq, inner), &Device::Cpu).unwrap()
}

#[test]
fn watched_attention_matches_and_stops_when_cancelled() {
    let n = 2 * WATCHED_QUERY_CHUNK + 100;
    let q = random((1, n, 8), 1.0);
    let k = random((1, 64, 8), 2.0);
    let v = random((1, 64, 8), 3.0);
    let token = CancelToken::new();
    let whole = attention_with(&q, &k, &v, 2, false, AttentionMode::Auto, true).unwrap();
    let watched =
        attention_watched(&q, &k, &v, 2, false, AttentionMode::Auto, true, &token).unwrap();
    assert!(max_rel_diff(&watched, &whole) < 1e-6);
    token.cancel();
    let err =
        attention_watched(&q, &k, &v, 2, false, AttentionMode::Auto, true, &token).unwrap_err();
    assert!(crate::engines::progress::is_cancellation(&err), "{err}");
}

#[test]
fn full_attention_matches_a_naive_loop() {
    let (q, k, v) = (
        random((2, 9, 12), 1.),
        random((2, 5, 12), 2.),
        random((2, 5, 12), 3.),
    );
    let ours = attention_with(&q, &k, &v, 3, false, AttentionMode::Full, true).unwrap();
    assert!(max_rel_diff(&ours, &naive(&q, &k, &v, 3)) < 1e-5);
}

#[test]
fn chunked_attention_equals_full_for_every_chunk_size() {
    let (q, k, v) = (
        random((2, 67, 32), 4.),
        random((2, 67, 32), 5.),
        random((2, 67, 32), 6.),
    );
    let full = attention_with(&q, &k, &v, 4, false, AttentionMode::Full, false).unwrap();
    for chunk in [1, 7, 16, 66, 67, 500] {
        let sliced = attention_with(
            &q,
            &k,
            &v,
            4,
            false,
            AttentionMode::Sliced { query_chunk: chunk },
            false,
        )
        .unwrap();
        assert!(max_rel_diff(&sliced, &full) < 1e-6, "chunk {chunk}");
    }
    let auto = attention_with(&q, &k, &v, 4, false, AttentionMode::Auto, false).unwrap();
    assert!(max_rel_diff(&auto, &full) < 1e-6);
    // The fused CPU path (the default) agrees with the plain one.
    let fused = attention_with(&q, &k, &v, 4, false, AttentionMode::Auto, true).unwrap();
    assert!(max_rel_diff(&fused, &full) < 1e-5);
}

#[test]
fn auto_mode_bounds_the_score_chunk() {
    let chunk = AttentionMode::Auto.query_chunk(16, 4096, 4096, 4, &Device::Cpu);
    assert!((1..4096).contains(&chunk));
    assert!(16 * chunk * 4096 * 4 <= 64 << 20);
    assert_eq!(
        AttentionMode::Auto.query_chunk(16, 4096, 77, 4, &Device::Cpu),
        4096
    );
    // Half-size scores get chunks twice as long.
    assert_eq!(
        AttentionMode::Auto.query_chunk(16, 4096, 4096, 2, &Device::Cpu),
        2 * chunk
    );
    assert_eq!(
        AttentionMode::from_slice(Some(0)),
        AttentionMode::Sliced { query_chunk: 1 }
    );
}

#[test]
fn scores_stay_f32_on_the_cpu_and_when_upcast() {
    let cpu = Device::Cpu;
    for fast in [false, true] {
        assert_eq!(score_dtype(DType::F32, false, fast, &cpu), DType::F32);
        assert_eq!(score_dtype(DType::F32, true, fast, &cpu), DType::F32);
        assert_eq!(score_dtype(DType::F16, false, fast, &cpu), DType::F32);
        assert_eq!(score_dtype(DType::BF16, false, fast, &cpu), DType::F32);
    }
}

#[test]
fn half_precision_inputs_softmax_in_f32() {
    let (q, k, v) = (
        random((1, 33, 16), 7.),
        random((1, 33, 16), 8.),
        random((1, 33, 16), 9.),
    );
    let full = attention_with(&q, &k, &v, 2, false, AttentionMode::Full, true).unwrap();
    let half = |t: &Tensor| t.to_dtype(DType::F16).unwrap();
    let ours = attention_with(
        &half(&q),
        &half(&k),
        &half(&v),
        2,
        true,
        AttentionMode::Sliced { query_chunk: 5 },
        true,
    )
    .unwrap();
    assert_eq!(ours.dtype(), DType::F16);
    assert!(max_rel_diff(&ours.to_dtype(DType::F32).unwrap(), &full) < 5e-3);
}
