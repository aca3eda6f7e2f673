// Convolution helpers: the NCHW im2col, untiled and tiled (the bias is added in place by add_row_bias). Included by sd_kernels.cu (one PTX module).
#pragma once

// Writes one (ky, kx) row's 8 values for a thread's positions: a 16-byte run (or two for f32)
// where the chunk is a whole multiple of 8 positions, element by element otherwise.
template <typename T>
__device__ __forceinline__ void im2col_store(T *dst, const T *vals, int n, bool vec) {
    if (vec) {
        const uint4 *src = reinterpret_cast<const uint4 *>(vals);
        uint4 *out = reinterpret_cast<uint4 *>(dst);
#pragma unroll
        for (int v = 0; v < (int)(8 * sizeof(T) / 16); ++v) out[v] = src[v];
    } else {
        for (int i = 0; i < n; ++i) dst[i] = vals[i];
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
                    im2col_store(col + ((int64_t)(ci * kh + ky) * kw + kx) * pn + p, vals, n,
                                 vec);
                }
            }
        }
    }
}

// The 8 positions of a thread that lie in one output row (x0 a multiple of 8, stride S, kernel
// width 3): per kernel row, the 8 * S + 2 staged inputs they read come in 16-byte loads (the
// row pitch and x0 * S are multiples of 8 elements), then each kx is a shifted pick.
template <typename T, int S>
__device__ __forceinline__ void im2col_row_window(const T *row, T *dst0, int64_t row_step,
                                                  int kh, int sw, bool vec) {
    constexpr int V = 16 / sizeof(T);
    constexpr int WN = (8 * S + 2 + V - 1) / V * V;
    for (int ky = 0; ky < kh; ++ky) {
        __align__(16) T win[WN];
        const uint4 *src = reinterpret_cast<const uint4 *>(row + ky * sw);
#pragma unroll
        for (int q = 0; q < WN / V; ++q) reinterpret_cast<uint4 *>(win)[q] = src[q];
#pragma unroll
        for (int kx = 0; kx < 3; ++kx) {
            __align__(16) T vals[8];
#pragma unroll
            for (int i = 0; i < 8; ++i) vals[i] = win[i * S + kx];
            im2col_store(dst0 + (ky * 3 + kx) * row_step, vals, 8, vec);
        }
    }
}

// The same im2col over a tile of 8 * blockDim.x positions of one input channel of one batch
// element (grid: tiles, channels, elements `in_len` apart in x and `col_len` in col). The input
// rows the tile reads are staged once in shared memory (16-byte global loads where rows allow),
// borders zero-padded, row pitch `sw` (a multiple of 16 bytes, wide enough for the widest
// window; the launcher sizes it and the shared memory for the tallest tile); staged column c
// holds input column c - pad. Each thread then gathers its 8 positions from there and writes
// 16-byte runs.
template <typename T>
__device__ void im2col_tile(const T *x, T *col, int c_in, int h, int w, int kh, int kw,
                            int stride, int pad, int w_out, int p0, int pn, int64_t in_len,
                            int64_t col_len, int sw) {
    extern __shared__ __align__(16) unsigned char im2col_smem[];
    T *tile = reinterpret_cast<T *>(im2col_smem);
    constexpr int V = 16 / sizeof(T);
    const int pb = blockIdx.x * 8 * blockDim.x;
    if (pb >= pn) return;
    const int pe = min(pn, pb + 8 * (int)blockDim.x);
    const int oy0 = (p0 + pb) / w_out;
    const int oy1 = (p0 + pe - 1) / w_out;
    const int row0 = oy0 * stride - pad;
    const int rows = (oy1 - oy0) * stride + kh;
    const T *xe = x + (int64_t)blockIdx.z * in_len;
    T *ce = col + (int64_t)blockIdx.z * col_len;
    const bool vec = (pn & 7) == 0;
    const int p = pb + (int)threadIdx.x * 8;
    const int n = min(8, pe - p);
    const int y = (p0 + p) / w_out, xo = (p0 + p) - y * w_out;
    // A whole window in one output row: the fast gather for 3-wide kernels at stride 1 or 2.
    const bool window = n == 8 && w_out % 8 == 0 && kw == 3 && (stride == 1 || stride == 2);
    int base[8];
    {
        int yy = y, xx = xo;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            base[i] = (yy - oy0) * stride * sw + xx * stride;
            if (++xx == w_out) {
                xx = 0;
                ++yy;
            }
        }
    }
    for (int ci = blockIdx.y; ci < c_in; ci += gridDim.y) {
        const T *xc = xe + (int64_t)ci * h * w;
        const bool vec_rows = w % V == 0 && (reinterpret_cast<uintptr_t>(xc) & 15) == 0;
        __syncthreads();
        if (vec_rows) {
            const int chunks = w / V;
            for (int i = threadIdx.x; i < rows * chunks; i += blockDim.x) {
                const int r = i / chunks, j = i - r * chunks;
                const int iy = row0 + r;
                T *dst = tile + r * sw + pad + j * V;
                if (iy >= 0 && iy < h) {
                    __align__(16) T v[V];
                    *reinterpret_cast<uint4 *>(v) =
                        *reinterpret_cast<const uint4 *>(xc + (int64_t)iy * w + j * V);
#pragma unroll
                    for (int q = 0; q < V; ++q) dst[q] = v[q];
                } else {
#pragma unroll
                    for (int q = 0; q < V; ++q) dst[q] = from_f<T>(0.f);
                }
            }
            const int margin = sw - w;
            for (int i = threadIdx.x; i < rows * margin; i += blockDim.x) {
                const int r = i / margin, m = i - r * margin;
                tile[r * sw + (m < pad ? m : w + m)] = from_f<T>(0.f);
            }
        } else {
            for (int i = threadIdx.x; i < rows * sw; i += blockDim.x) {
                const int r = i / sw;
                const int iy = row0 + r, ix = i - r * sw - pad;
                tile[i] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? xc[(int64_t)iy * w + ix]
                                                                   : from_f<T>(0.f);
            }
        }
        __syncthreads();
        if (n <= 0) continue;
        T *dst0 = ce + (int64_t)ci * kh * kw * pn + p;
        if (window) {
            const T *row = tile + base[0];
            if (stride == 1)
                im2col_row_window<T, 1>(row, dst0, pn, kh, sw, vec);
            else
                im2col_row_window<T, 2>(row, dst0, pn, kh, sw, vec);
            continue;
        }
        for (int ky = 0; ky < kh; ++ky) {
            for (int kx = 0; kx < kw; ++kx) {
                const int off = ky * sw + kx;
                __align__(16) T vals[8];
#pragma unroll
                for (int i = 0; i < 8; ++i) vals[i] = i < n ? tile[base[i] + off] : from_f<T>(0.f);
                im2col_store(dst0 + (int64_t)(ky * kw + kx) * pn, vals, n, vec);
            }
        }
    }
}
