//! Fused GroupNorm(+SiLU) on CUDA: grid-wide statistics, then one apply pass.
use super::*;

/// GroupNorm over `groups` on (batch, channels, ...) with affine weight and bias, then SiLU.
pub struct GroupNormOp {
    pub groups: usize,
    pub eps: f32,
    pub silu: bool,
}

impl GroupNormOp {
    fn launch<T: Element>(
        &self,
        x: CudaView<T>,
        xl: &Layout,
        w: CudaView<T>,
        b: CudaView<T>,
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        let dims = xl.dims();
        if dims.len() < 3 || !dims[1].is_multiple_of(self.groups) {
            bail!(
                "GroupNorm: {dims:?} does not split into {} groups",
                self.groups
            );
        }
        let (batch, channels) = (dims[0], dims[1]);
        let spatial: usize = dims[2..].iter().product();
        let per_group = channels / self.groups;
        let n = per_group * spatial;
        let groups_total = batch * self.groups;
        let total = groups_total * n;
        let chunk = 8192usize;
        let splits = n.div_ceil(chunk).max(1);
        let stats = dev.alloc_zeros::<f32>(2 * groups_total)?;
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("gn_stats"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&stats);
        let (n64, chunk64) = (n as i64, chunk as i64);
        launch.arg(&n64);
        launch.arg(&chunk64);
        let cfg = LaunchConfig {
            grid_dim: (splits as u32, groups_total as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match the kernel's signature; x holds groups_total*n elements.
        unsafe { launch.launch(cfg) }.w()?;

        // SAFETY: every element is written by gn_apply below.
        let out = unsafe { dev.alloc::<T>(total)? };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("gn_apply"), MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&x);
        launch.arg(&out);
        launch.arg(&stats);
        launch.arg(&w);
        launch.arg(&b);
        let ints = [
            i32_arg(n)?,
            i32_arg(spatial)?,
            i32_arg(per_group)?,
            i32_arg(self.groups)?,
        ];
        for a in &ints {
            launch.arg(a);
        }
        let silu = i32::from(self.silu);
        launch.arg(&self.eps);
        launch.arg(&silu);
        // SAFETY: as above; w and b hold `channels` elements.
        unsafe { launch.launch(grid_2d_vectors(n, groups_total)) }.w()?;
        Ok(out)
    }
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "pallaidium-cuda-group-norm"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let out = by_dtype!("GroupNorm", [x => xs, w => ws, b => bs], {
            let y = self.launch(
                contiguous(xs, xl, "GroupNorm input")?,
                xl,
                contiguous(ws, wl, "GroupNorm weight")?,
                contiguous(bs, bl, "GroupNorm bias")?,
                dev,
            )?;
            (y, xl.shape().clone())
        });
        Ok(storage(dev, out))
    }
}
