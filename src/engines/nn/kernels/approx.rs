//! Vectorizable approximations of exp and erf for the CPU kernels: branch-free f32 arithmetic
//! the compiler turns into SIMD inside the kernels' AVX2/NEON loops, where libm's scalar calls
//! would not vectorize.

/// exp(x) for x <= 0 (softmax inputs after the max is subtracted): Cody-Waite reduction
/// x = n ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r, then 2^n through the
/// exponent bits. Relative error about 1e-7; inputs below -87 give 0 (e^-87 is far below any
/// row sum, which is at least 1).
#[inline(always)]
pub(super) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let underflow = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let bits = (t.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23;
    let e = er * f32::from_bits(bits as u32);
    if underflow { 0.0 } else { e }
}

/// erf(x), Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
pub(super) fn erf_approx(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_approx(-a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_is_accurate_over_the_softmax_range() {
        let mut worst = 0f32;
        for i in 0..=20_000 {
            let x = -87.0 * i as f32 / 20_000.0;
            let want = x.exp();
            let got = exp_approx(x);
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_approx(0.0), 1.0);
        assert_eq!(exp_approx(-1000.0), 0.0);
        assert_eq!(exp_approx(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0f64;
        for i in -4000..=4000 {
            let x = i as f32 / 500.0;
            let want = candle_core::cpu::erf::erf_f64(f64::from(x));
            worst = worst.max((f64::from(erf_approx(x)) - want).abs());
        }
        assert!(worst < 5e-7, "worst absolute error {worst}");
    }
}
