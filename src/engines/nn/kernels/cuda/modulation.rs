//! The flow transformers' adaptive LayerNorm and gated residual, one kernel each
//! (`modulation.cuh`): what candle runs as about ten separate passes over the residual stream.
use super::*;

/// (images, tokens, dim) of `x` against its (images, dim) modulation.
fn dims(xl: &Layout, ml: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    let (b, s, d) = xl.shape().dims3()?;
    let (mb, md) = ml.shape().dims2()?;
    if (mb, md) != (b, d) {
        bail!("{what}: a ({mb}, {md}) modulation for a ({b}, {s}, {d}) input");
    }
    Ok((b, s, d))
}

/// `LayerNorm(x) * (1 + scale) + shift`: x (b, s, dim), shift and scale (b, dim).
pub struct LnModulateOp {
    pub eps: f32,
}

impl LnModulateOp {
    fn launch<T: Element>(
        &self,
        (x, shift, scale): (CudaView<T>, CudaView<T>, CudaView<T>),
        (b, s, d): (usize, usize, usize),
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(b * s * d)? };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("ln_modulate"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&shift);
        launch.arg(&scale);
        launch.arg(&out);
        let (s32, d32) = (i32_arg(s)?, i32_arg(d)?);
        launch.arg(&s32);
        launch.arg(&d32);
        launch.arg(&self.eps);
        let rows = u32::try_from(b * s)
            .map_err(|_| candle_core::Error::Msg(format!("ln_modulate: {} rows", b * s)))?;
        let cfg = LaunchConfig {
            grid_dim: (rows, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: x and out hold b*s*d elements, shift and scale b*d (checked by the caller).
        unsafe { launch.launch(cfg) }.w()?;
        Ok(out)
    }
}

impl CustomOp3 for LnModulateOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-ln-modulate"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        shift: &CudaStorage,
        sl: &Layout,
        scale: &CudaStorage,
        cl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let dims3 = dims(xl, sl, "ln_modulate shift")?;
        dims(xl, cl, "ln_modulate scale")?;
        let out = by_dtype!("ln_modulate", [x => xs, shift => ss, scale => cs], {
            let views = (
                contiguous(xs, xl, "ln_modulate input")?,
                contiguous(ss, sl, "ln_modulate shift")?,
                contiguous(cs, cl, "ln_modulate scale")?,
            );
            (self.launch(views, dims3, dev)?, xl.shape().clone())
        });
        Ok(storage(dev, out))
    }
}

/// `x + y * gate`: x and y (b, s, dim), gate (b, dim).
pub struct GatedResidualOp;

impl GatedResidualOp {
    fn launch<T: Element>(
        (x, gate, y): (CudaView<T>, CudaView<T>, CudaView<T>),
        (b, s, d): (usize, usize, usize),
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(b * s * d)? };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("gated_residual"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&gate);
        launch.arg(&y);
        launch.arg(&out);
        let (r32, s32, d32) = (i32_arg(b * s)?, i32_arg(s)?, i32_arg(d)?);
        launch.arg(&r32);
        launch.arg(&s32);
        launch.arg(&d32);
        // SAFETY: x, y and out hold b*s*d elements, gate b*d (checked by the caller).
        unsafe { launch.launch(grid_2d(d, b * s)) }.w()?;
        Ok(out)
    }
}

impl CustomOp3 for GatedResidualOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-gated-residual"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        gate: &CudaStorage,
        gl: &Layout,
        y: &CudaStorage,
        yl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let dims3 = dims(xl, gl, "gated_residual gate")?;
        if yl.dims() != xl.dims() {
            bail!(
                "gated_residual: x {:?} and y {:?} differ",
                xl.dims(),
                yl.dims()
            );
        }
        let out = by_dtype!("gated_residual", [x => xs, gate => gs, y => ys], {
            let views = (
                contiguous(xs, xl, "gated_residual x")?,
                contiguous(gs, gl, "gated_residual gate")?,
                contiguous(ys, yl, "gated_residual y")?,
            );
            (Self::launch(views, dims3, dev)?, xl.shape().clone())
        });
        Ok(storage(dev, out))
    }
}
