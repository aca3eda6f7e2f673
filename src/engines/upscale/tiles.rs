//! `RealESRGANer`'s pre-process and tile loop: the image padded (reflect, right and bottom) to
//! a multiple of what the network divides, cut in tiles read with `TILE_PAD` pixels of context,
//! each tile's output cropped to its own area, the padding cropped off the whole.

use candle_core::{Device, Tensor};

use super::Upscaler;
use super::footprint::TILE_PAD;
use crate::engines::CancelToken;

/// Three planes of `h` x `w` values, row-major (the network's input or output).
pub struct Planes {
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

/// Index list of `n` items padded with `pad` more, mirrored about the last (numpy's "reflect";
/// the edge repeats where the side is too short to mirror).
fn reflect_index(n: usize, pad: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    for i in 0..pad {
        let j = if n > i + 1 { n - 2 - i } else { n - 1 };
        idx.push(j as u32);
    }
    idx
}

/// `x` upscaled by `up`, clamped to 0..1; `tile` input pixels a side at most (None: whole).
/// `progress(done, total)` after each tile.
pub fn upscale_planes(
    up: &Upscaler,
    x: &Planes,
    tile: Option<u32>,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(usize, usize),
) -> crate::Result<Planes> {
    let s = up.arch.scale();
    let m = up.arch.side_multiple();
    let input = Tensor::from_slice(&x.data, (1, 3, x.h, x.w), &Device::Cpu)?;
    let (pad_h, pad_w) = ((m - x.h % m) % m, (m - x.w % m) % m);
    let input = if pad_h + pad_w > 0 {
        let rows = Tensor::new(reflect_index(x.h, pad_h), &Device::Cpu)?;
        let cols = Tensor::new(reflect_index(x.w, pad_w), &Device::Cpu)?;
        input.index_select(&rows, 2)?.index_select(&cols, 3)?
    } else {
        input
    };
    let (h, w) = (x.h + pad_h, x.w + pad_w);
    // Tiles a multiple of the network's divisor, so every tile's sides stay divisible.
    let side = match tile {
        Some(t) => ((t as usize).max(m) / m * m).max(m),
        None => h.max(w),
    };
    let (oh, ow) = (h * s, w * s);
    let mut out = vec![0f32; 3 * oh * ow];
    let (tiles_y, tiles_x) = (h.div_ceil(side), w.div_ceil(side));
    let total = tiles_y * tiles_x;
    let pad = TILE_PAD / m * m;
    for ty in 0..tiles_y {
        for tx in 0..tiles_x {
            cancel.check()?;
            let (y0, x0) = (ty * side, tx * side);
            let (y1, x1) = ((y0 + side).min(h), (x0 + side).min(w));
            let (py0, px0) = (y0.saturating_sub(pad), x0.saturating_sub(pad));
            let (py1, px1) = ((y1 + pad).min(h), (x1 + pad).min(w));
            let piece = input
                .narrow(2, py0, py1 - py0)?
                .narrow(3, px0, px1 - px0)?
                .contiguous()?;
            let result = up.run(&piece, cancel)?;
            let result = result
                .narrow(2, (y0 - py0) * s, (y1 - y0) * s)?
                .narrow(3, (x0 - px0) * s, (x1 - x0) * s)?
                .clamp(0f32, 1f32)?
                .squeeze(0)?
                .contiguous()?;
            let (th, tw) = ((y1 - y0) * s, (x1 - x0) * s);
            let values = result.flatten_all()?.to_vec1::<f32>()?;
            for c in 0..3 {
                for r in 0..th {
                    let src = &values[(c * th + r) * tw..][..tw];
                    let dst = (c * oh + y0 * s + r) * ow + x0 * s;
                    out[dst..dst + tw].copy_from_slice(src);
                }
            }
            progress(ty * tiles_x + tx + 1, total);
        }
    }
    // The padding's output cropped off.
    let (fh, fw) = (x.h * s, x.w * s);
    let data = if (fh, fw) == (oh, ow) {
        out
    } else {
        let mut cropped = Vec::with_capacity(3 * fh * fw);
        for c in 0..3 {
            for r in 0..fh {
                cropped.extend_from_slice(&out[(c * oh + r) * ow..][..fw]);
            }
        }
        cropped
    };
    Ok(Planes { h: fh, w: fw, data })
}

#[cfg(test)]
mod tests {
    use super::reflect_index;

    #[test]
    fn reflect_mirrors_about_the_last_item() {
        assert_eq!(reflect_index(4, 1), vec![0, 1, 2, 3, 2]);
        assert_eq!(reflect_index(4, 3), vec![0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect_index(1, 1), vec![0, 0]);
    }
}
