//! Weights onto a CUDA device through two pinned staging buffers: the CPU converts a tensor's
//! stored values to the run's dtype (over the threads for large tensors) into one buffer while
//! the GPU copies the other. candle's path copies the stored values from pageable memory (the
//! driver stages them in small pieces) and converts on the device, so an f32 checkpoint run in
//! f16 crossed the bus at twice the size and held an f32 copy of each tensor on the device.

use super::TensorRead;

#[cfg(feature = "cuda")]
mod imp;
#[cfg(feature = "cuda")]
pub(super) use imp::Staging;

#[cfg(not(feature = "cuda"))]
pub(super) use stub::Staging;

/// Without the `cuda` feature there is no device to stage for.
#[cfg(not(feature = "cuda"))]
mod stub {
    use candle_core::{Device, Tensor};

    use super::TensorRead;

    pub(in crate::engines::nn::weights) struct Staging;

    impl Staging {
        pub(in crate::engines::nn::weights) fn new(_dev: &Device) -> Option<Self> {
            None
        }

        pub(in crate::engines::nn::weights) fn upload(
            &mut self,
            _read: &TensorRead,
        ) -> candle_core::Result<Option<Tensor>> {
            Ok(None)
        }
    }
}
