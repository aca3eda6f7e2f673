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
        par_chunks_mut(&mut out, n_q * d, |row, out_row| {
            let q_row = &q[row * n_q * d..(row + 1) * n_q * d];
            let k_row = &k[row * n_k * d..(row + 1) * n_k * d];
            let v_row = &v[row * n_k * d..(row + 1) * n_k * d];
            let mut scores = vec![0f32; QUERY_BLOCK.min(n_q) * n_k];
            let mut q0 = 0;
            while q0 < n_q {
                let m = QUERY_BLOCK.min(n_q - q0);
                let tile = &mut scores[..m * n_k];
                // SAFETY: every pointer addresses a slice of the stated (rows x cols, strides)
                // shape: q block m x d (row stride d), K^T d x n_k (element (c, j) at j*d + c),
                // the tile m x n_k, V n_k x d, the output block m x d; single-threaded GEMMs.
                unsafe {
                    gemm::gemm(
                        m,
                        n_k,
                        d,
                        tile.as_mut_ptr(),
                        1,
                        n_k as isize,
                        false,
                        q_row[q0 * d..].as_ptr(),
                        1,
                        d as isize,
                        k_row.as_ptr(),
                        d as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for r in tile.chunks_mut(n_k) {
                    softmax_row(r);
                }
                let out_block = &mut out_row[q0 * d..(q0 + m) * d];
                // SAFETY: as above.
                unsafe {
                    gemm::gemm(
                        m,
                        d,
                        n_k,
                        out_block.as_mut_ptr(),
                        1,
                        d as isize,
                        false,
                        tile.as_ptr(),
                        1,
                        n_k as isize,
                        v_row.as_ptr(),
                        1,
                        d as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                q0 += m;
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, n_q, d))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::sd::kernels::test_support::rel;
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
