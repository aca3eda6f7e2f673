//! How our outputs are compared with a reference (kernel tests, `bench ops`, the parity tests):
//! largest |a - b| relative to the reference's largest |value|. candle's `max_all` skips NaN
//! except at element 0, so the values are scanned here and any NaN or infinity, on either side,
//! makes the difference infinite: every `diff <= tol` then fails and every `diff > tol` reports.

use candle_core::{DType, Result, Tensor};

/// max |ours - reference| and max |reference|, both in f32; the first is infinite when either
/// tensor holds a NaN or an infinity. Shapes must match.
pub fn max_abs_diff(ours: &Tensor, reference: &Tensor) -> Result<(f32, f32)> {
    if ours.dims() != reference.dims() {
        return Err(candle_core::Error::Msg(format!(
            "compared shapes differ: {:?} against {:?}",
            ours.dims(),
            reference.dims()
        )));
    }
    let flat = |t: &Tensor| t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>();
    Ok(max_abs_diff_slices(&flat(ours)?, &flat(reference)?))
}

/// `max_abs_diff` on plain slices of the same length.
pub fn max_abs_diff_slices(ours: &[f32], reference: &[f32]) -> (f32, f32) {
    let mut diff = if ours.len() == reference.len() {
        0f32
    } else {
        f32::INFINITY
    };
    let mut scale = 0f32;
    for (&a, &b) in ours.iter().zip(reference) {
        if !(a.is_finite() && b.is_finite()) {
            diff = f32::INFINITY;
            continue;
        }
        diff = diff.max((a - b).abs());
        scale = scale.max(b.abs());
    }
    (diff, scale)
}

/// max |ours - reference| / max |reference| (the absolute difference where the reference is all
/// zeros); infinite on any NaN or infinity, never NaN.
pub fn max_rel_diff(ours: &Tensor, reference: &Tensor) -> Result<f32> {
    let (diff, scale) = max_abs_diff(ours, reference)?;
    Ok(relative(diff, scale))
}

/// `max_rel_diff` on plain slices.
pub fn max_rel_diff_slices(ours: &[f32], reference: &[f32]) -> f32 {
    let (diff, scale) = max_abs_diff_slices(ours, reference);
    relative(diff, scale)
}

fn relative(diff: f32, scale: f32) -> f32 {
    if scale > 0.0 { diff / scale } else { diff }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn equal_and_close_tensors_measure_their_difference() {
        let a = t(&[1.0, -2.0, 4.0]);
        assert_eq!(max_rel_diff(&a, &a).unwrap(), 0.0);
        let b = t(&[1.0, -2.0, 4.2]);
        let d = max_rel_diff(&b, &a).unwrap();
        assert!((d - 0.05).abs() < 1e-6, "{d}");
        assert_eq!(max_abs_diff(&b, &a).unwrap().1, 4.0);
    }

    #[test]
    fn any_nan_or_infinity_on_either_side_is_an_infinite_difference() {
        let good = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 2, 4] {
                let mut v = good;
                v[at] = bad;
                for (ours, reference) in [(&v, &good), (&good, &v), (&v, &v)] {
                    let d = max_rel_diff(&t(ours), &t(reference)).unwrap();
                    assert_eq!(d, f32::INFINITY, "{bad} at {at}: {d}");
                }
            }
        }
        let all_nan = [f32::NAN; 5];
        assert_eq!(max_rel_diff_slices(&all_nan, &all_nan), f32::INFINITY);
    }

    #[test]
    fn f16_tensors_are_compared_in_f32_and_shapes_must_match() {
        let a = t(&[0.5, 1.0]).to_dtype(DType::F16).unwrap();
        assert_eq!(max_rel_diff(&a, &t(&[0.5, 1.0])).unwrap(), 0.0);
        let nan = t(&[f32::NAN, 1.0]).to_dtype(DType::F16).unwrap();
        assert_eq!(max_rel_diff(&nan, &t(&[0.5, 1.0])).unwrap(), f32::INFINITY);
        assert!(max_rel_diff(&a, &t(&[0.5, 1.0, 2.0])).is_err());
        assert_eq!(max_rel_diff_slices(&[1.0], &[1.0, 2.0]), f32::INFINITY);
    }
}
