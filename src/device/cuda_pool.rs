//! The CUDA memory pool candle allocates from: cudarc takes every tensor from the device's
//! default stream-ordered pool (`cuMemAllocAsync`), whose release threshold is 0 by default,
//! so each synchronisation hands all freed memory back to the driver and the next step maps
//! it again. PyTorch's caching allocator keeps it; `keep_freed_memory` makes the pool do the
//! same. The pool's high-water marks give the peak device memory that benchmarks report,
//! measured like `torch.cuda.max_memory_allocated` (used) and `max_memory_reserved` (reserved).

/// Peak device memory since the last reset, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePeak {
    /// Bytes in live allocations at the peak.
    pub used: u64,
    /// Bytes the pool held from the driver at its peak.
    pub reserved: u64,
}

#[cfg(feature = "cuda")]
mod imp {
    use super::DevicePeak;
    use candle_core::cuda_backend::cudarc::driver::{result, sys};

    fn pool(device: &candle_core::Device) -> Option<sys::CUmemoryPool> {
        let cuda = device.as_cuda_device().ok()?;
        let ctx = cuda.cuda_stream().context().clone();
        ctx.bind_to_thread().ok()?;
        // SAFETY: the device handle comes from a live context.
        unsafe { result::device::get_default_mem_pool(ctx.cu_device()) }.ok()
    }

    fn set(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute, mut value: u64) -> bool {
        // SAFETY: these attributes are cuuint64_t; the pool is the device's default pool.
        unsafe { result::mem_pool::set_attribute(pool, attr, (&mut value as *mut u64).cast()) }
            .is_ok()
    }

    fn get(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> Option<u64> {
        let mut value = 0u64;
        // SAFETY: as in `set`.
        unsafe { result::mem_pool::get_attribute(pool, attr, (&mut value as *mut u64).cast()) }
            .ok()?;
        Some(value)
    }

    pub fn keep_freed_memory(device: &candle_core::Device) -> bool {
        pool(device).is_some_and(|p| {
            set(
                p,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                u64::MAX,
            )
        })
    }

    pub fn reset_peak(device: &candle_core::Device) -> bool {
        pool(device).is_some_and(|p| {
            set(
                p,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                0,
            ) && set(
                p,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH,
                0,
            )
        })
    }

    pub fn reusable(device: &candle_core::Device) -> u64 {
        let Some(p) = pool(device) else { return 0 };
        let reserved = get(
            p,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
        );
        let used = get(
            p,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT,
        );
        match (reserved, used) {
            (Some(r), Some(u)) => r.saturating_sub(u),
            _ => 0,
        }
    }

    pub fn peak(device: &candle_core::Device) -> Option<DevicePeak> {
        let p = pool(device)?;
        Some(DevicePeak {
            used: get(p, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?,
            reserved: get(
                p,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH,
            )?,
        })
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::DevicePeak;

    pub fn keep_freed_memory(_: &candle_core::Device) -> bool {
        false
    }

    pub fn reset_peak(_: &candle_core::Device) -> bool {
        false
    }

    pub fn reusable(_: &candle_core::Device) -> u64 {
        0
    }

    pub fn peak(_: &candle_core::Device) -> Option<DevicePeak> {
        None
    }
}

/// Keeps freed memory in the pool across synchronisations (CUDA; false elsewhere or on error).
pub fn keep_freed_memory(device: &candle_core::Device) -> bool {
    imp::keep_freed_memory(device)
}

/// Starts a new peak measurement (CUDA; false elsewhere).
pub fn reset_peak(device: &candle_core::Device) -> bool {
    imp::reset_peak(device)
}

/// Bytes the pool holds but no tensor uses: free for this process although the driver counts
/// them as used (CUDA; 0 elsewhere).
pub fn reusable(device: &candle_core::Device) -> u64 {
    imp::reusable(device)
}

/// The pool's peaks since the last reset (CUDA; None elsewhere).
pub fn peak(device: &candle_core::Device) -> Option<DevicePeak> {
    imp::peak(device)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_has_no_pool() {
        let cpu = candle_core::Device::Cpu;
        assert!(!keep_freed_memory(&cpu));
        assert!(!reset_peak(&cpu));
        assert_eq!(peak(&cpu), None);
        assert_eq!(reusable(&cpu), 0);
    }
}
