use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::*;
use crate::engines::nn::kernels::test_support::rel;

fn random_weights(shape: &RrdbShape) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    let mut add = |name: String, c_in: usize, c_out: usize| {
        let w = Tensor::randn(0f32, 0.25, (c_out, c_in, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, c_out, &dev).unwrap();
        t.insert(format!("{name}.weight"), w);
        t.insert(format!("{name}.bias"), b);
    };
    let (nf, gc) = (shape.features, shape.grow);
    let c0 = shape.in_channels * shape.unshuffle * shape.unshuffle;
    add("conv_first".into(), c0, nf);
    for n in 0..shape.blocks {
        for k in 1..=3 {
            for i in 0..5 {
                let c_out = if i == 4 { nf } else { gc };
                add(format!("body.{n}.rdb{k}.conv{}", i + 1), nf + i * gc, c_out);
            }
        }
    }
    add("conv_body".into(), nf, nf);
    for i in 1..=shape.upsamples {
        add(format!("conv_up{i}"), nf, nf);
    }
    add("conv_hr".into(), nf, nf);
    add("conv_last".into(), nf, shape.out_channels);
    t
}

#[test]
fn fused_cpu_path_matches_candles_tensor_ops() {
    let cancel = CancelToken::new();
    for unshuffle in [1, 2] {
        let shape = RrdbShape {
            in_channels: 3,
            out_channels: 3,
            features: 8,
            grow: 4,
            blocks: 2,
            upsamples: 2,
            unshuffle,
        };
        let weights = random_weights(&shape);
        let ours = RrdbNet::new(shape.clone(), &weights, Kernels::Ours).unwrap();
        // The same weights through candle's conv2d, cat and element-wise ops.
        let stock = RrdbNet::new(shape.clone(), &weights, Kernels::Stock).unwrap();
        let x = Tensor::rand(0f32, 1., (1, 3, 10, 14), &Device::Cpu).unwrap();
        let fused = ours.forward(&x, &cancel).unwrap();
        let want = stock.forward(&x, &cancel).unwrap();
        let s = 4 / unshuffle;
        assert_eq!(fused.dims(), &[1, 3, 10 * s, 14 * s]);
        assert_eq!(fused.dims(), want.dims());
        assert!(rel(&fused, &want) < 1e-5, "{}", rel(&fused, &want));
        // Our tensor path (batches, CUDA) agrees too, and the input matters.
        let tensors = ours.forward_tensors(&x, &cancel).unwrap();
        assert!(rel(&tensors, &want) < 1e-5);
        let other = ours.forward(&(&x * 0.5).unwrap(), &cancel).unwrap();
        assert!(rel(&other, &want) > 1e-2);
    }
}
