// Memory-bound element-wise kernels: bias broadcasts, transpose, 2x upsampling, GEGLU. Included by sd_kernels.cu (one PTX module).
#pragma once

// y[r][p] = x[r][p] + bias[r % bias_len]: a per-channel (bias_len = channels) or per-(batch,
// channel) (bias_len = rows) value broadcast over the positions; x may be y (a convolution's
// bias, in place). Grid (blocks over positions, rows).
template <typename T>
__device__ void add_row_bias(const T *x, const T *bias, T *y, int rows, int bias_len,
                             int positions) {
    constexpr int V = VEC_OF(T);
    const bool vec = positions % V == 0 && aligned16(x) && aligned16(y);
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const float b = to_f(bias[r % bias_len]);
        const T *xr = x + (int64_t)r * positions;
        T *yr = y + (int64_t)r * positions;
        if (vec) {
            for (int p = (blockIdx.x * blockDim.x + threadIdx.x) * V; p < positions;
                 p += gridDim.x * blockDim.x * V) {
                __align__(16) T v[V];
                load16(v, xr + p);
#pragma unroll
                for (int e = 0; e < V; ++e) v[e] = from_f<T>(to_f(v[e]) + b);
                store16(yr + p, v);
            }
            continue;
        }
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < positions;
             p += gridDim.x * blockDim.x)
            yr[p] = from_f<T>(to_f(xr[p]) + b);
    }
}

// y[r][c] = x[r][c] + bias[c] (a Linear layer's bias over its rows). Grid (blocks over
// columns, rows).
template <typename T>
__device__ void add_col_bias(const T *x, const T *bias, T *y, int rows, int cols) {
    constexpr int V = VEC_OF(T);
    const bool vec = cols % V == 0 && aligned16(x) && aligned16(y) && aligned16(bias);
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const T *xr = x + (int64_t)r * cols;
        T *yr = y + (int64_t)r * cols;
        if (vec) {
            for (int c = (blockIdx.x * blockDim.x + threadIdx.x) * V; c < cols;
                 c += gridDim.x * blockDim.x * V) {
                __align__(16) T v[V], b[V];
                load16(v, xr + c);
                load16(b, bias + c);
#pragma unroll
                for (int e = 0; e < V; ++e) v[e] = from_f<T>(to_f(v[e]) + to_f(b[e]));
                store16(yr + c, v);
            }
            continue;
        }
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
template <typename T, bool BIAS>
__device__ __forceinline__ float geglu_one(float hidden, float gate, const T *bias, int j, int d) {
    if (BIAS) {
        // The projection's bias, added here instead of in a pass of its own; rounded to the
        // storage type first, as the separate add would have stored it.
        hidden = to_f(from_f<T>(hidden + to_f(bias[j])));
        gate = to_f(from_f<T>(gate + to_f(bias[d + j])));
    }
    return hidden * (0.5f * gate * (1.f + erff(gate * 0.70710678118654752f)));
}

template <typename T, bool BIAS>
__device__ void geglu(const T *x, const T *bias, T *out, int d, int rows) {
    constexpr int V = VEC_OF(T);
    const bool vec = d % V == 0 && aligned16(x) && aligned16(out);
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const T *xr = x + (int64_t)r * 2 * d;
        T *orow = out + (int64_t)r * d;
        if (vec) {
            for (int j = (blockIdx.x * blockDim.x + threadIdx.x) * V; j < d;
                 j += gridDim.x * blockDim.x * V) {
                __align__(16) T h[V], g[V];
                load16(h, xr + j);
                load16(g, xr + d + j);
#pragma unroll
                for (int e = 0; e < V; ++e)
                    h[e] = from_f<T>(geglu_one<T, BIAS>(to_f(h[e]), to_f(g[e]), bias, j + e, d));
                store16(orow + j, h);
            }
            continue;
        }
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < d; j += gridDim.x * blockDim.x)
            orow[j] = from_f<T>(geglu_one<T, BIAS>(to_f(xr[j]), to_f(xr[d + j]), bias, j, d));
    }
}
