// The flow transformers' adaptive LayerNorm, one pass each: LayerNorm without affine (f32 inside,
// mean removed before the variance, as torch), then `norm * (1 + scale) + shift` with a per-image
// modulation; and the gated residual `x + y * gate`. Each rounds to T exactly where the chain of
// separate ops rounds (the LayerNorm's output, 1 + scale, the product, the sum), so bf16 and f16
// results equal candle's op-by-op ones. Included by sd_kernels.cu (one PTX module).
#pragma once

template <typename T> __device__ __forceinline__ float round_to(float v) {
    return to_f(from_f<T>(v));
}

// x (images * tokens, dim); shift/scale (images, dim); y like x. One block a row.
template <typename T>
__device__ void ln_modulate(const T *x, const T *shift, const T *scale, T *y, int tokens, int dim,
                            float eps) {
    __shared__ float shared[33];
    const int64_t row = blockIdx.x;
    const T *xr = x + row * dim;
    T *yr = y + row * dim;
    const int64_t image = row / tokens;
    const T *sh = shift + image * dim;
    const T *sc = scale + image * dim;
    float sum = 0.f;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) sum += to_f(xr[c]);
    const float mean = block_sum(sum, shared) / dim;
    float sq = 0.f;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) {
        const float d = to_f(xr[c]) - mean;
        sq += d * d;
    }
    const float rstd = rsqrtf(block_sum(sq, shared) / dim + eps);
    for (int c = threadIdx.x; c < dim; c += blockDim.x) {
        const float n = round_to<T>((to_f(xr[c]) - mean) * rstd);
        const float s1 = round_to<T>(to_f(sc[c]) + 1.f);
        const float t = round_to<T>(n * s1);
        yr[c] = from_f<T>(t + to_f(sh[c]));
    }
}

// out = x + y * gate, x/y (images * tokens, dim), gate (images, dim). Grid (blocks over dim,
// rows).
template <typename T>
__device__ void gated_residual(const T *x, const T *gate, const T *yv, T *out, int rows,
                               int tokens, int dim) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const T *g = gate + (int64_t)(r / tokens) * dim;
        const int64_t base = (int64_t)r * dim;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < dim; c += gridDim.x * blockDim.x) {
            const float t = round_to<T>(to_f(yv[base + c]) * to_f(g[c]));
            out[base + c] = from_f<T>(to_f(x[base + c]) + t);
        }
    }
}
