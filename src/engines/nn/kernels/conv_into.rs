//! One image's f32 convolution on the CPU written straight into a caller's buffer, with the bias
//! and an element-wise epilogue (LeakyReLU, scaled residuals) applied in the same parallel pass:
//! no serial element-wise pass over the activation follows it. The output rows are split into
//! bands; each worker builds a band's im2col columns in its own buffer (the columns of all
//! workers together stay within a fixed byte budget, whatever the thread count), multiplies them
//! by the weight with a single-threaded GEMM into the band of the output, then runs the epilogue
//! over that band while it is in cache. 1x1 stride-1 convolutions read the input directly.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

/// What happens to each output value `v` (bias already added) before it is stored.
#[derive(Debug, Clone, Copy)]
pub enum Epilogue<'a> {
    None,
    /// `max(v, 0) + min(v, 0) * slope`, candle's and PyTorch's LeakyReLU.
    LeakyRelu(f32),
    /// `v * scale + res` with `res` laid out as the output: ESRGAN's `x5 * 0.2 + x`.
    Residual {
        scale: f32,
        res: &'a [f32],
    },
    /// `(v * scale + res) * outer + out`: the output buffer holds a second residual on entry
    /// (a dense block's residual inside the RRDB's `out * 0.2 + x`).
    ResidualInto {
        scale: f32,
        res: &'a [f32],
        outer: f32,
    },
}

impl Epilogue<'_> {
    /// Applies the epilogue to `out` (one channel's run of a band, bias added), `at` being
    /// the run's offset in the whole output.
    #[inline]
    fn apply(&self, out: &mut [f32], at: usize) {
        match *self {
            Self::None => {}
            Self::LeakyRelu(slope) => {
                for v in out.iter_mut() {
                    *v = v.max(0.0) + v.min(0.0) * slope;
                }
            }
            Self::Residual { scale, res } => {
                let n = out.len();
                for (v, r) in out.iter_mut().zip(&res[at..at + n]) {
                    *v = *v * scale + r;
                }
            }
            // Needs the GEMM's result apart from the output: done in `conv_into`.
            Self::ResidualInto { .. } => {}
        }
    }

    /// The residual slices must cover the whole output.
    fn fits(&self, len: usize) -> bool {
        match self {
            Self::None | Self::LeakyRelu(_) => true,
            Self::Residual { res, .. } | Self::ResidualInto { res, .. } => res.len() >= len,
        }
    }
}

/// A convolution's geometry and parameters: `weight` (c_out, c_in * kh * kw) row-major as
/// PyTorch stores it, `bias` (c_out).
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec<'a> {
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub c_out: usize,
    pub c_in: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvSpec<'_> {
    /// Output height and width for an `h` x `w` input (None where the kernel does not fit).
    pub fn out_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if self.stride == 0 || hp < self.kh || wp < self.kw {
            return None;
        }
        Some((
            (hp - self.kh) / self.stride + 1,
            (wp - self.kw) / self.stride + 1,
        ))
    }

    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("conv_into: {0}")]
pub struct ConvIntoError(String);

/// A pointer to the output shared by the workers; each writes only its own bands.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the workers write disjoint bands of the buffer behind it (see `conv_into`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The element `i` places in (a method, so closures capture the whole Send wrapper).
    ///
    /// # Safety
    /// `i` must lie within the buffer.
    unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller keeps `i` inside the buffer.
        unsafe { self.0.add(i) }
    }
}

/// `x` (c_in, h, w) convolved by `spec` into `out` (c_out, oh, ow), each value `epilogue`(conv +
/// bias). The im2col columns of all workers together take at most about `band_bytes` (at
/// least one output row per worker).
pub fn conv_into(
    x: &[f32],
    h: usize,
    w: usize,
    spec: &ConvSpec,
    out: &mut [f32],
    epilogue: Epilogue,
    band_bytes: usize,
) -> Result<(), ConvIntoError> {
    let bad = |m: String| Err(ConvIntoError(m));
    let Some((oh, ow)) = spec.out_size(h, w) else {
        return bad(format!("a {}x{} kernel on {h}x{w}", spec.kh, spec.kw));
    };
    let k = spec.c_in * spec.kh * spec.kw;
    let plane = oh * ow;
    if x.len() != spec.c_in * h * w
        || out.len() != spec.c_out * plane
        || spec.weight.len() != spec.c_out * k
        || spec.bias.is_some_and(|b| b.len() != spec.c_out)
        || !epilogue.fits(out.len())
    {
        return bad(format!(
            "sizes: x {} for {}x{h}x{w}, out {} for {}x{oh}x{ow}, weight {}",
            x.len(),
            spec.c_in,
            out.len(),
            spec.c_out,
            spec.weight.len()
        ));
    }
    if plane == 0 || spec.c_out == 0 {
        return Ok(());
    }
    let threads = candle_core::utils::get_num_threads().max(1);
    let row_bytes = if spec.pointwise() { 0 } else { k * ow * 4 };
    let budget_rows = (band_bytes / threads).checked_div(row_bytes).unwrap_or(oh);
    // Several bands a worker where the image allows, for balance.
    let rows = budget_rows.min(oh.div_ceil(4 * threads)).clamp(1, oh);
    let tasks = oh.div_ceil(rows);
    let workers = threads.min(tasks);
    let next = AtomicUsize::new(0);
    let dst = OutPtr(out.as_mut_ptr());
    let into = matches!(epilogue, Epilogue::ResidualInto { .. });
    let band_loop = |cols: &mut Vec<f32>, acc: &mut Vec<f32>| {
        loop {
            let task = next.fetch_add(1, Ordering::Relaxed);
            if task >= tasks {
                break;
            }
            let row0 = task * rows;
            let n_rows = rows.min(oh - row0);
            let n = n_rows * ow;
            let at = row0 * ow;
            let (rhs, rhs_rs) = if spec.pointwise() {
                (&x[at..], plane)
            } else {
                fill_cols(x, h, w, spec, ow, row0, n_rows, &mut cols[..k * n]);
                (&cols[..k * n], n)
            };
            let (target, target_rs) = if into {
                (acc.as_mut_ptr(), n)
            } else {
                // SAFETY: `at` < plane <= out.len().
                (unsafe { dst.at(at) }, plane)
            };
            // SAFETY: band `task` is rows row0..row0+n_rows of every channel: the runs
            // [c*plane + at, c*plane + at + n) for c < c_out, inside `out` (checked sizes) and
            // disjoint from every other task's (or the worker's own `acc`, c_out x n). The GEMM
            // reads c_out x k of the weight (row stride k), k x n of rhs (row stride rhs_rs,
            // inside its slice by the sizes checked above) and writes c_out runs of n.
            unsafe {
                gemm::gemm(
                    spec.c_out,
                    n,
                    k,
                    target,
                    1,
                    target_rs as isize,
                    false,
                    spec.weight.as_ptr(),
                    1,
                    k as isize,
                    rhs.as_ptr(),
                    1,
                    rhs_rs as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            for c in 0..spec.c_out {
                let start = c * plane + at;
                let b = spec.bias.map_or(0.0, |b| b[c]);
                // SAFETY: as above, this run belongs to this task alone.
                let run = unsafe { std::slice::from_raw_parts_mut(dst.at(start), n) };
                if let Epilogue::ResidualInto { scale, res, outer } = epilogue {
                    let a = &acc[c * n..(c + 1) * n];
                    for ((o, a), r) in run.iter_mut().zip(a).zip(&res[start..start + n]) {
                        *o += ((a + b) * scale + r) * outer;
                    }
                    continue;
                }
                if spec.bias.is_some() {
                    run.iter_mut().for_each(|v| *v += b);
                }
                epilogue.apply(run, start);
            }
        }
    };
    let work = |_| {
        SCRATCH.with_borrow_mut(|[cols, acc]| {
            // Kept by the (pool) thread between calls: no page faults or zeroing per conv.
            grow(cols, if spec.pointwise() { 0 } else { k * rows * ow });
            // ResidualInto keeps the output's prior values: the GEMM writes a scratch band.
            grow(acc, if into { spec.c_out * rows * ow } else { 0 });
            band_loop(cols, acc);
        })
    };
    if workers <= 1 {
        work(0usize);
    } else {
        (0..workers).into_par_iter().for_each(work);
    }
    Ok(())
}

thread_local! {
    /// A worker's im2col band and (ResidualInto) GEMM band, reused across calls.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 2]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new()])
    };
}

/// `v` at least `len` long (new values zero; every value read is written first).
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Rows `row0..row0 + n_rows` of the im2col matrix: (c_in * kh * kw) x (n_rows * ow), row
/// order (c, ky, kx) as the weight's, zero where the kernel reads padding.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_cols(
    x: &[f32],
    h: usize,
    w: usize,
    spec: &ConvSpec,
    ow: usize,
    row0: usize,
    n_rows: usize,
    cols: &mut [f32],
) {
    let (kh, kw, st, pad) = (spec.kh, spec.kw, spec.stride, spec.padding);
    let n = n_rows * ow;
    for c in 0..spec.c_in {
        let src = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let r = (c * kh + ky) * kw + kx;
                let row = &mut cols[r * n..(r + 1) * n];
                for (band_row, oy) in (row0..row0 + n_rows).enumerate() {
                    let dst_row = &mut row[band_row * ow..(band_row + 1) * ow];
                    let iy = (oy * st + ky) as isize - pad as isize;
                    if iy < 0 || iy >= h as isize {
                        dst_row.fill(0.0);
                        continue;
                    }
                    let src_row = &src[iy as usize * w..(iy as usize + 1) * w];
                    if st == 1 {
                        // Output x reads input x + kx - pad: one shifted slice copy.
                        let shift = kx as isize - pad as isize;
                        let lo = ((-shift).max(0) as usize).min(ow);
                        let hi = ((w as isize - shift).min(ow as isize)).max(lo as isize) as usize;
                        dst_row[..lo].fill(0.0);
                        if lo < hi {
                            let from = (lo as isize + shift) as usize;
                            dst_row[lo..hi].copy_from_slice(&src_row[from..from + (hi - lo)]);
                        }
                        dst_row[hi..].fill(0.0);
                    } else {
                        for (ox, d) in dst_row.iter_mut().enumerate() {
                            let ix = (ox * st + kx) as isize - pad as isize;
                            *d = if ix >= 0 && ix < w as isize {
                                src_row[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::nn::kernels::test_support::rel;
    use candle_core::{Device, Tensor};

    fn vals(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Every epilogue against the unfused candle ops, for 3x3 same, stride-2 and 1x1 convs and
    /// band budgets from one row to the whole image.
    #[test]
    fn fused_epilogues_match_the_separate_ops() {
        let dev = Device::Cpu;
        for (ci, co, k, s, p) in [(5, 4, 3, 1, 1), (6, 3, 3, 2, 1), (7, 5, 1, 1, 0)] {
            let (h, w) = (9, 11);
            let x = Tensor::randn(0f32, 1., (1, ci, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 0.4, (co, ci, k, k), &dev).unwrap();
            let bias = Tensor::randn(0f32, 0.5, co, &dev).unwrap();
            let cfg = candle_nn::Conv2dConfig {
                padding: p,
                stride: s,
                ..Default::default()
            };
            let plain = candle_nn::Conv2d::new(wt.clone(), Some(bias.clone()), cfg);
            let conv = candle_core::Module::forward(&plain, &x).unwrap();
            let r = Tensor::randn(0f32, 1., conv.shape(), &dev).unwrap();
            let prior = Tensor::randn(0f32, 1., conv.shape(), &dev).unwrap();
            let (wv, bv, xv, rv) = (vals(&wt), vals(&bias), vals(&x), vals(&r));
            let spec = ConvSpec {
                weight: &wv,
                bias: Some(&bv),
                c_out: co,
                c_in: ci,
                kh: k,
                kw: k,
                stride: s,
                padding: p,
            };
            let cases = [
                (Epilogue::None, conv.clone()),
                (
                    Epilogue::LeakyRelu(0.2),
                    candle_nn::ops::leaky_relu(&conv, 0.2).unwrap(),
                ),
                (
                    Epilogue::Residual {
                        scale: 0.3,
                        res: &rv,
                    },
                    ((&conv * 0.3).unwrap() + &r).unwrap(),
                ),
                (
                    Epilogue::ResidualInto {
                        scale: 0.2,
                        res: &rv,
                        outer: 0.7,
                    },
                    ((((&conv * 0.2).unwrap() + &r).unwrap() * 0.7).unwrap() + &prior).unwrap(),
                ),
            ];
            for (i, (epilogue, want)) in cases.into_iter().enumerate() {
                if i > 0 {
                    // The epilogue visibly changes the output: the comparison can fail.
                    assert!(rel(&want, &conv) > 0.05, "case {i}");
                }
                for band in [1, 4 * ci * k * k * w, usize::MAX] {
                    let mut out = vals(&prior);
                    conv_into(&xv, h, w, &spec, &mut out, epilogue, band).unwrap();
                    let got = Tensor::from_vec(out, want.shape(), &dev).unwrap();
                    assert!(rel(&got, &want) < 1e-5, "{ci} {k} {s} case {i} band {band}");
                }
            }
        }
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let (w, b) = (vec![0.5f32; 2 * 3 * 9], vec![0f32; 2]);
        let spec = ConvSpec {
            weight: &w,
            bias: Some(&b),
            c_out: 2,
            c_in: 3,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        let x = vec![1f32; 3 * 4 * 5];
        let mut out = vec![0f32; 2 * 4 * 5];
        assert!(conv_into(&x, 4, 5, &spec, &mut out, Epilogue::None, 1 << 20).is_ok());
        assert!(conv_into(&x[1..], 4, 5, &spec, &mut out, Epilogue::None, 1 << 20).is_err());
        assert!(conv_into(&x, 4, 5, &spec, &mut out[1..], Epilogue::None, 1 << 20).is_err());
        let short = Epilogue::Residual {
            scale: 1.0,
            res: &x[..3],
        };
        assert!(conv_into(&x, 4, 5, &spec, &mut out, short, 1 << 20).is_err());
    }
}
