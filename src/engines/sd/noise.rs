//! Seeded Gaussian noise: the same seed gives the same initial latents (and ancestral noise) on
//! the CPU, CUDA and Metal, because it is always drawn on the CPU and then moved.
//!
//! The generator is xoshiro256++ seeded through SplitMix64 (both fully specified by their
//! authors and implemented here, so no dependency upgrade can change a seed's image), feeding
//! rand_distr's `StandardNormal` (ziggurat, pinned by Cargo.lock).

use candle_core::{DType, Device, Tensor};
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};

/// Standard normal noise of a given shape: the pipeline's initial latents and the ancestral
/// samplers' per-step noise.
pub trait NoiseSource {
    fn randn(
        &mut self,
        shape: &[usize],
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Tensor>;
}

/// A deterministic standard-normal stream for one seed.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: Xoshiro256PlusPlus,
}

impl SeededNoise {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }
}

impl NoiseSource for SeededNoise {
    fn randn(
        &mut self,
        shape: &[usize],
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Tensor> {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| {
                let x: f64 = StandardNormal.sample(&mut self.rng);
                x as f32
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }
}

/// xoshiro256++ 1.0 (Blackman and Vigna, https://prng.di.unimi.it/xoshiro256plusplus.c).
#[derive(Debug, Clone)]
struct Xoshiro256PlusPlus {
    s: [u64; 4],
}

impl Xoshiro256PlusPlus {
    /// State from SplitMix64 (https://prng.di.unimi.it/splitmix64.c), as the authors recommend.
    fn seed_from_u64(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }
}

impl RngCore for Xoshiro256PlusPlus {
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    fn next_u32(&mut self) -> u32 {
        // The high bits are the better ones.
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn draw(seed: u64, n: usize) -> Vec<f32> {
        SeededNoise::new(seed)
            .randn(&[n], &Device::Cpu, DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn xoshiro_matches_the_reference_implementation() {
        // Reference: xoshiro256plusplus.c with state {1, 2, 3, 4}.
        let mut rng = Xoshiro256PlusPlus { s: [1, 2, 3, 4] };
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(got, vec![41943041, 58720359, 3588806011781223]);
        // SplitMix64 from seed 0 starts with 0xe220a8397b1dcdaf.
        assert_eq!(
            Xoshiro256PlusPlus::seed_from_u64(0).s[0],
            0xe220_a839_7b1d_cdaf
        );
    }

    #[test]
    fn same_seed_same_noise_different_seeds_differ() {
        assert_eq!(draw(42, 64), draw(42, 64));
        assert_ne!(draw(42, 64), draw(43, 64));
        // The stream continues across calls rather than restarting.
        let mut noise = SeededNoise::new(7);
        let a = noise
            .randn(&[8], &Device::Cpu, DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = noise
            .randn(&[8], &Device::Cpu, DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_ne!(a, b);
        assert_eq!([a, b].concat(), draw(7, 16));
    }

    #[test]
    fn standard_normal_moments() {
        let v = draw(1234, 200_000);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 1.0).abs() < 0.01, "std {}", var.sqrt());
    }

    #[test]
    fn shape_and_dtype_follow_the_request() {
        let t = SeededNoise::new(1)
            .randn(&[1, 4, 8, 8], &Device::Cpu, DType::F16)
            .unwrap();
        assert_eq!(t.dims(), &[1, 4, 8, 8]);
        assert_eq!(t.dtype(), DType::F16);
    }
}
