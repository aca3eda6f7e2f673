//! Device tests, ignored unless asked for (`cargo test --features cuda -- --ignored`, run on the
//! lent GPU; elsewhere they are reported as ignored, never as passed): our CUDA
//! convolution (tiled im2col, both of its gathers and both of its staging loads) against
//! candle's at shapes that reach every path, and the GEGLU with the projection's bias against
//! the separate add.

use candle_core::{DType, Device, Module, Tensor};

use crate::engines::nn::kernels::{
    Conv2d, GroupNorm, add_per_channel, geglu, linear, linear_geglu, test_support::rel,
};

/// The GPU; a test asked to run without one fails rather than passing unseen.
fn gpu() -> Device {
    Device::new_cuda(0).unwrap_or_else(|e| panic!("this device test needs a CUDA GPU: {e}"))
}

fn randn(shape: &[usize], dtype: DType, dev: &Device) -> Tensor {
    Tensor::randn(0f32, 1f32, shape, dev)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// `rel` of the two tensors taken in f32, whatever they are stored in.
fn rel_f32(a: &Tensor, b: &Tensor) -> f32 {
    rel(
        &a.to_dtype(DType::F32).unwrap(),
        &b.to_dtype(DType::F32).unwrap(),
    )
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn tiled_im2col_convolutions_match_candles() {
    let dev = gpu();
    // (batch, c_in, h, w, c_out, stride, padding): window gathers at stride 1 and 2 (output
    // widths a multiple of 8), the general gather (odd widths, padding 0 as the VAE encoder's
    // downsampling), rows staged element by element (w not a multiple of 8), several tiles.
    let shapes = [
        (2, 16, 24, 40, 8, 1, 1),
        (1, 8, 65, 64, 16, 2, 1),
        (2, 5, 13, 17, 7, 1, 1),
        (1, 8, 20, 20, 8, 2, 0),
        (2, 64, 96, 96, 32, 1, 1),
        (1, 3, 7, 130, 4, 1, 1),
    ];
    for dtype in [DType::F16, DType::F32] {
        for (b, c_in, h, w, c_out, stride, padding) in shapes {
            let x = randn(&[b, c_in, h, w], dtype, &dev);
            let weight = (randn(&[c_out, c_in, 3, 3], dtype, &dev) * 0.2).unwrap();
            let bias = randn(&[c_out], dtype, &dev);
            let cfg = candle_nn::Conv2dConfig {
                padding,
                stride,
                ..Default::default()
            };
            let conv = Conv2d::from_candle(
                candle_nn::Conv2d::new(weight, Some(bias), cfg),
                crate::engines::nn::kernels::Kernels::Ours,
            );
            let ours = conv.forward_with(&x, true).unwrap();
            let stock = conv.forward_with(&x, false).unwrap();
            assert_eq!(ours.dims(), stock.dims());
            // f16 rounding; TF32 for f32 (PyTorch's default for convolutions).
            let r = rel_f32(&ours, &stock);
            assert!(r < 3e-3, "{dtype:?} {:?}: {r}", (b, c_in, h, w, stride));
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn geglu_with_the_projection_bias_matches_the_separate_add() {
    let dev = gpu();
    for dtype in [DType::F16, DType::F32] {
        let x = randn(&[2, 77, 64], dtype, &dev);
        let proj = candle_nn::Linear::new(
            (randn(&[512, 64], dtype, &dev) * 0.125).unwrap(),
            Some(randn(&[512], dtype, &dev)),
        );
        let fused = linear_geglu(&proj, &x, true).unwrap();
        let separate = geglu(&proj.forward(&x).unwrap(), true).unwrap();
        assert_eq!(fused.dims(), &[2, 77, 256]);
        let r = rel_f32(&fused, &separate);
        assert!(r < 1e-3, "{dtype:?}: {r}");
        // An odd half width takes the element-by-element path.
        let odd = randn(&[3, 5, 74], dtype, &dev);
        let ours = geglu(&odd, true).unwrap();
        let stock = geglu(&odd, false).unwrap();
        let r = rel_f32(&ours, &stock);
        assert!(r < 1e-3, "{dtype:?} odd: {r}");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn bias_broadcasts_match_candles_in_vectors_and_elements() {
    let dev = gpu();
    for dtype in [DType::F16, DType::F32] {
        // A Linear's bias along columns: 512 outputs (vectors), 74 (element by element).
        for out in [512, 74] {
            let x = randn(&[2, 33, 64], dtype, &dev);
            let layer = candle_nn::Linear::new(
                (randn(&[out, 64], dtype, &dev) * 0.125).unwrap(),
                Some(randn(&[out], dtype, &dev)),
            );
            let ours = linear(&layer, &x, true).unwrap();
            let stock = layer.forward(&x).unwrap();
            assert_eq!(ours.dims(), stock.dims());
            let r = rel_f32(&ours, &stock);
            assert!(r < 2e-3, "{dtype:?} linear {out}: {r}");
        }
        // A per-(batch, channel) value over the positions: 16x24 (vectors), 5x7 (elements).
        for (h, w) in [(16, 24), (5, 7)] {
            let x = randn(&[2, 6, h, w], dtype, &dev);
            let values = randn(&[2, 6], dtype, &dev);
            let ours = add_per_channel(&x, &values, true).unwrap();
            let stock = add_per_channel(&x, &values, false).unwrap();
            let r = rel_f32(&ours, &stock);
            let tol = if dtype == DType::F32 { 1e-6 } else { 1e-3 };
            assert!(r < tol, "{dtype:?} per channel {h}x{w}: {r}");
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn group_norm_vector_and_scalar_paths_match_candles() {
    let dev = gpu();
    // (batch, channels, h, w, groups): 16-byte vectors (spatial a multiple of 8), and the
    // element-by-element path (odd spatial size), with and without SiLU.
    for dtype in [DType::F16, DType::F32] {
        for (b, c, h, w, groups) in [(2, 64, 16, 24, 32), (1, 12, 7, 9, 4), (2, 32, 64, 64, 8)] {
            let x = ((randn(&[b, c, h, w], dtype, &dev) * 2.0).unwrap() + 3.0).unwrap();
            let weight = ((randn(&[c], DType::F32, &dev) * 0.1).unwrap() + 1.0)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let bias = (randn(&[c], dtype, &dev) * 0.1).unwrap();
            let gn = GroupNorm::new(weight, bias, c, groups, 1e-5).unwrap();
            for silu in [false, true] {
                let ours = gn.forward_with(&x, silu, true).unwrap();
                let stock = gn.forward_with(&x, silu, false).unwrap();
                let r = rel_f32(&ours, &stock);
                let tol = if dtype == DType::F32 { 1e-5 } else { 3e-3 };
                assert!(r < tol, "{dtype:?} {:?} silu {silu}: {r}", (b, c, h, w));
            }
        }
    }
}
