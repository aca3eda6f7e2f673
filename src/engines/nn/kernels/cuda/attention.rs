//! Fused attention on CUDA (online softmax, scores never stored): on tensor cores (mma.sync,
//! FlashAttention-2's loop) for f16 and bf16 when the PTX targets sm_80 or newer; otherwise,
//! for f32, or when asked (to compare), one thread per query in f32.
use super::*;

/// Head sizes the fused attention kernels are compiled for.
pub const FLASH_HEAD_DIMS: [usize; 4] = super::super::FUSED_ATTENTION_HEAD_DIMS;

/// Head sizes with the double-buffered (cp.async) tensor-core kernel; larger ones take the
/// register-prefetch kernel (its tiles fit the static shared memory a kernel may declare).
const ASYNC_HEAD_DIMS: [usize; 3] = [40, 64, 80];

/// Queries per block of the tensor-core kernel (eight warps of 16) and its threads.
const TC_QUERIES: usize = 128;
const TC_THREADS: u32 = 256;

/// Whether the PTX was built for a GPU with mma.sync on half types (build.rs sets `sd_mma` for
/// CUDA_COMPUTE_CAP 80 and up).
const MMA_BUILT: bool = cfg!(sd_mma);

/// Attention with the online softmax in one kernel. `q` (b, n_q, heads*d), `k`/`v` (b, n_k,
/// heads*d) with the heads side by side in each token, as the projections write them (heads 1:
/// already split per head, (rows, n, d)); `d` one of `FLASH_HEAD_DIMS`; the output has q's
/// layout. `tensor_cores` picks the MMA kernel for f16 and bf16, which applies `scale` itself
/// and reads any `heads`; the scalar kernel (f32, or when asked) takes one head per row and `q`
/// already scaled (`heads` 1, `scale` 1).
pub struct FlashAttnOp {
    pub tensor_cores: bool,
    pub heads: usize,
    pub scale: f32,
}

impl FlashAttnOp {
    /// Whether this op runs the tensor-core kernel for `dtype`.
    pub fn uses_tensor_cores(&self, dtype: candle_core::DType) -> bool {
        let half = matches!(dtype, candle_core::DType::F16 | candle_core::DType::BF16);
        self.tensor_cores && MMA_BUILT && half
    }

    fn launch<T: Element>(
        &self,
        (q, ql): (CudaView<T>, &Layout),
        (k, kl): (CudaView<T>, &Layout),
        v: CudaView<T>,
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        let (b, n_q, inner) = ql.shape().dims3()?;
        let (k_b, n_k, k_inner) = kl.shape().dims3()?;
        let heads = self.heads.max(1);
        let d = inner / heads;
        if k_b != b
            || k_inner != inner
            || inner % heads != 0
            || !FLASH_HEAD_DIMS.contains(&d)
            || n_k == 0
        {
            bail!(
                "fused attention: q {:?} k {:?} with {heads} heads",
                ql.dims(),
                kl.dims()
            );
        }
        let rows = b * heads;
        if rows > 65535 {
            bail!("fused attention: {rows} batch*heads rows exceed the grid");
        }
        let tc = self.uses_tensor_cores(T::DTYPE);
        if !tc && (heads != 1 || self.scale != 1.0) {
            bail!("fused attention: the scalar kernel takes split heads and a pre-scaled q");
        }
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(b * n_q * inner)? };
        let stream = dev.cuda_stream();
        let aligned = [&q, &k, &v]
            .iter()
            .all(|t| t.device_ptr(&stream).0 % 16 == 0);
        // cp.async tiles need 16-byte aligned inputs; others take the register-prefetch kernel.
        let name = if tc && aligned && ASYNC_HEAD_DIMS.contains(&d) {
            format!("flash_attn_async_d{d}_{}", T::DTYPE.as_str())
        } else if tc {
            format!("flash_attn_mma_d{d}_{}", T::DTYPE.as_str())
        } else {
            format!("flash_attn_d{d}_{}", T::DTYPE.as_str())
        };
        let func = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&q);
        launch.arg(&k);
        launch.arg(&v);
        launch.arg(&out);
        let (nq, nk, h32) = (i32_arg(n_q)?, i32_arg(n_k)?, i32_arg(heads)?);
        launch.arg(&nq);
        launch.arg(&nk);
        if tc {
            launch.arg(&h32);
            launch.arg(&self.scale);
        }
        // The scalar kernel runs a query a thread, the MMA one 16 queries a warp.
        let (block, per_block) = if tc {
            (TC_THREADS, TC_QUERIES)
        } else {
            (128u32, 128)
        };
        let cfg = LaunchConfig {
            grid_dim: (n_q.div_ceil(per_block) as u32, rows as u32, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: shapes checked above; the kernel reads b*n*heads*d elements of each input.
        unsafe { launch.launch(cfg) }.w()?;
        Ok(out)
    }
}

impl CustomOp3 for FlashAttnOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-flash-attention"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        ql: &Layout,
        k: &CudaStorage,
        kl: &Layout,
        v: &CudaStorage,
        vl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &q.device;
        if vl.dims() != kl.dims() {
            bail!(
                "fused attention: k {:?} and v {:?} differ",
                kl.dims(),
                vl.dims()
            );
        }
        let out = by_dtype!("fused attention", [q => qs, k => ks, v => vs], {
            let o = self.launch(
                (contiguous(qs, ql, "attention q")?, ql),
                (contiguous(ks, kl, "attention k")?, kl),
                contiguous(vs, vl, "attention v")?,
                dev,
            )?;
            (o, ql.shape().clone())
        });
        Ok(storage(dev, out))
    }
}
