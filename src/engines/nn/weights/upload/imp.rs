//! The CUDA side of the staged upload: pinned buffers, asynchronous copies, one event each.

use std::sync::Arc;

use candle_core::cuda_backend::cudarc::driver::{
    CudaEvent, CudaSlice, CudaStream, DevicePtrMut, DeviceRepr, PinnedHostSlice, result,
};
use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{DType, Device, Storage, Tensor};

use super::super::convert::{Staged, convert_parallel};
use super::TensorRead;

/// Bytes per staging buffer.
const STAGE_BYTES: usize = 32 << 20;

/// Two pinned buffers used in turn: while the device copies one, the CPU fills the other.
pub(in crate::engines::nn::weights) struct Staging {
    stream: Arc<CudaStream>,
    buffers: Vec<(PinnedHostSlice<u8>, CudaEvent)>,
    next: usize,
}

impl Staging {
    /// None when `dev` is not a CUDA device or pinned memory cannot be had (the caller then
    /// loads through candle).
    pub(in crate::engines::nn::weights) fn new(dev: &Device) -> Option<Self> {
        let cuda = dev.as_cuda_device().ok()?;
        let stream = cuda.cuda_stream();
        let ctx = stream.context().clone();
        let mut buffers = Vec::with_capacity(2);
        for _ in 0..2 {
            // SAFETY: the buffer is written before any byte of it is copied.
            let pinned = unsafe { ctx.alloc_pinned::<u8>(STAGE_BYTES) }.ok()?;
            buffers.push((pinned, ctx.new_event(None).ok()?));
        }
        Some(Self {
            stream,
            buffers,
            next: 0,
        })
    }

    /// The tensor on the device in the run's dtype; None for dtypes this does not stage.
    pub(in crate::engines::nn::weights) fn upload(
        &mut self,
        read: &TensorRead,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(from) = read
            .stored
            .filter(|d| matches!(d, DType::F32 | DType::F16 | DType::BF16))
        else {
            return Ok(None);
        };
        let Ok(cuda) = read.dev.as_cuda_device() else {
            return Ok(None);
        };
        let storage = match read.dtype {
            DType::F32 => self.stage::<f32>(read.data, from, cuda)?,
            DType::F16 => self.stage::<half::f16>(read.data, from, cuda)?,
            DType::BF16 => self.stage::<half::bf16>(read.data, from, cuda)?,
            _ => return Ok(None),
        };
        Ok(Some(Tensor::from_storage(
            Storage::Cuda(storage),
            read.shape,
            BackpropOp::none(),
            false,
        )))
    }

    fn stage<T: Staged + DeviceRepr + CudaDType>(
        &mut self,
        data: &[u8],
        from: DType,
        cuda: &candle_core::CudaDevice,
    ) -> candle_core::Result<CudaStorage> {
        let size = from.size_in_bytes();
        let n = data.len() / size;
        // SAFETY: every element is written by the copies below before the tensor is used
        // (stream order).
        let mut dst: CudaSlice<T> = unsafe { cuda.alloc::<T>(n)? };
        let per = STAGE_BYTES / std::mem::size_of::<T>();
        let mut done = 0;
        while done < n {
            let k = per.min(n - done);
            let (pinned, event) = &mut self.buffers[self.next];
            self.next = (self.next + 1) % 2;
            // The buffer's previous copy must be over before it is refilled.
            event.synchronize().w()?;
            let bytes = pinned.as_mut_slice().w()?;
            // SAFETY: the pinned buffer is page-aligned and STAGE_BYTES long; `k` values of T
            // fit in it; no other reference to it lives.
            let out = unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<T>(), k) };
            if !convert_parallel(&data[done * size..(done + k) * size], from, out) {
                return Err(candle_core::Error::Msg(format!(
                    "cannot stage {from:?} weights"
                )));
            }
            let (base, _guard) = dst.device_ptr_mut(&self.stream);
            let at = base + (done * std::mem::size_of::<T>()) as u64;
            // SAFETY: [at, at + k values) lies inside `dst`; `out` is pinned and not touched
            // again until `event` (recorded right after the copy) has completed.
            unsafe { result::memcpy_htod_async(at, &*out, self.stream.cu_stream()) }.w()?;
            event.record(&self.stream).w()?;
            done += k;
        }
        Ok(CudaStorage::wrap_cuda_slice(dst, cuda.clone()))
    }
}

impl Drop for Staging {
    /// Pinned memory must outlive the copies still reading it.
    fn drop(&mut self) {
        for (_, event) in &self.buffers {
            let _ = event.synchronize();
        }
    }
}
