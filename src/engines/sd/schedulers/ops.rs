//! Tensor helpers for the update rules: linear combinations with f64 coefficients, computed in
//! float32 whatever the latents' dtype (diffusers upcasts the sample to float32 in its steps too).

use candle_core::{DType, Result, Tensor};

/// `sum(coef * tensor)` over the terms, in float32.
pub(crate) fn lincomb(terms: &[(f64, &Tensor)]) -> Result<Tensor> {
    let mut acc: Option<Tensor> = None;
    for &(coef, t) in terms {
        let term = t.to_dtype(DType::F32)?.affine(coef, 0.0)?;
        acc = Some(match acc {
            None => term,
            Some(a) => (a + term)?,
        });
    }
    acc.ok_or_else(|| candle_core::Error::Msg("lincomb of no terms".into()))
}

/// The tensor as float32 (a no-op when it already is).
pub(crate) fn f32(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F32)
}

/// Check an index against the schedule length, as an error rather than a panic.
pub(crate) fn check_index(index: usize, len: usize) -> Result<()> {
    if index < len {
        Ok(())
    } else {
        Err(candle_core::Error::Msg(format!(
            "scheduler timestep index {index} is out of range: the schedule has {len} steps"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn lincomb_combines_in_f32() {
        let a = Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[10.0f32, 20.0], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let r = lincomb(&[(2.0, &a), (0.5, &b)]).unwrap();
        assert_eq!(r.dtype(), DType::F32);
        assert_eq!(r.to_vec1::<f32>().unwrap(), vec![7.0, 14.0]);
        assert!(check_index(3, 3).is_err());
        assert!(check_index(2, 3).is_ok());
    }
}

/// Where a multistep solver is in its trajectory. Steps must run in order from the begin index;
/// a step at the begin index starts a fresh trajectory (diffusers re-runs `set_timesteps` per call).
#[derive(Debug, Clone, Default)]
pub(crate) struct StepCursor {
    begin: usize,
    next: Option<usize>,
}

impl StepCursor {
    pub(crate) fn set_begin(&mut self, index: usize) {
        self.begin = index;
        self.next = None;
    }

    /// Enter step `index`; true when it starts a new trajectory (history must be cleared).
    pub(crate) fn enter(&mut self, index: usize) -> Result<bool> {
        let fresh = if index == self.begin {
            true
        } else if self.next == Some(index) {
            false
        } else {
            return Err(candle_core::Error::Msg(format!(
                "multistep scheduler stepped out of order: got step {index}, expected {}",
                self.next.unwrap_or(self.begin)
            )));
        };
        self.next = Some(index + 1);
        Ok(fresh)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod cursor_tests {
    use super::*;

    #[test]
    fn cursor_enforces_order_and_restarts_at_begin() {
        let mut c = StepCursor::default();
        c.set_begin(2);
        assert!(c.enter(3).is_err());
        assert!(c.enter(2).unwrap());
        assert!(!c.enter(3).unwrap());
        assert!(c.enter(5).is_err());
        assert!(c.enter(2).unwrap());
    }
}
