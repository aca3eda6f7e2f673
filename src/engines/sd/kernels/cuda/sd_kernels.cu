// CUDA kernels for the Stable Diffusion engine, compiled to PTX by build.rs when the `cuda`
// feature is on (src/engines/sd/kernels/cuda.rs launches them). Every kernel reads and writes
// contiguous tensors and accumulates in f32 whatever the storage type.

#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <type_traits>

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v, float *shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    const int warps = blockDim.x >> 5;
    v = (int)threadIdx.x < warps ? shared[threadIdx.x] : 0.f;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) shared[32] = v;
    }
    __syncthreads();
    const float total = shared[32];
    __syncthreads();
    return total;
}

// GroupNorm statistics. x is (batch, channels, spatial) contiguous, so group `bg` (batch-major)
// is the contiguous run [bg*n, (bg+1)*n). Grid (splits, batch*groups): each block sums one
// `chunk` of its group, shifted by the group's first element (which keeps the variance exact
// where mean^2 >> variance), into stats[2*bg] (sum of d) and stats[2*bg+1] (sum of d^2).
template <typename T>
__device__ void gn_stats(const T *x, float *stats, int64_t n, int64_t chunk) {
    __shared__ float shared[33];
    const int64_t bg = blockIdx.y;
    const T *xs = x + bg * n;
    const float x0 = to_f(xs[0]);
    const int64_t start = (int64_t)blockIdx.x * chunk;
    const int64_t end = min(start + chunk, n);
    float s = 0.f, q = 0.f;
    for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
        const float d = to_f(xs[i]) - x0;
        s += d;
        q += d * d;
    }
    s = block_sum(s, shared);
    q = block_sum(q, shared);
    if (threadIdx.x == 0) {
        atomicAdd(&stats[2 * bg], s);
        atomicAdd(&stats[2 * bg + 1], q);
    }
}

// y = (x - mean) / sqrt(var + eps) * w[c] + b[c], then SiLU when `silu` is set. Grid
// (blocks over the group, batch*groups): the group's statistics are read once per thread and the
// per-element index math is 32-bit.
template <typename T>
__device__ void gn_apply(const T *x, T *y, const float *stats, const T *w, const T *b, int n,
                         int spatial, int per_group, int groups, float eps, int silu) {
    const int bg = blockIdx.y;
    const float inv_n = 1.f / (float)n;
    const float mean_d = stats[2 * bg] * inv_n;
    const float var = fmaxf(stats[2 * bg + 1] * inv_n - mean_d * mean_d, 0.f);
    const T *xs = x + (int64_t)bg * n;
    T *ys = y + (int64_t)bg * n;
    const float mean = to_f(xs[0]) + mean_d;
    const float inv_std = rsqrtf(var + eps);
    const int c0 = (bg % groups) * per_group;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
        const int c = c0 + j / spatial;
        float o = (to_f(xs[j]) - mean) * inv_std * to_f(w[c]) + to_f(b[c]);
        if (silu) o = o / (1.f + expf(-o));
        ys[j] = from_f<T>(o);
    }
}

// One batch element's im2col in the weight's own row order: col[(c*kh + ky)*kw + kx][p] for the
// output positions p in [p0, p0 + pn), so that weight (c_out, c_in*kh*kw) x col gives the output
// rows in NCHW order directly. Grid (blocks over groups of 8 positions, input channels): each
// thread reads its 8 positions' neighbourhood once and writes 16-byte runs to the kh*kw rows of
// its channel (plain stores where pn is not a multiple of 8).
template <typename T>
__device__ void im2col_nchw(const T *x, T *col, int c_in, int h, int w, int kh, int kw,
                            int stride, int pad, int w_out, int p0, int pn) {
    const int groups = (pn + 7) / 8;
    const bool vec = (pn & 7) == 0;
    for (int ci = blockIdx.y; ci < c_in; ci += gridDim.y) {
        const T *xc = x + (int64_t)ci * h * w;
        for (int gi = blockIdx.x * blockDim.x + threadIdx.x; gi < groups;
             gi += gridDim.x * blockDim.x) {
            const int p = gi * 8;
            const int n = min(8, pn - p);
            int oy[8], ox[8];
            int y0 = (p0 + p) / w_out, x0 = (p0 + p) - y0 * w_out;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                oy[i] = y0 * stride - pad;
                ox[i] = x0 * stride - pad;
                if (++x0 == w_out) {
                    x0 = 0;
                    ++y0;
                }
            }
            for (int ky = 0; ky < kh; ++ky) {
                for (int kx = 0; kx < kw; ++kx) {
                    __align__(16) T vals[8];
#pragma unroll
                    for (int i = 0; i < 8; ++i) {
                        const int iy = oy[i] + ky, ix = ox[i] + kx;
                        const bool in = i < n && iy >= 0 && iy < h && ix >= 0 && ix < w;
                        vals[i] = in ? xc[iy * w + ix] : from_f<T>(0.f);
                    }
                    T *dst = col + ((int64_t)(ci * kh + ky) * kw + kx) * pn + p;
                    if (vec) {
                        const uint4 *src = reinterpret_cast<const uint4 *>(vals);
                        uint4 *out = reinterpret_cast<uint4 *>(dst);
#pragma unroll
                        for (int v = 0; v < (int)(8 * sizeof(T) / 16); ++v) out[v] = src[v];
                    } else {
                        for (int i = 0; i < n; ++i) dst[i] = vals[i];
                    }
                }
            }
        }
    }
}

// y[b][c][p] += bias[c] in place, y (batch*channels rows of `positions`). Grid (blocks over
// positions, rows).
template <typename T>
__device__ void bias_nchw(T *y, const T *bias, int rows, int channels, int positions) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const float b = to_f(bias[r % channels]);
        T *yr = y + (int64_t)r * positions;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < positions;
             p += gridDim.x * blockDim.x)
            yr[p] = from_f<T>(to_f(yr[p]) + b);
    }
}

// y[r][p] = x[r][p] + bias[r % bias_len]: a per-channel (bias_len = channels) or per-(batch,
// channel) (bias_len = rows) value broadcast over the positions. Grid (blocks over positions,
// rows).
template <typename T>
__device__ void add_row_bias(const T *x, const T *bias, T *y, int rows, int bias_len,
                             int positions) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const float b = to_f(bias[r % bias_len]);
        const T *xr = x + (int64_t)r * positions;
        T *yr = y + (int64_t)r * positions;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < positions;
             p += gridDim.x * blockDim.x)
            yr[p] = from_f<T>(to_f(xr[p]) + b);
    }
}

// y[r][c] = x[r][c] + bias[c] (a Linear layer's bias over its rows). Grid (blocks over
// columns, rows).
template <typename T>
__device__ void add_col_bias(const T *x, const T *bias, T *y, int rows, int cols) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const T *xr = x + (int64_t)r * cols;
        T *yr = y + (int64_t)r * cols;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
            yr[c] = from_f<T>(to_f(xr[c]) + to_f(bias[c]));
    }
}

// y[b] = x[b]^T for (batch, rows, cols) -> (batch, cols, rows), through 32x32 tiles in shared
// memory so reads and writes are both coalesced. Grid (column tiles, row tiles, batch), blocks
// of 32x8 threads.
template <typename T>
__device__ void transpose2d(const T *x, T *y, int rows, int cols) {
    __shared__ T tile[32][33];
    const int64_t base = (int64_t)blockIdx.z * rows * cols;
    const int c0 = blockIdx.x * 32, r0 = blockIdx.y * 32;
    for (int i = threadIdx.y; i < 32; i += 8) {
        const int r = r0 + i, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[i][threadIdx.x] = x[base + (int64_t)r * cols + c];
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += 8) {
        const int c = c0 + i, r = r0 + threadIdx.x;
        if (r < rows && c < cols) y[base + (int64_t)c * rows + r] = tile[threadIdx.x][i];
    }
}

// Nearest-neighbour 2x upsampling of (planes, h, w) to (planes, 2h, 2w): each thread copies one
// input value to its 2x2 block. Grid (blocks over h*w, planes).
template <typename T>
__device__ void upsample2x(const T *x, T *y, int planes, int h, int w) {
    const int n = h * w;
    for (int pl = blockIdx.y; pl < planes; pl += gridDim.y) {
        const T *xp = x + (int64_t)pl * n;
        T *yp = y + (int64_t)pl * 4 * n;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
            const int iy = i / w, ix = i - iy * w;
            const T v = xp[i];
            T *top = yp + (int64_t)(2 * iy) * (2 * w) + 2 * ix;
            top[0] = v;
            top[1] = v;
            top[2 * w] = v;
            top[2 * w + 1] = v;
        }
    }
}

// diffusers' GEGLU on (rows, 2*d): out[r][j] = x[r][j] * gelu_erf(x[r][d + j]). Grid (blocks
// over j, rows).
template <typename T>
__device__ void geglu(const T *x, T *out, int d, int rows) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const T *xr = x + (int64_t)r * 2 * d;
        T *orow = out + (int64_t)r * d;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < d; j += gridDim.x * blockDim.x) {
            const float hidden = to_f(xr[j]);
            const float gate = to_f(xr[d + j]);
            const float g = 0.5f * gate * (1.f + erff(gate * 0.70710678118654752f));
            orow[j] = from_f<T>(hidden * g);
        }
    }
}

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
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int n = 0; n < BK / 8; ++n) {
            const int col = k0 + n * 8 + 2 * t;
#pragma unroll
            for (int i = 0; i < 4; ++i) s[n][i] *= scale;
            if (col >= n_k) s[n][0] = s[n][2] = -INFINITY;
            if (col + 1 >= n_k) s[n][1] = s[n][3] = -INFINITY;
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float c0 = __expf(m0 - mx0), c1 = __expf(m1 - mx1);
        m0 = mx0;
        m1 = mx1;
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
                p[4 * h + 0] = __expf(s[2 * kk + h][0] - m0);
                p[4 * h + 1] = __expf(s[2 * kk + h][1] - m0);
                p[4 * h + 2] = __expf(s[2 * kk + h][2] - m1);
                p[4 * h + 3] = __expf(s[2 * kk + h][3] - m1);
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

// Two blocks an SM (128 registers a thread) where that costs no more than a few spilled bytes;
// head size 80 keeps its registers and runs one.
#define FLASH_MMA(T, SUFFIX, D, DK, MIN_BLOCKS)                                                \
    extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS)                              \
        flash_attn_mma_d##D##_##SUFFIX(const T *q, const T *k, const T *v, T *o, int n_q,      \
                                       int n_k, int heads, float scale) {                      \
        flash_attn_mma<T, D, DK, false>(q, k, v, o, n_q, n_k, heads, scale);                   \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(256, 2)                                       \
        flash_attn_async_d##D##_##SUFFIX(const T *q, const T *k, const T *v, T *o, int n_q,    \
                                         int n_k, int heads, float scale) {                    \
        flash_attn_mma<T, D, DK, true>(q, k, v, o, n_q, n_k, heads, scale);                    \
    }

FLASH_MMA(__half, f16, 40, 48, 2)
FLASH_MMA(__half, f16, 64, 64, 2)
FLASH_MMA(__half, f16, 80, 80, 1)
FLASH_MMA(__nv_bfloat16, bf16, 40, 48, 2)
FLASH_MMA(__nv_bfloat16, bf16, 64, 64, 2)
FLASH_MMA(__nv_bfloat16, bf16, 80, 80, 1)

#define FLASH(T, SUFFIX, D)                                                                    \
    extern "C" __global__ void flash_attn_d##D##_##SUFFIX(const T *q, const T *k, const T *v,  \
                                                          T *o, int n_q, int n_k) {            \
        flash_attn<T, D>(q, k, v, o, n_q, n_k);                                                \
    }

#define SD_KERNELS(T, SUFFIX)                                                                  \
    extern "C" __global__ void gn_stats_##SUFFIX(const T *x, float *stats, int64_t n,          \
                                                 int64_t chunk) {                              \
        gn_stats<T>(x, stats, n, chunk);                                                       \
    }                                                                                          \
    extern "C" __global__ void gn_apply_##SUFFIX(const T *x, T *y, const float *stats,         \
                                                 const T *w, const T *b, int n, int spatial,   \
                                                 int per_group, int groups, float eps,         \
                                                 int silu) {                                   \
        gn_apply<T>(x, y, stats, w, b, n, spatial, per_group, groups, eps, silu);              \
    }                                                                                          \
    extern "C" __global__ void im2col_nchw_##SUFFIX(const T *x, T *col, int c_in, int h,       \
                                                    int w, int kh, int kw, int stride,         \
                                                    int pad, int w_out, int p0, int pn) {      \
        im2col_nchw<T>(x, col, c_in, h, w, kh, kw, stride, pad, w_out, p0, pn);                \
    }                                                                                          \
    extern "C" __global__ void bias_nchw_##SUFFIX(T *y, const T *bias, int rows, int channels, \
                                                  int positions) {                             \
        bias_nchw<T>(y, bias, rows, channels, positions);                                      \
    }                                                                                          \
    extern "C" __global__ void add_row_bias_##SUFFIX(const T *x, const T *bias, T *y,          \
                                                     int rows, int bias_len, int positions) {  \
        add_row_bias<T>(x, bias, y, rows, bias_len, positions);                                \
    }                                                                                          \
    extern "C" __global__ void add_col_bias_##SUFFIX(const T *x, const T *bias, T *y,          \
                                                     int rows, int cols) {                     \
        add_col_bias<T>(x, bias, y, rows, cols);                                               \
    }                                                                                          \
    extern "C" __global__ void transpose2d_##SUFFIX(const T *x, T *y, int rows, int cols) {   \
        transpose2d<T>(x, y, rows, cols);                                                      \
    }                                                                                          \
    extern "C" __global__ void upsample2x_##SUFFIX(const T *x, T *y, int planes, int h,        \
                                                   int w) {                                    \
        upsample2x<T>(x, y, planes, h, w);                                                     \
    }                                                                                          \
    extern "C" __global__ void geglu_##SUFFIX(const T *x, T *out, int d, int rows) {           \
        geglu<T>(x, out, d, rows);                                                             \
    }                                                                                          \
    FLASH(T, SUFFIX, 40)                                                                       \
    FLASH(T, SUFFIX, 64)                                                                       \
    FLASH(T, SUFFIX, 80)

SD_KERNELS(float, f32)
SD_KERNELS(__half, f16)
SD_KERNELS(__nv_bfloat16, bf16)
