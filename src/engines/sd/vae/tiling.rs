//! diffusers' tiled VAE: run a function over overlapping tiles, then blend each tile into its
//! upper and left neighbours with linear ramps and crop, so memory stays bounded by the tile.
//!
//! diffusers blends in place, so a tile's neighbour is read after its own blending; keeping
//! the blended tiles in the grid and reading them back reproduces that order exactly.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// Tiling in input units (`tile`, `overlap`), with output = input * `num` / `den`.
#[derive(Debug, Clone, Copy)]
pub struct TileSpec {
    tile: usize,
    step: usize,
    blend: usize,
    row_limit: usize,
}

impl TileSpec {
    pub fn new(tile: usize, overlap: usize, num: usize, den: usize) -> Result<Self> {
        if tile == 0
            || overlap >= tile
            || !(tile * num).is_multiple_of(den)
            || !(overlap * num).is_multiple_of(den)
        {
            return Err(Error::bad_input(format!(
                "VAE tiles of {tile} with overlap {overlap}: the overlap must be smaller than the \
                 tile and both whole latents"
            )));
        }
        let out_tile = tile * num / den;
        let blend = overlap * num / den;
        Ok(Self {
            tile,
            step: tile - overlap,
            blend,
            row_limit: out_tile - blend,
        })
    }
}

/// Applies `f` to every tile of `xs` (b, c, h, w), or (b, c, t, h, w) for video (tiles over
/// the last two dims), and blends the results.
pub fn tiled(
    xs: &Tensor,
    spec: &TileSpec,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    let rank = xs.rank();
    let (dh, dw) = (rank - 2, rank - 1);
    let (h, w) = (xs.dim(dh)?, xs.dim(dw)?);
    // diffusers only tiles inputs larger than a tile; one that fits is processed whole.
    if h <= spec.tile && w <= spec.tile {
        return Ok(f(xs)?);
    }
    let mut grid: Vec<Vec<Tensor>> = Vec::new();
    for i in (0..h).step_by(spec.step) {
        let mut row = Vec::new();
        for j in (0..w).step_by(spec.step) {
            let tile = xs
                .narrow(dh, i, spec.tile.min(h - i))?
                .narrow(dw, j, spec.tile.min(w - j))?
                .contiguous()?;
            row.push(f(&tile)?);
        }
        grid.push(row);
    }
    let mut rows = Vec::with_capacity(grid.len());
    for i in 0..grid.len() {
        let mut row = Vec::with_capacity(grid[i].len());
        for j in 0..grid[i].len() {
            let mut tile = grid[i][j].clone();
            if i > 0 {
                tile = blend(&grid[i - 1][j], &tile, spec.blend, dh)?;
            }
            if j > 0 {
                tile = blend(&grid[i][j - 1], &tile, spec.blend, dw)?;
            }
            grid[i][j] = tile.clone();
            let (th, tw) = (tile.dim(dh)?, tile.dim(dw)?);
            row.push(tile.narrow(dh, 0, spec.row_limit.min(th))?.narrow(
                dw,
                0,
                spec.row_limit.min(tw),
            )?);
        }
        rows.push(Tensor::cat(&row, dw)?);
    }
    Ok(Tensor::cat(&rows, dh)?)
}

/// The first `extent` rows (dim rank - 2) or columns (rank - 1) of `b` ramp from `a`'s last ones to `b`'s:
/// `b[y] = a[-extent + y] * (1 - y / extent) + b[y] * (y / extent)`.
fn blend(a: &Tensor, b: &Tensor, extent: usize, dim: usize) -> candle_core::Result<Tensor> {
    let extent = extent.min(a.dim(dim)?).min(b.dim(dim)?);
    if extent == 0 {
        return Ok(b.clone());
    }
    let ramp: Vec<f64> = (0..extent).map(|y| y as f64 / extent as f64).collect();
    let shape: Vec<usize> = (0..b.rank())
        .map(|d| if d == dim { extent } else { 1 })
        .collect();
    let wb = Tensor::new(ramp.as_slice(), b.device())?.reshape(shape.as_slice())?;
    let wa = (1.0 - &wb)?;
    let (wa, wb) = (wa.to_dtype(DType::F32)?, wb.to_dtype(DType::F32)?);
    let a_tail = a.narrow(dim, a.dim(dim)? - extent, extent)?;
    let b_head = b.narrow(dim, 0, extent)?;
    let dtype = b.dtype();
    let mixed = (a_tail.to_dtype(DType::F32)?.broadcast_mul(&wa)?
        + b_head.to_dtype(DType::F32)?.broadcast_mul(&wb)?)?
    .to_dtype(dtype)?;
    let rest = b.narrow(dim, extent, b.dim(dim)? - extent)?;
    Tensor::cat(&[&mixed, &rest], dim)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn identity_tiling_reassembles_the_input() {
        let xs = Tensor::arange(0f32, 2. * 3. * 21. * 17., &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 21, 17))
            .unwrap();
        let spec = TileSpec::new(8, 3, 1, 1).unwrap();
        let calls = std::cell::Cell::new(0);
        let out = tiled(&xs, &spec, |t| {
            calls.set(calls.get() + 1);
            Ok(t.clone())
        })
        .unwrap();
        // Steps of 5: rows at 0, 5, 10, 15, 20 and columns at 0, 5, 10, 15.
        assert_eq!(calls.get(), 5 * 4);
        assert_eq!(out.dims(), xs.dims());
        // Blending a tile with itself-overlapping copies of the same data changes nothing.
        let (diff, _) = crate::engines::nn::compare::max_abs_diff(&out, &xs).unwrap();
        assert!(diff < 1e-3);
    }

    #[test]
    fn blend_ramps_linearly_from_the_neighbour() {
        let a = Tensor::ones((1, 1, 4, 2), DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros((1, 1, 4, 2), DType::F32, &Device::Cpu).unwrap();
        let out = blend(&a, &b, 4, 2).unwrap();
        let col: Vec<f32> = out
            .narrow(3, 0, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(col, vec![1.0, 0.75, 0.5, 0.25]);
        let out = blend(&a, &b, 1, 3).unwrap();
        let row: Vec<f32> = out
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(row, vec![1.0, 0.0]);
    }

    #[test]
    fn bad_tile_specs_are_refused() {
        assert!(TileSpec::new(0, 0, 8, 1).is_err());
        assert!(TileSpec::new(16, 16, 8, 1).is_err());
        assert!(TileSpec::new(12, 4, 1, 8).is_err());
        let s = TileSpec::new(64, 16, 8, 1).unwrap();
        assert_eq!((s.step, s.blend, s.row_limit), (48, 128, 384));
        let e = TileSpec::new(512, 128, 1, 8).unwrap();
        assert_eq!((e.step, e.blend, e.row_limit), (384, 16, 48));
    }
}
