//! kohya's FLUX LoRAs name transformer layers as Black Forest Labs' checkpoint does, flattened
//! (`lora_unet_double_blocks_0_img_attn_qkv`, `lora_unet_single_blocks_3_linear1`). A fused
//! BFL layer is several diffusers projections (q, k, v; single blocks' q, k, v and MLP), so its
//! LoRA is split: the down matrix shared, the up matrix's rows cut at the projections' sizes
//! (as diffusers' `_convert_kohya_flux_lora_to_diffusers`).

use crate::engines::flux::transformer::names::diffusers_source;

/// A double block's layers, flattened -> BFL.
const DOUBLE: [(&str, &str); 10] = [
    ("img_mod_lin", "img_mod.lin"),
    ("txt_mod_lin", "txt_mod.lin"),
    ("img_attn_qkv", "img_attn.qkv"),
    ("txt_attn_qkv", "txt_attn.qkv"),
    ("img_attn_proj", "img_attn.proj"),
    ("txt_attn_proj", "txt_attn.proj"),
    ("img_mlp_0", "img_mlp.0"),
    ("img_mlp_2", "img_mlp.2"),
    ("txt_mlp_0", "txt_mlp.0"),
    ("txt_mlp_2", "txt_mlp.2"),
];

/// A single block's layers, flattened -> BFL.
const SINGLE: [(&str, &str); 3] = [
    ("linear1", "linear1"),
    ("linear2", "linear2"),
    ("modulation_lin", "modulation.lin"),
];

/// The diffusers module paths (in output order) of a flattened BFL block layer; None for any
/// other path.
pub fn to_diffusers(flat: &str) -> Option<Vec<String>> {
    let (kind, rest, table): (&str, &str, &[(&str, &str)]) =
        if let Some(rest) = flat.strip_prefix("double_blocks_") {
            ("double_blocks", rest, &DOUBLE)
        } else if let Some(rest) = flat.strip_prefix("single_blocks_") {
            ("single_blocks", rest, &SINGLE)
        } else {
            return None;
        };
    let (index, layer) = rest.split_once('_')?;
    let index: usize = index.parse().ok()?;
    let bfl = table.iter().find(|(f, _)| *f == layer)?.1;
    let source = diffusers_source(&format!("{kind}.{index}.{bfl}"))?;
    (!source.swap_halves).then_some(source.parts)
}

#[cfg(test)]
mod tests {
    use super::to_diffusers;

    #[test]
    fn fused_bfl_layers_name_their_diffusers_projections() {
        assert_eq!(
            to_diffusers("double_blocks_2_img_attn_qkv").unwrap(),
            [
                "transformer_blocks.2.attn.to_q",
                "transformer_blocks.2.attn.to_k",
                "transformer_blocks.2.attn.to_v"
            ]
        );
        assert_eq!(
            to_diffusers("single_blocks_0_linear1").unwrap()[3],
            "single_transformer_blocks.0.proj_mlp"
        );
        assert_eq!(
            to_diffusers("double_blocks_0_txt_mlp_2").unwrap(),
            ["transformer_blocks.0.ff_context.net.2"]
        );
        assert_eq!(
            to_diffusers("single_blocks_1_modulation_lin").unwrap(),
            ["single_transformer_blocks.1.norm.linear"]
        );
        assert_eq!(to_diffusers("double_blocks_0_img_attn_norm"), None);
        assert_eq!(to_diffusers("down_blocks_0_attentions_0_proj_in"), None);
    }
}
