// GroupNorm(+SiLU): grid-wide statistics, then one fused apply pass. Included by sd_kernels.cu (one PTX module).
#pragma once

// Whether a group of `n` elements at `p` can be read in 16-byte vectors.
template <typename T>
__device__ __forceinline__ bool gn_vectors(const T *p, int64_t n) {
    return (reinterpret_cast<uintptr_t>(p) & 15) == 0 && n % (16 / sizeof(T)) == 0;
}

// SiLU when asked: accurate exp and division for f32 storage, the fast intrinsics for the half
// types (their rounding is far below a half's).
template <typename T>
__device__ __forceinline__ float gn_silu(float o, int silu) {
    if (!silu) return o;
    if (sizeof(T) == 4) return o / (1.f + expf(-o));
    return __fdividef(o, 1.f + __expf(-o));
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
    if (gn_vectors<T>(xs, n) && (chunk & 7) == 0) {
        // 16-byte loads: 8 elements (4 for f32) at a time.
        constexpr int V = 16 / sizeof(T);
        for (int64_t i = start + threadIdx.x * V; i < end; i += blockDim.x * V) {
            __align__(16) T v[V];
            *reinterpret_cast<uint4 *>(v) = *reinterpret_cast<const uint4 *>(xs + i);
#pragma unroll
            for (int e = 0; e < V; ++e) {
                const float d = to_f(v[e]) - x0;
                s += d;
                q += d * d;
            }
        }
    } else {
        for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
            const float d = to_f(xs[i]) - x0;
            s += d;
            q += d * d;
        }
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
    constexpr int V = 16 / sizeof(T);
    if (gn_vectors<T>(xs, n) && gn_vectors<T>(ys, n) && spatial % V == 0) {
        // 16-byte loads and stores; a vector never straddles two channels.
        for (int j = (blockIdx.x * blockDim.x + threadIdx.x) * V; j < n;
             j += gridDim.x * blockDim.x * V) {
            const int c = c0 + j / spatial;
            const float scale = inv_std * to_f(w[c]), shift = to_f(b[c]);
            __align__(16) T v[V];
            *reinterpret_cast<uint4 *>(v) = *reinterpret_cast<const uint4 *>(xs + j);
#pragma unroll
            for (int e = 0; e < V; ++e) v[e] = from_f<T>(gn_silu<T>(fmaf(to_f(v[e]) - mean, scale, shift), silu));
            *reinterpret_cast<uint4 *>(ys + j) = *reinterpret_cast<const uint4 *>(v);
        }
        return;
    }
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
        const int c = c0 + j / spatial;
        float o = (to_f(xs[j]) - mean) * inv_std * to_f(w[c]) + to_f(b[c]);
        ys[j] = from_f<T>(gn_silu<T>(o, silu));
    }
}
