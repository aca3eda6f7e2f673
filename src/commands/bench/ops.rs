//! `bench ops`: the hot layers of the UNet and the VAE decoder one at a time, at the shapes a
//! full-size model runs them, each through candle's stock implementation and through ours (the
//! two paths `PALLAIDIUM_STOCK_KERNELS` switches between for whole models): median time of
//! each and the largest difference between them relative to the stock output's largest value.
//! On a GPU this is where our kernels' parity is checked on the device itself.

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use serde_json::{Value, json};

use super::configs::BenchModel;
use super::report::median_min;
use super::{BenchSetup, validate_size};
use crate::engines::nn::attention::{AttentionMode, attention_with};
use crate::engines::nn::compare;
use crate::engines::nn::kernels::{
    Conv2d, GroupNorm, Kernels, geglu, linear_geglu, upsample_nearest2d,
};
use crate::engines::sd::config::UNetConfig;
use crate::{Error, Result};

type Run<'a> = Box<dyn Fn(bool) -> candle_core::Result<Tensor> + 'a>;

/// One layer at one shape; `run(fast)` evaluates it with our kernels or candle's.
struct Case<'a> {
    name: &'static str,
    shape: String,
    dtype: DType,
    run: Run<'a>,
}

fn randn(shape: &[usize], scale: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    Ok((Tensor::randn(0f32, 1f32, shape, device)? * scale)?.to_dtype(dtype)?)
}

fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    dtype: DType,
    device: &Device,
) -> Result<Conv2d> {
    let fan_in = (c_in * k * k) as f64;
    let weight = randn(&[c_out, c_in, k, k], fan_in.powf(-0.5), dtype, device)?;
    let bias = randn(&[c_out], 0.1, dtype, device)?;
    let cfg = candle_nn::Conv2dConfig {
        padding: k / 2,
        stride,
        ..Default::default()
    };
    Ok(Conv2d::from_candle(
        candle_nn::Conv2d::new(weight, Some(bias), cfg),
        Kernels::Ours,
    ))
}

fn norm(
    channels: usize,
    groups: usize,
    eps: f64,
    dtype: DType,
    device: &Device,
) -> Result<GroupNorm> {
    let weight = (randn(&[channels], 0.1, DType::F32, device)? + 1.0)?.to_dtype(dtype)?;
    let bias = randn(&[channels], 0.1, dtype, device)?;
    Ok(GroupNorm::new(weight, bias, channels, groups, eps)?)
}

/// The cases for a UNet config at a latent size, plus the VAE decoder's full-resolution layers.
fn cases<'a>(
    c: &UNetConfig,
    batch: usize,
    (lh, lw): (usize, usize),
    dtype: DType,
    device: &'a Device,
) -> Result<Vec<Case<'a>>> {
    let c0 = c.block_out_channels.first().copied().unwrap_or(320);
    let heads = c.num_attention_heads.first().copied().unwrap_or(8).max(1);
    let groups = c.norm_num_groups;
    let tokens = lh * lw;
    let images = batch.div_ceil(2);
    let (h, w) = (lh * 8, lw * 8);
    let mut out: Vec<Case<'a>> = Vec::new();

    let x = randn(&[batch, c0, lh, lw], 1.0, dtype, device)?;
    let gn = norm(c0, groups, c.norm_eps, dtype, device)?;
    let xg = x.clone();
    out.push(Case {
        name: "unet_group_norm_silu",
        shape: format!("{batch}x{c0}x{lh}x{lw}"),
        dtype,
        run: Box::new(move |fast| gn.forward_with(&xg, true, fast)),
    });
    for (name, k, stride) in [
        ("unet_conv3x3", 3, 1),
        ("unet_conv1x1", 1, 1),
        ("unet_conv3x3_stride2", 3, 2),
    ] {
        let layer = conv(c0, c0, k, stride, dtype, device)?;
        let xc = x.clone();
        out.push(Case {
            name,
            shape: format!("{batch}x{c0}x{lh}x{lw} -> {c0}"),
            dtype,
            run: Box::new(move |fast| layer.forward_with(&xc, fast)),
        });
    }
    let q = randn(&[batch, tokens, c0], 1.0, dtype, device)?;
    let k = randn(&[batch, tokens, c0], 1.0, dtype, device)?;
    let v = randn(&[batch, tokens, c0], 1.0, dtype, device)?;
    out.push(Case {
        name: "unet_self_attention",
        shape: format!("{batch}x{tokens}x{c0}, {heads} heads"),
        dtype,
        run: Box::new(move |fast| {
            attention_with(&q, &k, &v, heads, false, AttentionMode::Auto, fast)
        }),
    });
    let xt = x.reshape((batch, c0, tokens))?;
    out.push(Case {
        name: "unet_to_tokens",
        shape: format!("{batch}x{c0}x{tokens} -> {batch}x{tokens}x{c0}"),
        dtype,
        run: Box::new(move |fast| crate::engines::nn::kernels::transpose_last2(&xt, fast)),
    });
    if device.is_cuda() && dtype == DType::F16 {
        out.extend(tensor_core_attention_cases(c, batch, tokens, device)?);
        out.push(flow_attention_case(device)?);
    }
    // candle's own cuBLAS matmul at the first level's 3x3-conv GEMM size: no kernel of ours
    // (both columns are the same call), the reference for what one GEMM costs here.
    let rows = randn(&[batch * tokens, 9 * c0], 1.0, dtype, device)?;
    let wt = randn(&[9 * c0, c0], 0.02, dtype, device)?;
    out.push(Case {
        name: "matmul",
        shape: format!(
            "{}x{} . {}x{c0} (candle, both columns)",
            batch * tokens,
            9 * c0,
            9 * c0
        ),
        dtype,
        run: Box::new(move |_| rows.matmul(&wt)),
    });
    let projected = randn(&[batch, tokens, 8 * c0], 1.0, dtype, device)?;
    out.push(Case {
        name: "unet_geglu",
        shape: format!("{batch}x{tokens}x{}", 8 * c0),
        dtype,
        run: Box::new(move |fast| geglu(&projected, fast)),
    });
    // The feed-forward's projection and GEGLU, the bias added in the GEGLU kernel (ours) or
    // by the Linear (stock).
    let ff_in = randn(&[batch, tokens, c0], 1.0, dtype, device)?;
    let proj = candle_nn::Linear::new(
        randn(&[8 * c0, c0], (c0 as f64).powf(-0.5), dtype, device)?,
        Some(randn(&[8 * c0], 0.1, dtype, device)?),
    );
    out.push(Case {
        name: "unet_linear_geglu",
        shape: format!("{batch}x{tokens}x{c0} -> {}", 4 * c0),
        dtype,
        run: Box::new(move |fast| match fast {
            true => linear_geglu(&proj, &ff_in, true),
            false => geglu(&candle_core::Module::forward(&proj, &ff_in)?, false),
        }),
    });

    // The VAE in the job's dtype, as the pipeline decodes SD 1.x/2.x (SDXL's upcasts to f32).
    let vae_dtype = dtype;
    let vae_c = 128;
    let xv = randn(&[images, vae_c, h, w], 1.0, vae_dtype, device)?;
    let vgn = norm(vae_c, 32, 1e-6, vae_dtype, device)?;
    let xvg = xv.clone();
    out.push(Case {
        name: "vae_group_norm_silu",
        shape: format!("{images}x{vae_c}x{h}x{w}"),
        dtype: vae_dtype,
        run: Box::new(move |fast| vgn.forward_with(&xvg, true, fast)),
    });
    let low = randn(&[images, 2 * vae_c, h / 2, w / 2], 1.0, vae_dtype, device)?;
    out.push(Case {
        name: "vae_upsample_2x",
        shape: format!("{images}x{}x{}x{} -> {h}x{w}", 2 * vae_c, h / 2, w / 2),
        dtype: vae_dtype,
        run: Box::new(move |fast| upsample_nearest2d(&low, h, w, fast)),
    });
    let vconv = conv(vae_c, vae_c, 3, 1, vae_dtype, device)?;
    out.push(Case {
        name: "vae_conv3x3",
        shape: format!("{images}x{vae_c}x{h}x{w} -> {vae_c}"),
        dtype: vae_dtype,
        run: Box::new(move |fast| vconv.forward_with(&xv, fast)),
    });
    Ok(out)
}

/// f16 on CUDA: the tensor-core attention kernel ("ours") against the one-thread-a-query fused
/// kernel ("stock" here, f32 inside), per head, at the UNet's first two levels and for the
/// cross-attention on 77 prompt tokens.
fn tensor_core_attention_cases<'a>(
    c: &UNetConfig,
    batch: usize,
    tokens: usize,
    device: &'a Device,
) -> Result<Vec<Case<'a>>> {
    let heads = c.num_attention_heads.first().copied().unwrap_or(8).max(1);
    let mut out: Vec<Case<'a>> = Vec::new();
    let shapes = c
        .block_out_channels
        .iter()
        .take(2)
        .enumerate()
        .map(|(level, ch)| {
            let n = tokens >> (2 * level);
            (n, n, ch / heads)
        });
    let first_d = c.block_out_channels.first().copied().unwrap_or(320) / heads;
    for (name, (n_q, n_k, d)) in [
        "unet_attention_tc_level0",
        "unet_attention_tc_level1",
        "unet_cross_attention_tc",
    ]
    .into_iter()
    .zip(shapes.chain([(tokens, 77, first_d)]))
    {
        let rows = batch * heads;
        if !crate::engines::nn::kernels::FUSED_ATTENTION_HEAD_DIMS.contains(&d) {
            continue;
        }
        let q = randn(&[rows, n_q, d], (d as f64).powf(-0.5), DType::F16, device)?;
        let k = randn(&[rows, n_k, d], 1.0, DType::F16, device)?;
        let v = randn(&[rows, n_k, d], 1.0, DType::F16, device)?;
        out.push(Case {
            name,
            shape: format!("{rows}x{n_q}x{d} . {n_k} keys (scalar kernel -> tensor cores)"),
            dtype: DType::F16,
            run: Box::new(move |tc| {
                crate::engines::nn::kernels::fused_attention_with(&q, &k, &v, tc).unwrap_or_else(
                    || Err(candle_core::Error::Msg("no fused attention here".into())),
                )
            }),
        });
    }
    Ok(out)
}

/// The flow transformers' attention (FLUX at 1024x1024: 24 heads of 128 over 4096 image and 256
/// text tokens) in bf16: candle's ops (f32 scores and softmax) against our tensor-core kernel.
fn flow_attention_case(device: &Device) -> Result<Case<'_>> {
    let (rows, n, d) = (24, 4352, 128);
    let q = randn(&[rows, n, d], (d as f64).powf(-0.5), DType::BF16, device)?;
    let k = randn(&[rows, n, d], 1.0, DType::BF16, device)?;
    let v = randn(&[rows, n, d], 1.0, DType::BF16, device)?;
    Ok(Case {
        name: "flow_attention_d128",
        shape: format!("{rows}x{n}x{d} . {n} keys (candle f32 scores -> tensor cores)"),
        dtype: DType::BF16,
        run: Box::new(move |tc| {
            if tc {
                return crate::engines::nn::kernels::fused_attention_with(&q, &k, &v, true)
                    .unwrap_or_else(|| {
                        Err(candle_core::Error::Msg("no fused attention here".into()))
                    });
            }
            let scores = q
                .to_dtype(DType::F32)?
                .matmul(&k.to_dtype(DType::F32)?.t()?)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(DType::BF16)?;
            probs.matmul(&v)
        }),
    })
}

/// Times `f` (`warmup` untimed calls first) with a device synchronize after each call.
fn time(
    f: &dyn Fn() -> candle_core::Result<Tensor>,
    device: &Device,
    warmup: u32,
    runs: u32,
) -> Result<(f64, Tensor)> {
    let mut last = f()?;
    device.synchronize()?;
    for _ in 1..warmup {
        last = f()?;
        device.synchronize()?;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(runs as usize);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        last = f()?;
        device.synchronize()?;
        times.push(t.elapsed());
    }
    Ok((median_min(&times).0 * 1e3, last))
}

/// Each case's stock and fast timings and their difference.
fn measure(cases: &[Case], device: &Device, warmup: u32, runs: u32) -> Result<Vec<Value>> {
    let mut rows = Vec::with_capacity(cases.len());
    for case in cases {
        let (stock_ms, stock) = time(&|| (case.run)(false), device, warmup, runs)?;
        let (ours_ms, ours) = time(&|| (case.run)(true), device, warmup, runs)?;
        if stock.dims() != ours.dims() {
            return Err(Error::job_failed(format!(
                "{}: our kernel returned {:?}, candle's {:?}",
                case.name,
                ours.dims(),
                stock.dims()
            )));
        }
        // Infinite (and `finite: false`) when either output holds a NaN or an infinity.
        let rel = compare::max_rel_diff(&ours, &stock)?;
        tracing::info!(op = case.name, stock_ms, ours_ms, rel, "bench op");
        rows.push(json!({
            "op": case.name,
            "shape": case.shape,
            "dtype": crate::engines::nn::dtype::dtype_name(case.dtype),
            "stock_ms": stock_ms,
            "ours_ms": ours_ms,
            "speedup": stock_ms / ours_ms.max(1e-9),
            "max_rel_diff": rel,
            "finite": rel.is_finite(),
        }));
    }
    Ok(rows)
}

pub fn run(model: &BenchModel, s: &BenchSetup) -> Result<Value> {
    let a = s.args;
    let (w, h) = validate_size(a.width, a.height)?;
    let batch = a.batch.max(1) as usize;
    let config = model.unet_config()?;
    let device = &s.device.device;
    let cases = cases(&config, batch, (h / 8, w / 8), s.dtype, device)?;
    let ops = measure(&cases, device, a.warmup.max(1), a.runs)?;
    Ok(json!({
        "bench": "ops",
        "model": model.id,
        "width": w,
        "height": h,
        "batch": batch,
        "runs": a.runs.max(1),
        "warmup": a.warmup.max(1),
        "ops": ops,
    }))
}

/// One line per op, for humans.
pub fn table(v: &Value) -> String {
    let mut out = format!(
        "{:<22} {:<28} {:>5} {:>10} {:>10} {:>8} {:>10}\n",
        "op", "shape", "dtype", "stock ms", "ours ms", "speedup", "rel diff"
    );
    for op in v["ops"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<22} {:<28} {:>5} {:>10.3} {:>10.3} {:>7.2}x {:>10.2e}\n",
            op["op"].as_str().unwrap_or(""),
            op["shape"].as_str().unwrap_or(""),
            op["dtype"].as_str().unwrap_or(""),
            op["stock_ms"].as_f64().unwrap_or(f64::NAN),
            op["ours_ms"].as_f64().unwrap_or(f64::NAN),
            op["speedup"].as_f64().unwrap_or(f64::NAN),
            op["max_rel_diff"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    out.push_str(&format!(
        "device {}, {}\n",
        v["device_name"].as_str().unwrap_or("?"),
        v["candle"]
            .as_str()
            .map(|c| format!("candle {c}"))
            .unwrap_or_default()
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
