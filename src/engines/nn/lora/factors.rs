//! The factors of one weight's change and the full change they make: a plain LoRA's
//! `up @ down`, and LyCORIS's LoHa (a Hadamard product of two low-rank products) and LoKr (a
//! Kronecker product), with the Tucker cores LyCORIS uses for convolutions. The formulas are
//! LyCORIS's (`lycoris/modules/loha.py`, `lokr.py`, `functional/general.py`: `make_weight_cp`
//! is `einsum("i j k l, j r, i p -> p r k l", t, b, a)`, `make_kron` unsqueezes a 2-D w1 to 4-D
//! when w2 is a convolution's); ComfyUI's and A1111's loaders apply the same.

use candle_core::{DType, Device, Result, Tensor};

/// `a @ b`, or with a Tucker core `t` (r, r, kh, kw): `einsum("ijkl,jr,ip->prkl", t, b, a)`
/// where a is (r, out) and b (r, in).
#[derive(Debug, Clone)]
pub struct Product {
    pub a: Tensor,
    pub b: Tensor,
    pub t: Option<Tensor>,
}

impl Product {
    /// The rank LyCORIS scales by (alpha / rank): b's first dimension.
    pub fn rank(&self) -> usize {
        self.b.dims().first().copied().unwrap_or(1)
    }

    /// The shape of the full product: (out, in_flat) without a core, (out, in, kh, kw) with one.
    pub fn dims(&self) -> Vec<usize> {
        let (a, b) = (self.a.dims(), self.b.dims());
        match &self.t {
            None => vec![a[0], b[1..].iter().product()],
            Some(t) => [&[a[1], b[1]], &t.dims()[2..]].concat(),
        }
    }

    /// Whether the parts fit together.
    fn fits(&self) -> bool {
        let (a, b) = (self.a.dims(), self.b.dims());
        if a.len() != 2 || b.len() < 2 {
            return false;
        }
        match &self.t {
            None => a[1] == b[0],
            Some(t) => {
                let t = t.dims();
                b.len() == 2 && t.len() == 4 && t[0] == a[0] && t[1] == b[0]
            }
        }
    }

    fn full(&self, dev: &Device) -> Result<Tensor> {
        let a = on(&self.a, dev)?;
        let b = on(&self.b, dev)?.flatten_from(1)?;
        let Some(t) = &self.t else {
            return a.matmul(&b);
        };
        let t = on(t, dev)?;
        let (r1, r2, kh, kw) = t.dims4()?;
        let (out, inp) = (a.dim(1)?, b.dim(1)?);
        // sum_j t[i,j,k,l] b[j,r] -> (i, k, l, r); then sum_i a[i,p] . -> (p, k, l, r).
        let tb = t
            .permute((0, 2, 3, 1))?
            .contiguous()?
            .reshape((r1 * kh * kw, r2))?
            .matmul(&b)?
            .reshape((r1, kh * kw * inp))?;
        a.t()?
            .contiguous()?
            .matmul(&tb)?
            .reshape((out, kh, kw, inp))?
            .permute((0, 3, 1, 2))?
            .contiguous()
    }
}

/// A LoKr factor: stored whole, or as a low-rank product.
#[derive(Debug, Clone)]
pub enum KronFactor {
    Whole(Tensor),
    Product(Product),
}

impl KronFactor {
    fn dims(&self) -> Vec<usize> {
        match self {
            Self::Whole(t) => t.dims().to_vec(),
            Self::Product(p) => p.dims(),
        }
    }

    fn full(&self, dev: &Device) -> Result<Tensor> {
        match self {
            Self::Whole(t) => on(t, dev),
            Self::Product(p) => p.full(dev),
        }
    }

    fn rank(&self) -> Option<usize> {
        match self {
            Self::Whole(_) => None,
            Self::Product(p) => Some(p.rank()),
        }
    }
}

/// How one module changes its weight.
#[derive(Debug, Clone)]
pub enum Factors {
    /// LoRA: up (out, rank[, 1, 1]) @ down (rank, in[, kh, kw]).
    LowRank { up: Tensor, down: Tensor },
    /// LoHa: (w1a @ w1b) * (w2a @ w2b), element-wise.
    Hadamard { w1: Product, w2: Product },
    /// LoKr: kron(w1, w2).
    Kronecker { w1: KronFactor, w2: KronFactor },
}

impl Factors {
    /// What the file's module is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LowRank { .. } => "LoRA",
            Self::Hadamard { .. } => "LoHa",
            Self::Kronecker { .. } => "LoKr",
        }
    }

    /// The rank alpha is divided by; None where alpha does not apply (a LoKr with both factors
    /// whole, which LyCORIS saves at scale 1).
    pub fn rank(&self) -> Option<usize> {
        match self {
            Self::LowRank { down, .. } => Some(down.dims().first().copied().unwrap_or(1)),
            Self::Hadamard { w1, .. } => Some(w1.rank()),
            // ComfyUI's and LyCORIS's: w2's rank when it is decomposed, else w1's.
            Self::Kronecker { w1, w2 } => w2.rank().or_else(|| w1.rank()),
        }
    }

    /// Whether the parts fit together (the shapes a file gives could be anything).
    pub fn fits(&self) -> bool {
        match self {
            Self::LowRank { up, down } => {
                let (u, d) = (up.dims(), down.dims());
                u.len() >= 2 && d.len() >= 2 && u[1] == d[0] && u[2..].iter().all(|&n| n == 1)
            }
            Self::Hadamard { w1, w2 } => w1.fits() && w2.fits() && w1.dims() == w2.dims(),
            Self::Kronecker { w1, w2 } => {
                let ok = |f: &KronFactor| match f {
                    KronFactor::Whole(_) => true,
                    KronFactor::Product(p) => p.fits(),
                };
                ok(w1) && ok(w2) && w1.dims().len() == 2 && w2.dims().len() >= 2
            }
        }
    }

    /// The shapes of the file's tensors, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::LowRank { up, down } => format!("{:?} x {:?}", up.dims(), down.dims()),
            Self::Hadamard { w1, w2 } => format!("LoHa {:?} * {:?}", w1.dims(), w2.dims()),
            Self::Kronecker { w1, w2 } => format!("LoKr {:?} (x) {:?}", w1.dims(), w2.dims()),
        }
    }

    /// The full change's first dimension (the weight's output size).
    pub fn out_dim(&self) -> usize {
        match self {
            Self::LowRank { up, .. } => up.dims()[0],
            Self::Hadamard { w1, .. } => w1.dims()[0],
            Self::Kronecker { w1, w2 } => w1.dims()[0] * w2.dims()[0],
        }
    }

    /// The full change's number of elements.
    pub fn numel(&self) -> usize {
        match self {
            Self::LowRank { up, down } => up.dims()[0] * down.dims()[1..].iter().product::<usize>(),
            Self::Hadamard { w1, .. } => w1.dims().iter().product(),
            Self::Kronecker { w1, w2 } => {
                w1.dims().iter().product::<usize>() * w2.dims().iter().product::<usize>()
            }
        }
    }

    /// The bytes the factors hold (f32).
    pub fn bytes(&self) -> u64 {
        let n = |t: &Tensor| t.elem_count() as u64 * 4;
        let p = |p: &Product| n(&p.a) + n(&p.b) + p.t.as_ref().map_or(0, n);
        let k = |f: &KronFactor| match f {
            KronFactor::Whole(t) => n(t),
            KronFactor::Product(q) => p(q),
        };
        match self {
            Self::LowRank { up, down } => n(up) + n(down),
            Self::Hadamard { w1, w2 } => p(w1) + p(w2),
            Self::Kronecker { w1, w2 } => k(w1) + k(w2),
        }
    }

    /// The full change, unscaled, in f32 on `dev`: (out, rest) or the product's own shape;
    /// the caller reshapes it to the weight's.
    pub fn full(&self, dev: &Device) -> Result<Tensor> {
        match self {
            Self::LowRank { up, down } => {
                let up = on(up, dev)?.flatten_from(1)?;
                up.matmul(&on(down, dev)?.flatten_from(1)?)
            }
            Self::Hadamard { w1, w2 } => w1.full(dev)? * w2.full(dev)?,
            Self::Kronecker { w1, w2 } => kron(&w1.full(dev)?, &w2.full(dev)?),
        }
    }
}

fn on(t: &Tensor, dev: &Device) -> Result<Tensor> {
    t.to_device(dev)?.to_dtype(DType::F32)
}

/// torch.kron of a 2-D `w1` (p, q) and `w2` (c, e, ...), flattened to (p*c, q*e*...): for a 4-D
/// w2 this is LyCORIS's kron of w1 unsqueezed to (p, q, 1, 1), whose reshape to the weight is
/// the same.
fn kron(w1: &Tensor, w2: &Tensor) -> Result<Tensor> {
    let (p, q) = w1.dims2()?;
    let d = w2.dims();
    let (c, e, r) = (d[0], d[1], d[2..].iter().product::<usize>());
    let a = w1.reshape((p, 1, q, 1, 1))?;
    let b = w2.reshape((1, c, 1, e, r))?;
    a.broadcast_mul(&b)?.reshape((p * c, q * e * r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn kron_is_torch_kron() {
        // torch.kron([[1, 2]], [[0, 1], [1, 0]]) = [[0, 1, 0, 2], [1, 0, 2, 0]].
        let k = kron(&t(&[1., 2.], &[1, 2]), &t(&[0., 1., 1., 0.], &[2, 2])).unwrap();
        assert_eq!(k.dims(), [2, 4]);
        assert_eq!(flat(&k), [0., 1., 0., 2., 1., 0., 2., 0.]);
        // 4-D w2 (1, 1, 1, 2): kron(w1[..., None, None], w2) = (2, 2, 1, 2) -> (2, 4).
        let k = kron(
            &t(&[1., 2., 3., 4.], &[2, 2]),
            &t(&[1., 10.], &[1, 1, 1, 2]),
        )
        .unwrap();
        assert_eq!(flat(&k), [1., 10., 2., 20., 3., 30., 4., 40.]);
    }

    #[test]
    fn hadamard_multiplies_the_two_products() {
        let w1 = Product {
            a: t(&[1., 2.], &[2, 1]),
            b: t(&[3., 4.], &[1, 2]),
            t: None,
        };
        let w2 = Product {
            a: t(&[1., 1.], &[2, 1]),
            b: t(&[2., 0.5], &[1, 2]),
            t: None,
        };
        let f = Factors::Hadamard { w1, w2 };
        assert!(f.fits());
        assert_eq!(f.rank(), Some(1));
        // [[3, 4], [6, 8]] * [[2, .5], [2, .5]].
        assert_eq!(flat(&f.full(&Device::Cpu).unwrap()), [6., 2., 12., 4.]);
    }

    #[test]
    fn a_tucker_core_is_lycoris_make_weight_cp() {
        // t (1, 1, 1, 2), b (1, in 2), a (1, out 2): out[p, r, 0, l] = a[0, p] t[0, 0, 0, l] b[0, r].
        let p = Product {
            a: t(&[1., 2.], &[1, 2]),
            b: t(&[3., 5.], &[1, 2]),
            t: Some(t(&[1., 10.], &[1, 1, 1, 2])),
        };
        assert!(p.fits());
        assert_eq!(p.dims(), [2, 2, 1, 2]);
        let full = p.full(&Device::Cpu).unwrap();
        assert_eq!(full.dims(), [2, 2, 1, 2]);
        assert_eq!(
            flat(&full),
            [3., 30., 5., 50., 6., 60., 10., 100.],
            "p-major, then r, then the kernel"
        );
    }

    #[test]
    fn lokr_scales_by_w2_rank_and_not_at_all_when_whole() {
        let whole = |v: f32| KronFactor::Whole(t(&[v], &[1, 1]));
        let f = Factors::Kronecker {
            w1: whole(2.),
            w2: whole(3.),
        };
        assert_eq!(f.rank(), None);
        assert_eq!(flat(&f.full(&Device::Cpu).unwrap()), [6.]);
        let f = Factors::Kronecker {
            w1: whole(2.),
            w2: KronFactor::Product(Product {
                a: t(&[1., 1., 1., 1., 1., 1.], &[2, 3]),
                b: t(&[1.; 6], &[3, 2]),
                t: None,
            }),
        };
        assert!(f.fits());
        assert_eq!((f.rank(), f.out_dim(), f.numel()), (Some(3), 2, 4));
    }
}
