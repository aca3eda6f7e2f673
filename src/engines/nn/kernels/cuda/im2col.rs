//! The CUDA convolutions' im2col launches: the tiled kernel (input rows staged in shared
//! memory, one launch for every batch element of a GEMM) where its staged rows fit, the untiled
//! one (each thread gathering from global memory) otherwise.
use super::*;

/// What an im2col launch needs to know about the convolution.
pub(super) struct Im2col {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub w_out: usize,
}

/// The tiled im2col's shared memory may not exceed this (the default limit without opting in);
/// wider rows (a VAE past ~3000 pixels wide in f32) take the untiled kernel.
const TILE_SMEM_LIMIT: usize = 48 * 1024;

impl Im2col {
    /// The tiled kernel's launch for `pn` positions: threads a block (8 positions each), the
    /// staged rows' pitch in elements and the shared memory; None where the rows would not fit.
    fn tile<T>(&self, pn: usize) -> Option<(u32, usize, u32)> {
        let threads = pn.div_ceil(8).next_multiple_of(32).clamp(32, 128);
        let rows = ((8 * threads - 1) / self.w_out.max(1) + 1) * self.stride + self.kh;
        // A multiple of 16 bytes, covering the padded row and the widest 16-byte window the
        // kernel's 3-wide gather loads (8 * stride + 2 inputs, rounded up to whole vectors).
        let vector = 16 / std::mem::size_of::<T>();
        let window = (8 * self.stride + 2).next_multiple_of(vector);
        let pitch = (self.w + 2 * self.padding)
            .max(self.w_out.saturating_sub(8) * self.stride + window)
            .next_multiple_of(vector);
        let bytes = rows * pitch * std::mem::size_of::<T>();
        (bytes <= TILE_SMEM_LIMIT).then_some((threads as u32, pitch, bytes as u32))
    }

    /// Columns for positions `p0..p0 + pn` of `count` consecutive batch elements of `x` into
    /// `col` (element `e` at `e * k * pn`).
    pub fn launch<T: Element>(
        &self,
        x: &CudaView<T>,
        col: &mut CudaViewMut<T>,
        (p0, pn): (usize, usize),
        count: usize,
        dev: &CudaDevice,
    ) -> Result<()> {
        let k = self.c_in * self.kh * self.kw;
        let in_len = self.c_in * self.h * self.w;
        let ints = [
            i32_arg(self.c_in)?,
            i32_arg(self.h)?,
            i32_arg(self.w)?,
            i32_arg(self.kh)?,
            i32_arg(self.kw)?,
            i32_arg(self.stride)?,
            i32_arg(self.padding)?,
            i32_arg(self.w_out)?,
            i32_arg(p0)?,
            i32_arg(pn)?,
        ];
        if let Some((threads, pitch, smem)) = self.tile::<T>(pn) {
            let func =
                dev.get_or_load_custom_func(&kernel_name::<T>("im2col_tile"), MODULE, PTX)?;
            let tiles = u32::try_from(pn.div_ceil(8 * threads as usize))
                .map_err(|_| candle_core::Error::Msg(format!("im2col: {pn} positions")))?;
            let mut launch = func.builder();
            launch.arg(x);
            launch.arg(col);
            for a in &ints {
                launch.arg(a);
            }
            let (in_len64, col_len64) = (in_len as i64, (k * pn) as i64);
            let pitch32 = i32_arg(pitch)?;
            launch.arg(&in_len64);
            launch.arg(&col_len64);
            launch.arg(&pitch32);
            let cfg = LaunchConfig {
                grid_dim: (
                    tiles,
                    self.c_in.clamp(1, 65535) as u32,
                    count.clamp(1, 65535) as u32,
                ),
                block_dim: (threads, 1, 1),
                shared_mem_bytes: smem,
            };
            // SAFETY: x holds `count` elements of in_len, col count*k*pn; the kernel reads its
            // staged rows within the shared memory sized above.
            unsafe { launch.launch(cfg) }.w()?;
            return Ok(());
        }
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("im2col_nchw"), MODULE, PTX)?;
        for e in 0..count {
            let xb = x.slice(e * in_len..(e + 1) * in_len);
            let mut dst = col.slice_mut(e * k * pn..(e + 1) * k * pn);
            let mut launch = func.builder();
            launch.arg(&xb);
            launch.arg(&mut dst);
            for a in &ints {
                launch.arg(a);
            }
            // SAFETY: dst holds k*pn elements, xb one batch element.
            unsafe { launch.launch(grid_2d(pn.div_ceil(8), self.c_in)) }.w()?;
        }
        Ok(())
    }
}
