//! GEGLU on CUDA in one pass, optionally adding the projection's bias on the way (one full pass
//! over the feed-forward's widest tensor less).
use super::*;

/// GEGLU on (..., 2*d) -> (..., d); as a two-input op, the second is the projection's bias
/// (2*d values) added first.
pub struct GegluOp;

impl GegluOp {
    fn launch<T: Element>(
        &self,
        x: CudaView<T>,
        xl: &Layout,
        bias: Option<CudaView<T>>,
        dev: &CudaDevice,
    ) -> Result<(CudaSlice<T>, Shape)> {
        let mut dims = xl.dims().to_vec();
        let last = dims.last().copied().unwrap_or(0);
        if last == 0 || last % 2 != 0 {
            bail!("GEGLU needs an even last dimension, got {dims:?}");
        }
        if let Some(b) = &bias
            && b.len() != last
        {
            bail!("GEGLU bias of {} values for rows of {last}", b.len());
        }
        let d = last / 2;
        if let Some(l) = dims.last_mut() {
            *l = d;
        }
        let total = xl.shape().elem_count() / 2;
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(total)? };
        let name = if bias.is_some() {
            "geglu_bias"
        } else {
            "geglu"
        };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>(name), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        if let Some(b) = &bias {
            launch.arg(b);
        }
        launch.arg(&out);
        let (d32, rows32) = (i32_arg(d)?, i32_arg(total / d)?);
        launch.arg(&d32);
        launch.arg(&rows32);
        // SAFETY: x holds 2*total elements, out total, the bias 2*d.
        unsafe { launch.launch(grid_2d_vectors(d, total / d)) }.w()?;
        Ok((out, Shape::from(dims)))
    }
}

impl CustomOp1 for GegluOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-geglu"
    }

    cuda_only!(CustomOp1);

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let out = by_dtype!("GEGLU", [x => xs], {
            self.launch(contiguous(xs, xl, "GEGLU input")?, xl, None, dev)?
        });
        Ok(storage(dev, out))
    }
}

impl CustomOp2 for GegluOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-geglu-bias"
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
        let out = by_dtype!("GEGLU", [x => xs, b => bs], {
            self.launch(
                contiguous(xs, xl, "GEGLU input")?,
                xl,
                Some(contiguous(bs, bl, "GEGLU bias")?),
                dev,
            )?
        });
        Ok(storage(dev, out))
    }
}
