//! GEGLU on CUDA in one pass.
use super::*;

/// GEGLU on (..., 2*d) -> (..., d).
pub struct GegluOp;

impl GegluOp {
    fn launch<T: Element>(
        &self,
        x: CudaView<T>,
        xl: &Layout,
        dev: &CudaDevice,
    ) -> Result<(CudaSlice<T>, Shape)> {
        let mut dims = xl.dims().to_vec();
        let last = dims.last().copied().unwrap_or(0);
        if last == 0 || last % 2 != 0 {
            bail!("GEGLU needs an even last dimension, got {dims:?}");
        }
        let d = last / 2;
        if let Some(l) = dims.last_mut() {
            *l = d;
        }
        let total = xl.shape().elem_count() / 2;
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(total)? };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("geglu"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&out);
        let (d32, rows32) = (i32_arg(d)?, i32_arg(total / d)?);
        launch.arg(&d32);
        launch.arg(&rows32);
        // SAFETY: x holds 2*total elements, out total.
        unsafe { launch.launch(grid_2d(d, total / d)) }.w()?;
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
            self.launch(contiguous(xs, xl, "GEGLU input")?, xl, dev)?
        });
        Ok(storage(dev, out))
    }
}
