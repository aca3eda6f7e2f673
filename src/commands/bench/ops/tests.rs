use super::*;

#[test]
fn every_cpu_kernel_matches_candle_at_small_shapes() {
    let config = UNetConfig::from_json(super::super::configs::MODELS[0].unet).unwrap();
    let device = Device::Cpu;
    let cases = cases(&config, 2, (4, 4), DType::F32, &device).unwrap();
    let names: Vec<_> = cases.iter().map(|c| c.name).collect();
    assert!(names.contains(&"unet_conv3x3") && names.contains(&"vae_group_norm_silu"));
    let rows = measure(&cases, &device, 1, 1).unwrap();
    assert_eq!(rows.len(), cases.len());
    for row in rows {
        let rel = row["max_rel_diff"].as_f64().unwrap();
        assert!(rel < 1e-5, "{row}");
        assert!(row["stock_ms"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn a_kernel_that_returns_nan_is_reported_not_finite() {
    let device = Device::Cpu;
    let x = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &device).unwrap();
    for at in [0, 2, 3] {
        let xs = x.clone();
        let cases = vec![Case {
            name: "nan_at",
            shape: "4".into(),
            dtype: DType::F32,
            run: Box::new(move |fast| {
                if !fast {
                    return Ok(xs.clone());
                }
                let mut v = xs.to_vec1::<f32>()?;
                v[at] = f32::NAN;
                Tensor::new(v.as_slice(), xs.device())
            }),
        }];
        let rows = measure(&cases, &device, 1, 1).unwrap();
        // JSON has no infinity: serde_json writes the non-finite difference as null.
        let rel = rows[0]["max_rel_diff"].as_f64();
        assert!(rel.is_none_or(|d| d >= 1e-5), "{}", rows[0]);
        assert_eq!(rows[0]["finite"], false, "NaN at {at}: {}", rows[0]);
    }
}

#[test]
fn the_table_has_a_line_per_op() {
    let v = json!({"ops": [{"op": "a", "shape": "1", "dtype": "f32", "stock_ms": 2.0,
        "ours_ms": 1.0, "speedup": 2.0, "max_rel_diff": 0.0}], "device_name": "cpu"});
    let t = table(&v);
    assert!(t.lines().nth(1).unwrap().starts_with("a "));
    assert!(t.contains("2.00x"));
}
