//! Attention on the CPU in f32 with the score tiles kept in cache: for each (batch*head) row and
//! each block of queries, scores = q_block . K^T into a small buffer, softmax in place, then
//! out_block = probs . V, all with the same GEMM kernels candle uses. The unfused path writes
//! every (queries x keys) score to memory and reads it back twice (1 GiB per 4096-token layer
//! of SD 1.5 at batch 2), which is what its time is spent on: the head size is only 40-160.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::softmax::softmax_row;
use super::threads::par_chunks_mut;

/// Queries per score tile: QUERY_BLOCK x keys f32 stays within L2 for up to ~8k keys.
const QUERY_BLOCK: usize = 64;

/// `q` (rows, n_q, d) already scaled, `k`/`v` (rows, n_k, d), f32 on the CPU. None where the
/// fused path does not pay off (fewer rows than threads: the plain GEMMs parallelise better).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Option<Result<Tensor>> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    let rows = q.dim(0).ok()?;
    if !(f32_cpu(q) && f32_cpu(k) && f32_cpu(v)) || rows < candle_core::utils::get_num_threads() {
        return None;
    }
    let run = || -> Result<Tensor> {
        q.contiguous()?
            .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &FusedAttention)
    };
    Some(run())
}

struct FusedAttention;

/// `dst (m x n, row-major) = lhs (m x k) . rhs (k x n)`, operands given as (slice, column
/// stride, row stride), on the calling thread. False (nothing written) when a stride would
/// leave its slice.
#[must_use]
fn matmul(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    (lhs, lhs_cs, lhs_rs): (&[f32], usize, usize),
    (rhs, rhs_cs, rhs_rs): (&[f32], usize, usize),
) -> bool {
    let last = |cs: usize, rs: usize, rows: usize, cols: usize| {
        (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs
    };
    let fits = dst.len() >= m * n
        && lhs.len() > last(lhs_cs, lhs_rs, m, k)
        && rhs.len() > last(rhs_cs, rhs_rs, k, n);
    if !fits {
        return false;
    }
    if m == 0 || n == 0 || k == 0 {
        return true;
    }
    // SAFETY: the checks above keep every element the strides address inside its slice; dst is
    // written as m x n row-major; single-threaded.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    true
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((a, b))) => Ok(&data[a..b]),
        _ => candle_core::bail!("fused attention takes contiguous f32"),
    }
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "pallaidium-cpu-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, n_q, d) = ql.shape().dims3()?;
        let (k_rows, n_k, k_d) = kl.shape().dims3()?;
        if k_rows != rows || k_d != d || vl.dims() != kl.dims() || n_k == 0 || d == 0 {
            candle_core::bail!(
                "fused attention: q {:?}, k {:?}, v {:?}",
                ql.dims(),
                kl.dims(),
                vl.dims()
            );
        }
        let (q, k, v) = (slice(qs, ql)?, slice(ks, kl)?, slice(vs, vl)?);
        let mut out = vec![0f32; rows * n_q * d];
        let failed = std::sync::atomic::AtomicBool::new(false);
        par_chunks_mut(&mut out, n_q * d, |row, out_row| {
            let q_row = &q[row * n_q * d..(row + 1) * n_q * d];
            let k_row = &k[row * n_k * d..(row + 1) * n_k * d];
            let v_row = &v[row * n_k * d..(row + 1) * n_k * d];
            let mut scores = vec![0f32; QUERY_BLOCK.min(n_q) * n_k];
            let mut q0 = 0;
            while q0 < n_q {
                let m = QUERY_BLOCK.min(n_q - q0);
                let tile = &mut scores[..m * n_k];
                // Scores: q block (m x d, row stride d) times K^T (d x n_k: element (c, j) at
                // j*d + c).
                let scored = matmul(tile, (m, n_k, d), (&q_row[q0 * d..], 1, d), (k_row, d, 1));
                for r in tile.chunks_mut(n_k) {
                    softmax_row(r);
                }
                // Output block: probs (m x n_k) times V (n_k x d).
                let out_block = &mut out_row[q0 * d..(q0 + m) * d];
                let mixed = matmul(out_block, (m, d, n_k), (tile, 1, n_k), (v_row, 1, d));
                if !(scored && mixed) {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                q0 += m;
            }
        });
        if failed.load(std::sync::atomic::Ordering::Relaxed) {
            candle_core::bail!("fused attention: an operand is shorter than its shape");
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, n_q, d))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::nn::kernels::test_support::rel;
    use candle_core::Device;

    fn reference(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let scores = q.matmul(&k.t().unwrap()).unwrap();
        candle_nn::ops::softmax_last_dim(&scores)
            .unwrap()
            .matmul(v)
            .unwrap()
    }

    #[test]
    fn matches_matmul_softmax_matmul() {
        let dev = Device::Cpu;
        // (rows, queries, keys, head size): blocks that do and do not divide, cross-attention's 77.
        for (rows, n_q, n_k, d) in [
            (4, 130, 130, 40),
            (2, 64, 77, 80),
            (3, 5, 300, 8),
            (2, 1, 1, 3),
        ] {
            let q = (Tensor::randn(0f32, 1., (rows, n_q, d), &dev).unwrap() * 0.3).unwrap();
            let k = Tensor::randn(0f32, 1., (rows, n_k, d), &dev).unwrap();
            let v = Tensor::randn(0f32, 1., (rows, n_k, d), &dev).unwrap();
            let ours = attention(&q, &k, &v).unwrap().unwrap();
            assert_eq!(ours.dims(), &[rows, n_q, d]);
            assert!(
                rel(&ours, &reference(&q, &k, &v)) < 1e-5,
                "{rows} {n_q} {n_k} {d}"
            );
        }
    }

    #[test]
    fn declines_what_it_does_not_cover() {
        let dev = Device::Cpu;
        let one_row = Tensor::zeros((1, 4, 8), candle_core::DType::F32, &dev).unwrap();
        if candle_core::utils::get_num_threads() > 1 {
            assert!(attention(&one_row, &one_row, &one_row).is_none());
        }
        let half = Tensor::zeros((4, 4, 8), candle_core::DType::F16, &dev).unwrap();
        assert!(attention(&half, &half, &half).is_none());
    }
}
