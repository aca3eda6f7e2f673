#![allow(clippy::unwrap_used)]

use super::*;

fn x(seq: usize, head_dim: usize) -> Tensor {
    let v: Vec<f32> = (0..2 * seq * head_dim)
        .map(|i| (i as f32 * 0.61).sin())
        .collect();
    Tensor::from_vec(v, (1, 2, seq, head_dim), &Device::Cpu).unwrap()
}

/// Sum of squares of each rotated pair, which a rotation keeps.
fn pair_norms(t: &Tensor, pairing: Pairing) -> Vec<f32> {
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let d = t.dim(3).unwrap();
    v.chunks(d)
        .flat_map(|row| {
            (0..d / 2).map(move |i| {
                let (a, b) = match pairing {
                    Pairing::Halves => (row[i], row[i + d / 2]),
                    Pairing::Neighbours => (row[2 * i], row[2 * i + 1]),
                };
                a * a + b * b
            })
        })
        .collect()
}

#[test]
fn rotations_keep_pair_norms_and_position_zero_is_identity() {
    let rope = Rope1d::new(8, 10_000.0).unwrap();
    let xs = x(5, 8);
    let at0 = rope.tables(0, 5, &Device::Cpu).unwrap();
    let rotated = at0.apply(&xs).unwrap();
    let (a, b) = (
        pair_norms(&rotated, Pairing::Halves),
        pair_norms(&xs, Pairing::Halves),
    );
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
    // Position 0 (the first row) is not rotated; later ones are.
    let first = |t: &Tensor| {
        t.narrow(2, 0, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(first(&rotated), first(&xs));

    let flux = MultiAxisRope::new(10_000.0, &[2, 4, 2]).unwrap();
    assert_eq!(flux.head_dim(), 8);
    let ids = Tensor::new(&[[0f32, 0., 0.], [0., 3., 7.], [1., 40., 2.]], &Device::Cpu).unwrap();
    let xs = x(3, 8);
    let rotated = flux.tables(&ids).unwrap().apply(&xs).unwrap();
    let (a, b) = (
        pair_norms(&rotated, Pairing::Neighbours),
        pair_norms(&xs, Pairing::Neighbours),
    );
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
    assert_eq!(first(&rotated), first(&xs));
}

#[test]
fn half_precision_is_rotated_in_f32_and_returned_as_given() {
    let rope = Rope1d::new(8, 10_000.0).unwrap();
    let tables = rope.tables(3, 4, &Device::Cpu).unwrap();
    let xs = x(4, 8);
    let want = tables.apply(&xs).unwrap();
    let got = tables.apply(&xs.to_dtype(DType::BF16).unwrap()).unwrap();
    assert_eq!(got.dtype(), DType::BF16);
    let (d, _) = crate::engines::nn::compare::max_abs_diff(&got, &want).unwrap();
    assert!(d < 2e-2, "{d}");
}

#[test]
fn bad_sizes_are_errors() {
    assert!(Rope1d::new(7, 10_000.0).is_err());
    assert!(Rope1d::new(8, 0.0).is_err());
    assert!(MultiAxisRope::new(10_000.0, &[4, 3]).is_err());
    assert!(MultiAxisRope::new(10_000.0, &[]).is_err());
    assert!(MultiAxisRope::new(f64::NAN, &[4]).is_err());
    let flux = MultiAxisRope::new(10_000.0, &[4, 4]).unwrap();
    let three_axes = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(flux.tables(&three_axes).is_err());
    let tables = flux
        .tables(&Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    assert!(tables.apply(&x(2, 16)).is_err());
    assert!(tables.apply(&x(3, 8)).is_err());
}
