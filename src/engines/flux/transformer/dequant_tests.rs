use super::*;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

fn sample(n: usize) -> Tensor {
    Tensor::arange(0f32, n as f32, &Device::Cpu)
        .unwrap()
        .affine(0.37, -11.0)
        .unwrap()
        .sin()
        .unwrap()
        .affine(0.05, 0.01)
        .unwrap()
        .reshape((4, n / 4))
        .unwrap()
}

fn ours_and_ggml(ty: GgmlDType, name: &str) -> (Vec<f32>, Vec<f32>) {
    let q = QTensor::quantize(&sample(4 * 512), ty).unwrap();
    let exact = q
        .dequantize(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let data = q.data().unwrap();
    let mut ours = vec![0f32; exact.len()];
    dequantize(name, &data, &mut ours).unwrap();
    (ours, exact)
}

#[test]
fn every_type_is_ggmls_value_up_to_f16_rounding() {
    for (ty, name) in [
        (GgmlDType::Q4_0, "Q4_0"),
        (GgmlDType::Q4_1, "Q4_1"),
        (GgmlDType::Q5_0, "Q5_0"),
        (GgmlDType::Q5_1, "Q5_1"),
        (GgmlDType::Q8_0, "Q8_0"),
        (GgmlDType::Q2K, "Q2_K"),
        (GgmlDType::Q3K, "Q3_K"),
        (GgmlDType::Q4K, "Q4_K"),
        (GgmlDType::Q5K, "Q5_K"),
        (GgmlDType::Q6K, "Q6_K"),
    ] {
        let (ours, exact) = ours_and_ggml(ty, name);
        let peak = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = ours
            .iter()
            .zip(&exact)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // A few f16 roundings of values up to `peak`: well under 1e-2 of it, never a layout
        // error (which would be of the order of `peak`).
        assert!(worst <= peak * 4e-3, "{name}: {worst} vs peak {peak}");
    }
}

#[test]
fn single_product_types_are_ggmls_value_rounded_to_f16() {
    // d * q is exact in f32 (11 x 8 bits): diffusers' f16 product is that, rounded once.
    for (ty, name) in [
        (GgmlDType::Q8_0, "Q8_0"),
        (GgmlDType::Q4_0, "Q4_0"),
        (GgmlDType::Q5_0, "Q5_0"),
    ] {
        let (ours, exact) = ours_and_ggml(ty, name);
        for (a, b) in ours.iter().zip(&exact) {
            assert_eq!(a.to_bits(), f16::from_f32(*b).to_f32().to_bits(), "{name}");
        }
    }
}

#[test]
fn sizes_that_disagree_are_refused() {
    let mut out = vec![0f32; 32];
    assert!(dequantize("Q8_0", &[0u8; 33], &mut out).is_none());
    assert!(dequantize("Q8_0", &[0u8; 68], &mut out).is_none());
    assert!(dequantize("IQ4_NL", &[0u8; 18], &mut out).is_none());
    assert!(dequantize("Q8_0", &[0u8; 34], &mut out).is_some());
}
