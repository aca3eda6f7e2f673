// Convolution helpers: the NCHW im2col and the in-place bias. Included by sd_kernels.cu (one PTX module).
#pragma once

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

// The same im2col over a tile of 8 * blockDim.x positions of one input channel of one batch
// element (grid: tiles, channels, elements `in_len` apart in x and `col_len` in col): the input
// rows the tile reads are staged once in shared memory, borders zero-padded, with coalesced
// reads; each thread then gathers its 8 positions from there and writes 16-byte runs. The
// launcher sizes the dynamic shared memory for the tallest tile (rows * (w + 2 * pad)).
template <typename T>
__device__ void im2col_tile(const T *x, T *col, int c_in, int h, int w, int kh, int kw,
                            int stride, int pad, int w_out, int p0, int pn, int64_t in_len,
                            int64_t col_len) {
    extern __shared__ __align__(16) unsigned char im2col_smem[];
    T *tile = reinterpret_cast<T *>(im2col_smem);
    const int sw = w + 2 * pad;
    const int pb = blockIdx.x * 8 * blockDim.x;
    if (pb >= pn) return;
    const int pe = min(pn, pb + 8 * (int)blockDim.x);
    const int oy0 = (p0 + pb) / w_out;
    const int oy1 = (p0 + pe - 1) / w_out;
    const int row0 = oy0 * stride - pad;
    const int staged = ((oy1 - oy0) * stride + kh) * sw;
    const T *xe = x + (int64_t)blockIdx.z * in_len;
    T *ce = col + (int64_t)blockIdx.z * col_len;
    const bool vec = (pn & 7) == 0;
    const int p = pb + (int)threadIdx.x * 8;
    const int n = min(8, pe - p);
    int base[8];
    {
        int y = (p0 + p) / w_out, xo = (p0 + p) - y * w_out;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            base[i] = (y - oy0) * stride * sw + xo * stride;
            if (++xo == w_out) {
                xo = 0;
                ++y;
            }
        }
    }
    for (int ci = blockIdx.y; ci < c_in; ci += gridDim.y) {
        const T *xc = xe + (int64_t)ci * h * w;
        __syncthreads();
        for (int i = threadIdx.x; i < staged; i += blockDim.x) {
            const int r = i / sw;
            const int iy = row0 + r, ix = i - r * sw - pad;
            tile[i] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? xc[iy * w + ix] : from_f<T>(0.f);
        }
        __syncthreads();
        if (n <= 0) continue;
        for (int ky = 0; ky < kh; ++ky) {
            for (int kx = 0; kx < kw; ++kx) {
                const int off = ky * sw + kx;
                __align__(16) T vals[8];
#pragma unroll
                for (int i = 0; i < 8; ++i) vals[i] = i < n ? tile[base[i] + off] : from_f<T>(0.f);
                T *dst = ce + ((int64_t)(ci * kh + ky) * kw + kx) * pn + p;
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
