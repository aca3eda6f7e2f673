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

// y = (x - mean) / sqrt(var + eps) * w[c] + b[c], then SiLU when `silu` is set.
template <typename T>
__device__ void gn_apply(const T *x, T *y, const float *stats, const T *w, const T *b, int64_t n,
                         int64_t spatial, int64_t per_group, int64_t groups, int64_t total,
                         float eps, int silu) {
    const float inv_n = 1.f / (float)n;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t bg = i / n;
        const int64_t c = (bg % groups) * per_group + (i - bg * n) / spatial;
        const float mean_d = stats[2 * bg] * inv_n;
        const float var = fmaxf(stats[2 * bg + 1] * inv_n - mean_d * mean_d, 0.f);
        const float mean = to_f(x[bg * n]) + mean_d;
        float o = (to_f(x[i]) - mean) * rsqrtf(var + eps) * to_f(w[c]) + to_f(b[c]);
        if (silu) o = o / (1.f + expf(-o));
        y[i] = from_f<T>(o);
    }
}

// One batch element's im2col in the weight's own row order: col[(c*kh + ky)*kw + kx][p] for the
// output positions p in [p0, p0 + pn), so that weight (c_out, c_in*kh*kw) x col gives the output
// rows in NCHW order directly.
template <typename T>
__device__ void im2col_nchw(const T *x, T *col, int c, int h, int w, int kh, int kw, int stride,
                            int pad, int w_out, int64_t p0, int64_t pn) {
    const int64_t total = (int64_t)c * kh * kw * pn;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t p = i % pn;
        const int64_t r = i / pn;
        const int kx = (int)(r % kw);
        const int ky = (int)((r / kw) % kh);
        const int ci = (int)(r / ((int64_t)kw * kh));
        const int64_t q = p0 + p;
        const int oy = (int)(q / w_out), ox = (int)(q % w_out);
        const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
        T v = from_f<T>(0.f);
        if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = x[((int64_t)ci * h + iy) * w + ix];
        col[i] = v;
    }
}

// diffusers' GEGLU on (rows, 2*d): out[r][j] = x[r][j] * gelu_erf(x[r][d + j]).
template <typename T>
__device__ void geglu(const T *x, T *out, int64_t d, int64_t total) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / d, j = i - r * d;
        const float hidden = to_f(x[r * 2 * d + j]);
        const float gate = to_f(x[r * 2 * d + d + j]);
        const float g = 0.5f * gate * (1.f + erff(gate * 0.70710678118654752f));
        out[i] = from_f<T>(hidden * g);
    }
}

#define SD_KERNELS(T, SUFFIX)                                                                  \
    extern "C" __global__ void gn_stats_##SUFFIX(const T *x, float *stats, int64_t n,          \
                                                 int64_t chunk) {                              \
        gn_stats<T>(x, stats, n, chunk);                                                       \
    }                                                                                          \
    extern "C" __global__ void gn_apply_##SUFFIX(                                              \
        const T *x, T *y, const float *stats, const T *w, const T *b, int64_t n,               \
        int64_t spatial, int64_t per_group, int64_t groups, int64_t total, float eps,          \
        int silu) {                                                                            \
        gn_apply<T>(x, y, stats, w, b, n, spatial, per_group, groups, total, eps, silu);       \
    }                                                                                          \
    extern "C" __global__ void im2col_nchw_##SUFFIX(const T *x, T *col, int c, int h, int w,   \
                                                    int kh, int kw, int stride, int pad,       \
                                                    int w_out, int64_t p0, int64_t pn) {       \
        im2col_nchw<T>(x, col, c, h, w, kh, kw, stride, pad, w_out, p0, pn);                   \
    }                                                                                          \
    extern "C" __global__ void geglu_##SUFFIX(const T *x, T *out, int64_t d, int64_t total) {  \
        geglu<T>(x, out, d, total);                                                            \
    }

SD_KERNELS(float, f32)
SD_KERNELS(__half, f16)
SD_KERNELS(__nv_bfloat16, bf16)
