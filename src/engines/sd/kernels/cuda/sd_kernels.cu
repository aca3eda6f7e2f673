// CUDA kernels for the Stable Diffusion engine, compiled to PTX by build.rs when the `cuda`
// feature is on (src/engines/sd/kernels/cuda.rs launches them). Every kernel reads and writes
// contiguous tensors and accumulates in f32 whatever the storage type.

#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>

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
// rows in NCHW order directly. Grid (blocks over positions, rows): one column row per blockIdx.y,
// so each thread does one 32-bit division per element.
template <typename T>
__device__ void im2col_nchw(const T *x, T *col, int rows, int h, int w, int kh, int kw,
                            int stride, int pad, int w_out, int p0, int pn) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const int kx = r % kw;
        const int ky = (r / kw) % kh;
        const int ci = r / (kw * kh);
        const T *xc = x + (int64_t)ci * h * w;
        T *dst = col + (int64_t)r * pn;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < pn; p += gridDim.x * blockDim.x) {
            const int q = p0 + p;
            const int oy = q / w_out, ox = q - (q / w_out) * w_out;
            const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
            T v = from_f<T>(0.f);
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = xc[iy * w + ix];
            dst[p] = v;
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
    extern "C" __global__ void im2col_nchw_##SUFFIX(const T *x, T *col, int rows, int h,       \
                                                    int w, int kh, int kw, int stride,         \
                                                    int pad, int w_out, int p0, int pn) {      \
        im2col_nchw<T>(x, col, rows, h, w, kh, kw, stride, pad, w_out, p0, pn);                \
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
