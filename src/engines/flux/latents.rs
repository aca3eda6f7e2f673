//! FLUX's latent layout: the VAE's (b, c, h, w) latents packed into a sequence of 2x2 patches
//! (diffusers' `FluxPipeline._pack_latents` / `_unpack_latents`), and the 3-axis position ids the
//! transformer's RoPE reads (`_prepare_latent_image_ids`; text ids are all zero).

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// (b, c, h, w) -> (b, (h/2)(w/2), 4c): each 2x2 patch becomes one token whose features are
/// channel-major, then patch row, then patch column (`view(b, c, h/2, 2, w/2, 2).permute(0, 2, 4,
/// 1, 3, 5)`). `h` and `w` must be even (diffusers makes them so).
pub fn pack(latents: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = latents.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        return Err(Error::bad_input(format!(
            "FLUX packs latents in 2x2 patches, but they are {h}x{w}"
        )));
    }
    let packed = latents
        .reshape((b, c, h / 2, 2, w / 2, 2))?
        .permute((0, 2, 4, 1, 3, 5))?
        .reshape((b, (h / 2) * (w / 2), c * 4))?;
    Ok(packed)
}

/// The latent size diffusers unpacks to for an image of `px` pixels: `2 * (px // (vae_scale *
/// 2))`.
pub fn latent_size(px: usize, vae_scale_factor: usize) -> usize {
    2 * (px / (vae_scale_factor * 2).max(1))
}

/// (b, seq, 4c) -> (b, c, h, w) for an image of `height_px` x `width_px` (diffusers'
/// `_unpack_latents`): h = 2 * (height_px // (vae_scale_factor * 2)), likewise w.
pub fn unpack(
    packed: &Tensor,
    height_px: usize,
    width_px: usize,
    vae_scale_factor: usize,
) -> Result<Tensor> {
    let (b, seq, features) = packed.dims3()?;
    if vae_scale_factor == 0 {
        return Err(Error::bad_input("the VAE scale factor must be at least 1"));
    }
    let h = latent_size(height_px, vae_scale_factor);
    let w = latent_size(width_px, vae_scale_factor);
    if features % 4 != 0 || seq != (h / 2) * (w / 2) {
        return Err(Error::bad_input(format!(
            "packed latents of {seq} tokens x {features} features do not unpack to a \
             {height_px}x{width_px} image ({} tokens of 4 x channels expected)",
            (h / 2) * (w / 2)
        )));
    }
    let c = features / 4;
    let latents = packed
        .reshape((b, h / 2, w / 2, c, 2, 2))?
        .permute((0, 3, 1, 4, 2, 5))?
        .reshape((b, c, h, w))?;
    Ok(latents)
}

/// `_prepare_latent_image_ids(h/2, w/2)` for latents of `latent_h` x `latent_w`: one row per
/// packed token, row-major, `[0, row, col]` as f32: (h/2 * w/2, 3).
pub fn image_ids(latent_h: usize, latent_w: usize, device: &Device) -> Result<Tensor> {
    let (rows, cols) = (latent_h / 2, latent_w / 2);
    let mut ids = Vec::with_capacity(rows * cols * 3);
    for r in 0..rows {
        for c in 0..cols {
            ids.extend_from_slice(&[0.0f32, r as f32, c as f32]);
        }
    }
    Ok(Tensor::from_vec(ids, (rows * cols, 3), device)?)
}

/// The text tokens' ids: all zeros, (seq, 3) f32 (FluxPipeline's `text_ids`).
pub fn text_ids(seq: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::zeros((seq, 3), DType::F32, device)?)
}

/// The starting noise (n, C, H/8, W/8) of a flow model's job in `dtype`: `given` (`--init-latents`:
/// one for every image, or one each; any other shape is bad input naming what `model` takes) or
/// each seed's own draw.
pub fn starting_noise(
    given: Option<&Tensor>,
    seeds: &[u64],
    (channels, lh, lw): (usize, usize, usize),
    device: &Device,
    dtype: DType,
    model: &str,
) -> Result<Tensor> {
    let n = seeds.len();
    let Some(t) = given else {
        return crate::engines::sd::latents::seeded_noise(seeds, (channels, lh, lw), device, dtype);
    };
    let t = t.to_device(device)?.to_dtype(dtype)?;
    let dims = t.dims4()?;
    if dims.1 != channels || dims.2 != lh || dims.3 != lw || (dims.0 != 1 && dims.0 != n) {
        return Err(Error::bad_input(format!(
            "--init-latents has shape {:?}; {model} at {}x{} takes the unpacked noise [1, \
             {channels}, {lh}, {lw}]",
            t.dims(),
            lw * 8,
            lh * 8
        )));
    }
    Ok(if dims.0 == n {
        t
    } else {
        t.repeat((n, 1, 1, 1))?
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pack_puts_each_2x2_patch_in_one_token() {
        let dev = Device::Cpu;
        // (1, 2, 2, 4): channel c, row y, column x holds 100c + 10y + x.
        let v: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..2).flat_map(move |y| (0..4).map(move |x| (100 * c + 10 * y + x) as f32))
            })
            .collect();
        let latents = Tensor::from_vec(v, (1, 2, 2, 4), &dev).unwrap();
        let packed = pack(&latents).unwrap();
        assert_eq!(packed.dims(), &[1, 2, 8]);
        let rows = packed.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        // Token 0 is columns 0-1; features c0 (y0x0, y0x1, y1x0, y1x1), then c1.
        assert_eq!(rows[0], vec![0., 1., 10., 11., 100., 101., 110., 111.]);
        assert_eq!(rows[1], vec![2., 3., 12., 13., 102., 103., 112., 113.]);
        assert!(pack(&Tensor::zeros((1, 2, 3, 4), DType::F32, &dev).unwrap()).is_err());
    }

    #[test]
    fn unpack_inverts_pack() {
        let dev = Device::Cpu;
        // A 48x64 image with the VAE's factor 8: latents 6x8.
        let latents = Tensor::arange(0f32, 2. * 16. * 6. * 8., &dev)
            .unwrap()
            .reshape((2, 16, 6, 8))
            .unwrap();
        let packed = pack(&latents).unwrap();
        assert_eq!(packed.dims(), &[2, 12, 64]);
        let back = unpack(&packed, 48, 64, 8).unwrap();
        let diff = (back - &latents).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        // 50 px rounds down to 48 as diffusers' // does; 40 px does not fit 12 tokens.
        assert_eq!(unpack(&packed, 50, 70, 8).unwrap().dims(), &[2, 16, 6, 8]);
        assert!(unpack(&packed, 40, 64, 8).is_err());
        assert!(unpack(&packed, 48, 64, 0).is_err());
    }

    #[test]
    fn ids_are_row_col_and_text_zeros() {
        let dev = Device::Cpu;
        let ids = image_ids(4, 6, &dev).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[0], vec![0., 0., 0.]);
        assert_eq!(ids[2], vec![0., 0., 2.]);
        assert_eq!(ids[4], vec![0., 1., 1.]);
        let t = text_ids(5, &dev).unwrap();
        assert_eq!(t.dims(), &[5, 3]);
        assert_eq!(t.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        assert_eq!(latent_size(1024, 8), 128);
        assert_eq!(latent_size(1000, 8), 124);
    }
}
