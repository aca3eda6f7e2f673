// GroupNorm(+SiLU): grid-wide statistics, then one fused apply pass. Included by sd_kernels.cu (one PTX module).
#pragma once

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
