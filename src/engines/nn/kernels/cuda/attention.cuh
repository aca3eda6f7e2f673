// Fused attention: the scalar kernel and the tensor-core (mma.sync) one. Included by sd_kernels.cu (one PTX module).
#pragma once

// Attention for one (batch*head) row and one query per thread, online softmax over key tiles
// held in shared memory (flash attention without tensor cores): the (queries x keys) scores are
// never written to memory. q (rows, n_q, D) already scaled, k/v (rows, n_k, D), all contiguous;
// everything accumulates in f32. Grid (query blocks, rows).
template <typename T, int D>
__device__ void flash_attn(const T *q, const T *k, const T *v, T *o, int n_q, int n_k) {
    constexpr int BK = 32;
    __shared__ float ks[BK][D];
    __shared__ float vs[BK][D];
    const int64_t row = blockIdx.y;
    const int qi = blockIdx.x * blockDim.x + threadIdx.x;
    const bool active = qi < n_q;
    const T *qrow = q + (row * n_q + (active ? qi : 0)) * D;
    const T *kb = k + row * n_k * D;
    const T *vb = v + row * n_k * D;
    float qr[D], acc[D];
#pragma unroll
    for (int c = 0; c < D; ++c) {
        qr[c] = to_f(qrow[c]);
        acc[c] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int k0 = 0; k0 < n_k; k0 += BK) {
        const int nk = min(BK, n_k - k0);
        __syncthreads();
        for (int e = threadIdx.x; e < BK * D; e += blockDim.x) {
            const int j = e / D, c = e - j * D;
            float kv = 0.f, vv = 0.f;
            if (j < nk) {
                kv = to_f(kb[(int64_t)(k0 + j) * D + c]);
                vv = to_f(vb[(int64_t)(k0 + j) * D + c]);
            }
            ks[j][c] = kv;
            vs[j][c] = vv;
        }
        __syncthreads();
        float s[BK];
        float tile_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < BK; ++j) {
            float dot = 0.f;
#pragma unroll
            for (int c = 0; c < D; ++c) dot += qr[c] * ks[j][c];
            s[j] = j < nk ? dot : -INFINITY;
            tile_max = fmaxf(tile_max, s[j]);
        }
        const float m_new = fmaxf(m, tile_max);
        const float rescale = expf(m - m_new);
        l *= rescale;
#pragma unroll
        for (int c = 0; c < D; ++c) acc[c] *= rescale;
#pragma unroll
        for (int j = 0; j < BK; ++j) {
            const float p = expf(s[j] - m_new);
            l += p;
#pragma unroll
            for (int c = 0; c < D; ++c) acc[c] += p * vs[j][c];
        }
        m = m_new;
    }
    if (active) {
        T *orow = o + (row * n_q + qi) * D;
        const float inv = 1.f / l;
#pragma unroll
        for (int c = 0; c < D; ++c) orow[c] = from_f<T>(acc[c] * inv);
    }
}

// Attention on tensor cores: FlashAttention-2's loop on mma.sync m16n8k16 (f16 or bf16 in, f32
// accumulate; sm_80 and newer). A block takes 128 queries of one (batch*head) row, one warp per
// 16; key tiles of 64 rows and the matching V^T tile are staged in shared memory. Scores,
// probabilities and the output stay in registers: the accumulator layout of Q.K^T is the
// operand layout of P.V, so P goes from one MMA to the next without touching memory. The
// probabilities are rounded to the input type for P.V, as FlashAttention does. q (b, n_q,
// heads*D), k/v (b, n_k, heads*D) and o (b, n_q, heads*D) contiguous, heads side by side in
// each token as the projections write them (heads = 1: already split per head); the scores are
// multiplied by `scale` in f32. D a multiple of 8; DK is D rounded up to 16 (the Q.K^T
// reduction; the padding is zeros). Grid (query blocks, b*heads), 256 threads (eight warps of
// 16 queries share each key/value tile).
namespace mma {
constexpr int BQ = 128, BK = 64, THREADS = 256;

template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}

// c += a . b for one 16x8 tile (a 16x16 row-major, b 16x8 column-major, in registers).
template <typename T>
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                         uint32_t b1) {
#if __CUDA_ARCH__ >= 800
    if constexpr (sizeof(T) == 2 && std::is_same<T, __half>::value) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
#else
    __trap();
#endif
}

// Two consecutive elements (col even) of token r of one head (D values, tokens `ts` apart) as
// one register; zero outside.
template <typename T, int D>
__device__ __forceinline__ uint32_t pair(const T *m, int r, int n, int col, int ts) {
    if (r >= n || col >= D) return 0u;
    return *reinterpret_cast<const uint32_t *>(m + (int64_t)r * ts + col);
}
// 16 bytes global -> shared without passing through registers; zeros where !valid.
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
#if __CUDA_ARCH__ >= 800
    const unsigned dst = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem),
                 "r"(valid ? 16 : 0));
#else
    __trap();
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Waits until at most N committed groups are still in flight.
template <int N> __device__ __forceinline__ void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}
// Two 8x8 tiles of 16-bit values, transposed, from rows whose addresses lanes 0-15 give.
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t &a, uint32_t &b, const void *smem) {
#if __CUDA_ARCH__ >= 800
    const unsigned src = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(a), "=r"(b)
                 : "r"(src));
#else
    __trap();
#endif
}
// 2^x on the special-function unit (what __expf runs after its multiply by log2(e)).
__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
} // namespace mma

// ASYNC: key/value tiles double-buffered with cp.async (the next tile streams in while this one
// is computed on; 16-byte aligned q/k/v) and V read row-major through ldmatrix.trans; otherwise
// the next tile is prefetched through registers and V stored transposed.
template <typename T, int D, int DK, bool ASYNC>
__device__ void flash_attn_mma(const T *q, const T *k, const T *v, T *o, int n_q, int n_k,
                               int heads, float scale) {
    using mma::BK;
    using mma::BQ;
    static_assert(D % 8 == 0 && DK % 16 == 0 && DK >= D, "head dims");
    constexpr int KS = DK + 8; // K tile row stride (elements): conflict-free 32-bit reads
    constexpr int VS = BK + 8; // V^T tile row stride
    // Row-major V rows for ldmatrix: an odd number of 16-byte units apart, conflict-free.
    constexpr int VR = ((D + 8) / 8) % 2 == 1 ? D + 8 : D + 16;
    constexpr int SMEM = ASYNC ? 2 * BK * (KS + VR) : BK * KS + D * VS;
    __shared__ __align__(16) T smem[SMEM];
    T *ks = smem;
    T *vts = smem + BK * KS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int64_t bi = blockIdx.y / heads, head = blockIdx.y % heads;
    const int ts = heads * D;
    const T *qb = q + bi * n_q * ts + head * D;
    const T *kb = k + bi * n_k * ts + head * D;
    const T *vb = v + bi * n_k * ts + head * D;
    T *ob = o + bi * n_q * ts + head * D;
    const int r0 = blockIdx.x * BQ + warp * 16 + g; // this thread's rows: r0 and r0 + 8

    uint32_t qf[DK / 16][4];
#pragma unroll
    for (int c = 0; c < DK / 16; ++c) {
        qf[c][0] = mma::pair<T, D>(qb, r0, n_q, c * 16 + 2 * t, ts);
        qf[c][1] = mma::pair<T, D>(qb, r0 + 8, n_q, c * 16 + 2 * t, ts);
        qf[c][2] = mma::pair<T, D>(qb, r0, n_q, c * 16 + 8 + 2 * t, ts);
        qf[c][3] = mma::pair<T, D>(qb, r0 + 8, n_q, c * 16 + 8 + 2 * t, ts);
    }
    float acc[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    const float sl2 = scale * 1.4426950408889634f; // scale * log2(e)

    // The next key/value tile is fetched into registers while this one is computed on, so the
    // global loads' latency overlaps the MMAs; element e of a tile is (row e / (W/2), pair e % (W/2)).
    constexpr int KW = (BK * (DK / 2) + mma::THREADS - 1) / mma::THREADS;
    constexpr int VW = (BK * (D / 2) + mma::THREADS - 1) / mma::THREADS;
    uint32_t kreg[KW], vreg[VW];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int i = 0; i < KW; ++i) {
            const int e = threadIdx.x + i * mma::THREADS;
            const int j = e / (DK / 2), c = (e - j * (DK / 2)) * 2;
            kreg[i] = e < BK * (DK / 2) ? mma::pair<T, D>(kb, k0 + j, n_k, c, ts) : 0u;
        }
#pragma unroll
        for (int i = 0; i < VW; ++i) {
            const int e = threadIdx.x + i * mma::THREADS;
            const int j = e / (D / 2), c = (e - j * (D / 2)) * 2;
            vreg[i] = e < BK * (D / 2) ? mma::pair<T, D>(vb, k0 + j, n_k, c, ts) : 0u;
        }
    };
    // ASYNC: buffer b holds K at smem + b*BK*KS and V at smem + 2*BK*KS + b*BK*VR.
    auto issue = [&](int k0, int b) {
        if constexpr (ASYNC) {
            T *kd = smem + b * BK * KS;
            T *vd = smem + 2 * BK * KS + b * BK * VR;
            for (int e = threadIdx.x; e < BK * (D / 8); e += mma::THREADS) {
                const int j = e / (D / 8), c = (e - j * (D / 8)) * 8;
                const bool in = k0 + j < n_k;
                const int64_t at = in ? (int64_t)(k0 + j) * ts + c : 0;
                mma::cp_async16(kd + j * KS + c, kb + at, in);
                mma::cp_async16(vd + j * VR + c, vb + at, in);
            }
            mma::cp_async_commit();
        }
    };
    if constexpr (ASYNC) {
        // The K columns past D (the reduction's zero padding) are never written by the copies.
        for (int e = threadIdx.x; e < 2 * BK * (KS - D); e += mma::THREADS) {
            const int row = e / (KS - D), c = D + e % (KS - D);
            smem[row * KS + c] = from_f<T>(0.f);
        }
        issue(0, 0);
    } else {
        fetch(0);
    }
    int buf = 0;
    for (int k0 = 0; k0 < n_k; k0 += BK, buf ^= 1) {
        __syncthreads();
        if constexpr (ASYNC) {
            if (k0 + BK < n_k) {
                issue(k0 + BK, buf ^ 1);
                mma::cp_async_wait<1>();
            } else {
                mma::cp_async_wait<0>();
            }
            __syncthreads();
            ks = smem + buf * BK * KS;
            vts = smem + 2 * BK * KS + buf * BK * VR;
        }
#pragma unroll
        for (int i = 0; i < (ASYNC ? 0 : KW); ++i) {
            const int e = threadIdx.x + i * mma::THREADS;
            const int j = e / (DK / 2), c = (e - j * (DK / 2)) * 2;
            if (e < BK * (DK / 2)) *reinterpret_cast<uint32_t *>(ks + j * KS + c) = kreg[i];
        }
#pragma unroll
        for (int i = 0; i < (ASYNC ? 0 : VW); ++i) {
            const int e = threadIdx.x + i * mma::THREADS;
            const int j = e / (D / 2), c = (e - j * (D / 2)) * 2;
            if (e < BK * (D / 2)) {
                const T *two = reinterpret_cast<const T *>(&vreg[i]);
                vts[c * VS + j] = two[0];
                vts[(c + 1) * VS + j] = two[1];
            }
        }
        if constexpr (!ASYNC) {
            __syncthreads();
            if (k0 + BK < n_k) fetch(k0 + BK);
        }

        float s[BK / 8][4];
#pragma unroll
        for (int n = 0; n < BK / 8; ++n) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
            const T *kr = ks + (n * 8 + g) * KS + 2 * t;
#pragma unroll
            for (int c = 0; c < DK / 16; ++c) {
                const uint32_t b0 = *reinterpret_cast<const uint32_t *>(kr + c * 16);
                const uint32_t b1 = *reinterpret_cast<const uint32_t *>(kr + c * 16 + 8);
                mma::mma16816<T>(s[n], qf[c], b0, b1);
            }
        }
        // Scores stay unscaled (scale > 0 keeps the maximum where it is); the scale and log2(e)
        // go into one FMA before each exp2 below. Only the last tile can run past n_k.
        float mx0 = m0, mx1 = m1;
        const bool partial = k0 + BK > n_k;
#pragma unroll
        for (int n = 0; n < BK / 8; ++n) {
            if (partial) {
                const int col = k0 + n * 8 + 2 * t;
                if (col >= n_k) s[n][0] = s[n][2] = -INFINITY;
                if (col + 1 >= n_k) s[n][1] = s[n][3] = -INFINITY;
            }
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float c0 = mma::exp2_approx((m0 - mx0) * sl2);
        const float c1 = mma::exp2_approx((m1 - mx1) * sl2);
        m0 = mx0;
        m1 = mx1;
        const float mb0 = m0 * sl2, mb1 = m1 * sl2;
        l0 *= c0;
        l1 *= c1;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
            acc[j][0] *= c0;
            acc[j][1] *= c0;
            acc[j][2] *= c1;
            acc[j][3] *= c1;
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
            float p[8];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                p[4 * h + 0] = mma::exp2_approx(fmaf(s[2 * kk + h][0], sl2, -mb0));
                p[4 * h + 1] = mma::exp2_approx(fmaf(s[2 * kk + h][1], sl2, -mb0));
                p[4 * h + 2] = mma::exp2_approx(fmaf(s[2 * kk + h][2], sl2, -mb1));
                p[4 * h + 3] = mma::exp2_approx(fmaf(s[2 * kk + h][3], sl2, -mb1));
            }
            l0 += p[0] + p[1] + p[4] + p[5];
            l1 += p[2] + p[3] + p[6] + p[7];
            const uint32_t pa[4] = {mma::pack2<T>(p[0], p[1]), mma::pack2<T>(p[2], p[3]),
                                    mma::pack2<T>(p[4], p[5]), mma::pack2<T>(p[6], p[7])};
#pragma unroll
            for (int j = 0; j < D / 8; ++j) {
                uint32_t b0, b1;
                if constexpr (ASYNC) {
                    mma::ldmatrix_x2_trans(b0, b1, vts + (kk * 16 + (lane & 15)) * VR + j * 8);
                } else {
                    const T *vr = vts + (j * 8 + g) * VS + kk * 16 + 2 * t;
                    b0 = *reinterpret_cast<const uint32_t *>(vr);
                    b1 = *reinterpret_cast<const uint32_t *>(vr + 8);
                }
                mma::mma16816<T>(acc[j], pa, b0, b1);
            }
        }
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float i0 = 1.f / l0, i1 = 1.f / l1;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
        const int col = j * 8 + 2 * t;
        if (r0 < n_q)
            *reinterpret_cast<uint32_t *>(ob + (int64_t)r0 * ts + col) =
                mma::pack2<T>(acc[j][0] * i0, acc[j][1] * i0);
        if (r0 + 8 < n_q)
            *reinterpret_cast<uint32_t *>(ob + (int64_t)(r0 + 8) * ts + col) =
                mma::pack2<T>(acc[j][2] * i1, acc[j][3] * i1);
    }
}
