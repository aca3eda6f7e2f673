//! Conv2d through cuDNN (built with the `cudnn` feature) as PyTorch calls it: f16/bf16 data
//! with f32 accumulation on tensor cores (`CUDNN_TENSOR_OP_MATH`), f32 with cuDNN's default
//! math (TF32 on Ampere and later, PyTorch's default for convolutions), the algorithm cuDNN's
//! heuristics rank first, its workspace allocated uninitialised for the call. Descriptors and
//! the algorithm are kept per shape, and the cuDNN handle per device, for the thread that runs
//! the job (cuDNN handles are per thread by design).
//!
//! candle's own cuDNN path leaves tensor cores off for f16, zeroes a fresh workspace and builds
//! every descriptor on each call (shared/cuda/README.md measured SD 1.5 18x slower with it).

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::cuda_backend::DeviceId;
use candle_core::cuda_backend::cudarc::cudnn::{
    ConvDescriptor, ConvForward, Cudnn, CudnnDataType, FilterDescriptor, TensorDescriptor, sys,
};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView};
use candle_core::{CudaDevice, DType, Result};

use super::Element;

/// One convolution's geometry: (batch, c_in, h, w), (c_out, kh, kw), stride, padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub input: [usize; 4],
    pub filter: [usize; 3],
    pub stride: usize,
    pub padding: usize,
    pub out_hw: [usize; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PlanKey {
    device: DeviceId,
    dtype: DType,
    geometry: Geometry,
}

/// What a shape needs to launch: the descriptors, the algorithm and its workspace size.
struct Plan<T: CudnnDataType> {
    conv: ConvDescriptor<f32>,
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
    algo: sys::cudnnConvolutionFwdAlgo_t,
    workspace: usize,
}

#[derive(Default)]
struct State {
    handles: HashMap<DeviceId, Arc<Cudnn>>,
    plans: HashMap<PlanKey, Box<dyn Any>>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn err(what: &str, e: impl std::fmt::Debug) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuDNN conv2d: {what}: {e:?}"))
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| err("size beyond cuDNN's int range", v))
}

/// The math cuDNN may use for `T`: tensor cores for the half types, its default (TF32 allowed)
/// for f32.
fn math_for(dtype: DType) -> sys::cudnnMathType_t {
    match dtype {
        DType::F16 | DType::BF16 => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
        _ => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
    }
}

fn make_plan<T: Element + CudnnDataType>(cudnn: &Arc<Cudnn>, g: &Geometry) -> Result<Plan<T>> {
    use sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
    let [b, c_in, h, w] = g.input;
    let [c_out, kh, kw] = g.filter;
    let pad = int(g.padding)?;
    let stride = int(g.stride)?;
    let mut conv = cudnn
        .create_conv2d::<f32>(
            [pad, pad],
            [stride, stride],
            [1, 1],
            sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
        )
        .map_err(|e| err("convolution descriptor", e))?;
    conv.set_math_type(math_for(T::DTYPE))
        .map_err(|e| err("math type", e))?;
    let x = cudnn
        .create_4d_tensor::<T>(CUDNN_TENSOR_NCHW, [int(b)?, int(c_in)?, int(h)?, int(w)?])
        .map_err(|e| err("input descriptor", e))?;
    let wd = cudnn
        .create_4d_filter::<T>(
            CUDNN_TENSOR_NCHW,
            [int(c_out)?, int(c_in)?, int(kh)?, int(kw)?],
        )
        .map_err(|e| err("filter descriptor", e))?;
    let [oh, ow] = g.out_hw;
    let y = cudnn
        .create_4d_tensor::<T>(
            CUDNN_TENSOR_NCHW,
            [int(b)?, int(c_out)?, int(oh)?, int(ow)?],
        )
        .map_err(|e| err("output descriptor", e))?;
    let forward = ConvForward {
        conv: &conv,
        x: &x,
        w: &wd,
        y: &y,
    };
    let algo = forward
        .pick_algorithm()
        .map_err(|e| err("no algorithm", e))?;
    let workspace = forward
        .get_workspace_size(algo)
        .map_err(|e| err("workspace size", e))?;
    tracing::debug!(?g, ?algo, workspace, "cuDNN convolution planned");
    Ok(Plan {
        conv,
        x,
        w: wd,
        y,
        algo,
        workspace,
    })
}

/// `out = conv(x, weight)` for contiguous NCHW `x` and (c_out, c_in, kh, kw) `weight`; the bias
/// is the caller's.
pub fn conv2d<T: Element + CudnnDataType>(
    x: &CudaView<T>,
    weight: &CudaView<T>,
    g: &Geometry,
    dev: &CudaDevice,
) -> Result<CudaSlice<T>> {
    let key = PlanKey {
        device: dev.id(),
        dtype: T::DTYPE,
        geometry: *g,
    };
    let [b, _, _, _] = g.input;
    let [oh, ow] = g.out_hw;
    let out_len = b * g.filter[0] * oh * ow;
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let cudnn = match state.handles.get(&key.device) {
            Some(h) => Arc::clone(h),
            None => {
                let h = Cudnn::new(dev.cuda_stream()).map_err(|e| err("no cuDNN handle", e))?;
                state.handles.insert(key.device, Arc::clone(&h));
                h
            }
        };
        if !state.plans.contains_key(&key) {
            let plan = make_plan::<T>(&cudnn, g)?;
            state.plans.insert(key, Box::new(plan));
        }
        let plan = state
            .plans
            .get(&key)
            .and_then(|p| p.downcast_ref::<Plan<T>>())
            .ok_or_else(|| err("plan of another type", key.dtype))?;
        // SAFETY: every output element is written by the convolution (beta 0).
        let mut out = unsafe { dev.alloc::<T>(out_len)? };
        // SAFETY: uninitialised scratch for cuDNN only.
        let mut workspace = unsafe { dev.alloc::<u8>(plan.workspace.max(1))? };
        let forward = ConvForward {
            conv: &plan.conv,
            x: &plan.x,
            w: &plan.w,
            y: &plan.y,
        };
        // SAFETY: the buffers have the types and the sizes the plan's descriptors describe
        // (checked by the caller: contiguous NCHW input and weight of this geometry).
        unsafe {
            forward.launch(
                plan.algo,
                Some(&mut workspace),
                (T::from_f64(1.0), T::from_f64(0.0)),
                x,
                weight,
                &mut out,
            )
        }
        .map_err(|e| err("forward", e))?;
        Ok(out)
    })
}
