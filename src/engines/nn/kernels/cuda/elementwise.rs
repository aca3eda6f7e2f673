//! Memory-bound element-wise ops on CUDA that candle runs through its general strided kernels:
//! a bias broadcast along rows (the ResNet's time embedding over positions) or along columns (a
//! Linear layer's bias), nearest 2x upsampling, and the transpose between NCHW and tokens.
use super::*;

/// `x` (rows, n) plus a bias broadcast: `bias[r % bias_len]` on row `r` (`along_columns` off),
/// or `bias[c]` on column `c` (on, `bias_len` = n).
pub struct BiasAddOp {
    pub along_columns: bool,
}

impl BiasAddOp {
    fn launch<T: Element>(
        &self,
        (x, xl): (CudaView<T>, &Layout),
        bias: CudaView<T>,
        dev: &CudaDevice,
    ) -> Result<(CudaSlice<T>, Shape)> {
        let (rows, positions) = xl.shape().dims2()?;
        let bias_len = bias.len();
        let fits = if self.along_columns {
            bias_len == positions
        } else {
            bias_len > 0 && rows % bias_len == 0
        };
        if !fits {
            bail!("bias of {bias_len} values for a {rows}x{positions} tensor");
        }
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(rows * positions)? };
        let kernel = if self.along_columns {
            "add_col_bias"
        } else {
            "add_row_bias"
        };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>(kernel), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&bias);
        launch.arg(&out);
        let (rows32, len32, n32) = (i32_arg(rows)?, i32_arg(bias_len)?, i32_arg(positions)?);
        launch.arg(&rows32);
        if !self.along_columns {
            launch.arg(&len32);
        }
        launch.arg(&n32);
        // SAFETY: x and out hold rows*positions elements, bias bias_len.
        unsafe { launch.launch(grid_2d_vectors(positions, rows)) }.w()?;
        Ok((out, xl.shape().clone()))
    }
}

impl CustomOp2 for BiasAddOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-bias-add"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let out = by_dtype!("row bias", [x => xs, b => bs], {
            self.launch(
                (contiguous(xs, xl, "row bias input")?, xl),
                contiguous(bs, bl, "row bias")?,
                dev,
            )?
        });
        Ok(storage(dev, out))
    }
}

/// Nearest 2x upsampling of (b, c, h, w).
pub struct Upsample2xOp;

impl Upsample2xOp {
    fn launch<T: Element>(
        &self,
        (x, xl): (CudaView<T>, &Layout),
        dev: &CudaDevice,
    ) -> Result<(CudaSlice<T>, Shape)> {
        let (b, c, h, w) = xl.shape().dims4()?;
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(b * c * 4 * h * w)? };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("upsample2x"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&out);
        let ints = [i32_arg(b * c)?, i32_arg(h)?, i32_arg(w)?];
        for a in &ints {
            launch.arg(a);
        }
        // SAFETY: x holds b*c*h*w elements, out four times that.
        unsafe { launch.launch(grid_2d(h * w, b * c)) }.w()?;
        Ok((out, Shape::from((b, c, 2 * h, 2 * w))))
    }
}

impl CustomOp1 for Upsample2xOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-upsample-2x"
    }

    cuda_only!(CustomOp1);

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let out = by_dtype!("2x upsampling", [x => xs], {
            self.launch((contiguous(xs, xl, "upsampling input")?, xl), dev)?
        });
        Ok(storage(dev, out))
    }
}

/// (b, rows, cols) -> (b, cols, rows), contiguous.
pub struct TransposeOp;

impl TransposeOp {
    fn launch<T: Element>(
        &self,
        (x, xl): (CudaView<T>, &Layout),
        dev: &CudaDevice,
    ) -> Result<(CudaSlice<T>, Shape)> {
        let (b, rows, cols) = xl.shape().dims3()?;
        if b > 65535 || rows.div_ceil(32) > 65535 {
            bail!("transpose: {:?} exceeds the grid", xl.dims());
        }
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(b * rows * cols)? };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("transpose2d"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&out);
        let (r32, c32) = (i32_arg(rows)?, i32_arg(cols)?);
        launch.arg(&r32);
        launch.arg(&c32);
        let cfg = LaunchConfig {
            grid_dim: (cols.div_ceil(32) as u32, rows.div_ceil(32) as u32, b as u32),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: x and out hold b*rows*cols elements; the grid covers them in 32x32 tiles.
        unsafe { launch.launch(cfg) }.w()?;
        Ok((out, Shape::from((b, cols, rows))))
    }
}

impl CustomOp1 for TransposeOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-transpose"
    }

    cuda_only!(CustomOp1);

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let out = by_dtype!("transpose", [x => xs], {
            self.launch((contiguous(xs, xl, "transpose input")?, xl), dev)?
        });
        Ok(storage(dev, out))
    }
}
