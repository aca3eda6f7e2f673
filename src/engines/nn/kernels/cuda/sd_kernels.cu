// CUDA kernels for the Stable Diffusion engine, compiled to one PTX module by build.rs when the
// `cuda` feature is on (src/engines/nn/kernels/cuda.rs launches them). Every kernel reads and
// writes contiguous tensors and accumulates in f32 whatever the storage type. This file holds
// the shared helpers and the extern "C" entry points; each op's device code is in <op>.cuh.

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

// Elements in 16 bytes, and 16-byte loads/stores through registers (callers check alignment).
#define VEC_OF(T) ((int)(16 / sizeof(T)))
__device__ __forceinline__ bool aligned16(const void *p) {
    return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}
template <typename T> __device__ __forceinline__ void load16(T *dst, const T *src) {
    *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
}
template <typename T> __device__ __forceinline__ void store16(T *dst, const T *src) {
    *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
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

#include "group_norm.cuh"
#include "conv.cuh"
#include "elementwise.cuh"
#include "attention.cuh"
#include "modulation.cuh"

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

// Head size 128 (FLUX, Z-Image, SD 3.5): the register-prefetch kernel only, one block an SM. The
// double-buffered one's two K/V tiles would need 68 KiB of static shared memory (48 KiB is the
// most a kernel declares statically); attention.rs never asks for it. No scalar (f32) kernel:
// f32 at this head size composes candle's ops.
#define FLASH_MMA_SYNC(T, SUFFIX, D, DK)                                                       \
    extern "C" __global__ void __launch_bounds__(256, 1)                                       \
        flash_attn_mma_d##D##_##SUFFIX(const T *q, const T *k, const T *v, T *o, int n_q,      \
                                       int n_k, int heads, float scale) {                      \
        flash_attn_mma<T, D, DK, false>(q, k, v, o, n_q, n_k, heads, scale);                   \
    }

FLASH_MMA_SYNC(__half, f16, 128, 128)
FLASH_MMA_SYNC(__nv_bfloat16, bf16, 128, 128)

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
    extern "C" __global__ void im2col_tile_##SUFFIX(const T *x, T *col, int c_in, int h,       \
                                                    int w, int kh, int kw, int stride,         \
                                                    int pad, int w_out, int p0, int pn,        \
                                                    int64_t in_len, int64_t col_len,           \
                                                    int sw) {                                  \
        im2col_tile<T>(x, col, c_in, h, w, kh, kw, stride, pad, w_out, p0, pn, in_len,         \
                       col_len, sw);                                                           \
    }                                                                                          \
    extern "C" __global__ void bias_nchw_##SUFFIX(T *y, const T *bias, int rows, int channels, \
                                                  int positions) {                             \
        add_row_bias<T>(y, bias, y, rows, channels, positions); /* in place */                \
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
        geglu<T, false>(x, nullptr, out, d, rows);                                             \
    }                                                                                          \
    extern "C" __global__ void geglu_bias_##SUFFIX(const T *x, const T *bias, T *out, int d,   \
                                                   int rows) {                                 \
        geglu<T, true>(x, bias, out, d, rows);                                                 \
    }                                                                                          \
    FLASH(T, SUFFIX, 40)                                                                       \
    FLASH(T, SUFFIX, 64)                                                                       \
    FLASH(T, SUFFIX, 80)                                                                       \
    FLASH(T, SUFFIX, 128)                                                                      \
    extern "C" __global__ void ln_modulate_##SUFFIX(const T *x, const T *shift, const T *scale, \
                                                    T *y, int tokens, int dim, float eps) {    \
        ln_modulate<T>(x, shift, scale, y, tokens, dim, eps);                                  \
    }                                                                                          \
    extern "C" __global__ void gated_residual_##SUFFIX(const T *x, const T *gate, const T *y,  \
                                                       T *out, int rows, int tokens, int dim) { \
        gated_residual<T>(x, gate, y, out, rows, tokens, dim);                                 \
    }

SD_KERNELS(float, f32)
SD_KERNELS(__half, f16)
SD_KERNELS(__nv_bfloat16, bf16)
