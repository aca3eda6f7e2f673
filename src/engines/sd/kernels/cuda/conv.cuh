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
