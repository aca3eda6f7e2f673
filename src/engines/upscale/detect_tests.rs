use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::*;

fn conv(t: &mut Tensors, name: &str, o: usize, i: usize) {
    let dev = Device::Cpu;
    t.insert(
        format!("{name}.weight"),
        Tensor::zeros((o, i, 3, 3), DType::F32, &dev).unwrap(),
    );
    t.insert(
        format!("{name}.bias"),
        Tensor::zeros(o, DType::F32, &dev).unwrap(),
    );
}

/// A BasicSR-named RRDBNet (`in_mult` 1: x4, 4: x2 with pixel-unshuffle).
fn basicsr_rrdb(blocks: usize, nf: usize, gc: usize, in_mult: usize) -> Tensors {
    let mut t = HashMap::new();
    conv(&mut t, "conv_first", nf, 3 * in_mult);
    for n in 0..blocks {
        for k in 1..=3 {
            for m in 1..=5 {
                let o = if m < 5 { gc } else { nf };
                conv(
                    &mut t,
                    &format!("body.{n}.rdb{k}.conv{m}"),
                    o,
                    nf + (m - 1) * gc,
                );
            }
        }
    }
    for name in ["conv_body", "conv_up1", "conv_up2", "conv_hr"] {
        conv(&mut t, name, nf, nf);
    }
    conv(&mut t, "conv_last", 3, nf);
    t
}

#[test]
fn basicsr_rrdb_sizes_and_scale_come_from_the_shapes() {
    let (arch, _) = detect(basicsr_rrdb(3, 16, 8, 1)).unwrap();
    let Arch::Rrdb(s) = &arch else { panic!() };
    assert_eq!((s.blocks, s.features, s.grow, s.unshuffle), (3, 16, 8, 1));
    assert_eq!(arch.scale(), 4);
    let (arch, _) = detect(basicsr_rrdb(2, 8, 4, 4)).unwrap();
    assert_eq!(arch.scale(), 2);
    assert_eq!(arch.side_multiple(), 2);
}

#[test]
fn prefixed_and_esrgan_repo_names_are_the_same_network() {
    let plain = basicsr_rrdb(2, 8, 4, 1);
    let ema: Tensors = plain
        .iter()
        .map(|(k, v)| (format!("params_ema.{k}"), v.clone()))
        .collect();
    let repo: Tensors = plain
        .iter()
        .map(|(k, v)| {
            let k = k
                .replace("body.", "RRDB_trunk.")
                .replace(".rdb", ".RDB")
                .replace("conv_body", "trunk_conv")
                .replace("conv_up", "upconv")
                .replace("conv_hr", "HRconv");
            (k, v.clone())
        })
        .collect();
    let want = detect(plain).unwrap();
    for other in [ema, repo] {
        let got = detect(other).unwrap();
        assert_eq!(got.0, want.0);
        let mut a: Vec<_> = got.1.keys().cloned().collect();
        let mut b: Vec<_> = want.1.keys().cloned().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}

#[test]
fn original_esrgan_layout_maps_to_basicsr_names() {
    let plain = basicsr_rrdb(2, 8, 4, 4);
    let mut old = HashMap::new();
    for (k, v) in &plain {
        let k = if let Some(r) = k.strip_prefix("body.") {
            // "0.rdb1.conv1.weight" -> "model.1.sub.0.RDB1.conv1.0.weight"
            let p: Vec<&str> = r.split('.').collect();
            format!("model.1.sub.{}.RDB{}.{}.0.{}", p[0], &p[1][3..], p[2], p[3])
        } else {
            let (name, leaf) = k.split_once('.').unwrap();
            let i = match name {
                "conv_first" => "0",
                "conv_body" => "1.sub.2",
                "conv_up1" => "3",
                "conv_up2" => "6",
                "conv_hr" => "8",
                _ => "10",
            };
            format!("model.{i}.{leaf}")
        };
        old.insert(k, v.clone());
    }
    let (arch, t) = detect(old).unwrap();
    assert_eq!(arch.scale(), 2);
    let mut a: Vec<_> = t.keys().cloned().collect();
    let mut b: Vec<_> = plain.keys().cloned().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn compact_convs_features_and_scale_come_from_the_shapes() {
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    let (nf, convs, scale) = (16, 5, 4);
    let mut i = 0;
    for n in 0..=convs {
        conv(
            &mut t,
            &format!("body.{i}"),
            nf,
            if n == 0 { 3 } else { nf },
        );
        t.insert(
            format!("body.{}.weight", i + 1),
            Tensor::zeros(nf, DType::F32, &dev).unwrap(),
        );
        i += 2;
    }
    conv(&mut t, &format!("body.{i}"), 3 * scale * scale, nf);
    let (arch, _) = detect(t.clone()).unwrap();
    assert_eq!(
        arch,
        Arch::Compact(CompactShape {
            channels: 3,
            features: nf,
            convs,
            scale
        })
    );
    // Without PReLU slopes it is a variant we do not run.
    t.retain(|k, _| k != "body.1.weight");
    let err = detect(t).unwrap_err();
    assert!(err.0.contains("PReLU"), "{}", err.0);
}

#[test]
fn other_networks_are_refused_by_name() {
    let mut t = HashMap::new();
    conv(&mut t, "encoder.conv_in", 8, 3);
    let err = detect(t).unwrap_err();
    assert!(err.0.contains("encoder.conv_in.bias"), "{}", err.0);
}
