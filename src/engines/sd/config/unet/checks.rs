//! The UNet config values the model divides or indexes by, checked before anything is built.

use super::RawUNetConfig;
use crate::engines::config_check as check;
use crate::engines::sd::config::SampleSize;

/// The values the UNet divides or indexes by: channels into groups and heads, kernels into
/// paddings, the timestep embedding into halves.
pub(super) fn check_sizes(
    r: &RawUNetConfig,
    groups: usize,
    heads: &[usize],
    layers: &[usize],
    cross: &[usize],
    transformer_layers: &[usize],
) -> check::Check {
    check::positive(&[
        ("in_channels", r.in_channels),
        ("out_channels", r.out_channels),
        ("norm_num_groups", groups),
        ("conv_in_kernel", r.conv_in_kernel),
        ("conv_out_kernel", r.conv_out_kernel),
        ("downsample_padding", r.downsample_padding.max(1)),
    ])?;
    check::odd_kernel("conv_in_kernel", r.conv_in_kernel)?;
    check::odd_kernel("conv_out_kernel", r.conv_out_kernel)?;
    check::all_positive("block_out_channels", &r.block_out_channels)?;
    check::all_positive("layers_per_block", layers)?;
    check::all_positive("cross_attention_dim", cross)?;
    check::all_positive("transformer_layers_per_block", transformer_layers)?;
    if let Some(reverse) = &r.reverse_transformer_layers_per_block {
        check::all_positive("reverse_transformer_layers_per_block", reverse)?;
    }
    let heads_key = if r.num_attention_heads.is_some() {
        "num_attention_heads"
    } else {
        "attention_head_dim"
    };
    check::all_positive(heads_key, heads)?;
    for (i, (&c, &h)) in r.block_out_channels.iter().zip(heads).enumerate() {
        check::multiple_of(
            &format!("block_out_channels[{i}]"),
            c,
            "norm_num_groups",
            groups,
        )?;
        check::multiple_of(
            &format!("block_out_channels[{i}]"),
            c,
            &format!("{heads_key}[{i}]"),
            h,
        )?;
    }
    // The sinusoidal timestep embedding splits block_out_channels[0] in halves and divides by
    // (half - freq_shift).
    let first = r.block_out_channels[0];
    if first < 2 || !first.is_multiple_of(2) || (first / 2) as f64 - r.freq_shift == 0.0 {
        return Err(format!(
            "`block_out_channels`[0] = {first}: the timestep embedding needs an even width above \
             2 x freq_shift"
        ));
    }
    if let Some(dim) = r.time_embedding_dim {
        check::positive(&[("time_embedding_dim", dim)])?;
    }
    if let Some(dim) = r.addition_time_embed_dim
        && (dim < 2 || !dim.is_multiple_of(2))
    {
        return Err(format!(
            "`addition_time_embed_dim` = {dim}: it must be even and at least 2"
        ));
    }
    if let Some(dim) = r.projection_class_embeddings_input_dim {
        check::positive(&[("projection_class_embeddings_input_dim", dim)])?;
    }
    if let Some(size) = r.sample_size.as_ref().and_then(SampleSize::first) {
        check::positive(&[("sample_size", size)])?;
    }
    check::positive_float("norm_eps", r.norm_eps)
}
