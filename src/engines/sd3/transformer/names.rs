//! The original SD 3 / 3.5 checkpoint's tensor names (what the model is built on, and what
//! city96's SD 3.5 GGUFs store) and where each lives in a diffusers checkpoint: the inverse of
//! diffusers' `convert_sd3_transformer_checkpoint_to_diffusers`.

use crate::engines::nn::layer_source::{DiffusersParts, NameMap};

/// The diffusers tensor(s) of the original layer `name` (a module path like
/// `joint_blocks.3.x_block.attn.qkv`, or a full tensor name like `pos_embed` or
/// `joint_blocks.0.x_block.attn.ln_q.weight`) in a model of `num_layers` blocks. None for a name
/// SD 3 does not have.
pub fn diffusers_parts(name: &str, num_layers: usize) -> Option<DiffusersParts> {
    let top = match name {
        "pos_embed" => Some("pos_embed.pos_embed"),
        "x_embedder.proj.weight" => Some("pos_embed.proj.weight"),
        "x_embedder.proj.bias" => Some("pos_embed.proj.bias"),
        "t_embedder.mlp.0" => Some("time_text_embed.timestep_embedder.linear_1"),
        "t_embedder.mlp.2" => Some("time_text_embed.timestep_embedder.linear_2"),
        "y_embedder.mlp.0" => Some("time_text_embed.text_embedder.linear_1"),
        "y_embedder.mlp.2" => Some("time_text_embed.text_embedder.linear_2"),
        "context_embedder" => Some("context_embedder"),
        "final_layer.linear" => Some("proj_out"),
        _ => None,
    };
    if let Some(n) = top {
        return Some(DiffusersParts::one(n));
    }
    if name == "final_layer.adaLN_modulation.1" {
        return Some(DiffusersParts::swapped("norm_out.linear"));
    }
    let rest = name.strip_prefix("joint_blocks.")?;
    let (index, rest) = rest.split_once('.')?;
    let index: usize = index.parse().ok()?;
    let p = format!("transformer_blocks.{index}");
    let (stream, layer) = rest.split_once('.')?;
    let x = stream == "x_block";
    if !x && stream != "context_block" {
        return None;
    }
    let qkv =
        |attn: &str, names: [&str; 3]| Some(DiffusersParts::fused(&format!("{p}.{attn}"), &names));
    let one = |n: String| Some(DiffusersParts::one(n));
    match (x, layer) {
        (true, "adaLN_modulation.1") => one(format!("{p}.norm1.linear")),
        // The last block's (context_pre_only) is an AdaLayerNormContinuous: scale, shift in
        // diffusers, shift, scale here.
        (false, "adaLN_modulation.1") if index + 1 == num_layers => {
            Some(DiffusersParts::swapped(format!("{p}.norm1_context.linear")))
        }
        (false, "adaLN_modulation.1") => one(format!("{p}.norm1_context.linear")),
        (true, "attn.qkv") => qkv("attn", ["to_q", "to_k", "to_v"]),
        (false, "attn.qkv") => qkv("attn", ["add_q_proj", "add_k_proj", "add_v_proj"]),
        (true, "attn2.qkv") => qkv("attn2", ["to_q", "to_k", "to_v"]),
        (true, "attn.proj") => one(format!("{p}.attn.to_out.0")),
        (false, "attn.proj") => one(format!("{p}.attn.to_add_out")),
        (true, "attn2.proj") => one(format!("{p}.attn2.to_out.0")),
        (true, "attn.ln_q.weight") => one(format!("{p}.attn.norm_q.weight")),
        (true, "attn.ln_k.weight") => one(format!("{p}.attn.norm_k.weight")),
        (false, "attn.ln_q.weight") => one(format!("{p}.attn.norm_added_q.weight")),
        (false, "attn.ln_k.weight") => one(format!("{p}.attn.norm_added_k.weight")),
        (true, "attn2.ln_q.weight") => one(format!("{p}.attn2.norm_q.weight")),
        (true, "attn2.ln_k.weight") => one(format!("{p}.attn2.norm_k.weight")),
        (true, "mlp.fc1") => one(format!("{p}.ff.net.0.proj")),
        (true, "mlp.fc2") => one(format!("{p}.ff.net.2")),
        (false, "mlp.fc1") => one(format!("{p}.ff_context.net.0.proj")),
        (false, "mlp.fc2") => one(format!("{p}.ff_context.net.2")),
        _ => None,
    }
}

/// `diffusers_parts` for a model of `num_layers` blocks, as a layer source takes it.
pub fn name_map(num_layers: usize) -> NameMap {
    std::sync::Arc::new(move |name: &str| diffusers_parts(name, num_layers))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fused_projections_concatenate_in_order() {
        let s = diffusers_parts("joint_blocks.11.context_block.attn.qkv", 24).unwrap();
        assert_eq!(
            s.parts,
            [
                "transformer_blocks.11.attn.add_q_proj",
                "transformer_blocks.11.attn.add_k_proj",
                "transformer_blocks.11.attn.add_v_proj"
            ]
        );
        let s = diffusers_parts("joint_blocks.0.x_block.attn2.qkv", 24).unwrap();
        assert_eq!(s.parts[2], "transformer_blocks.0.attn2.to_v");
    }

    #[test]
    fn shift_scale_modulations_are_swapped() {
        let map = name_map(3);
        assert!(map("final_layer.adaLN_modulation.1").unwrap().swap_halves);
        let last = map("joint_blocks.2.context_block.adaLN_modulation.1");
        assert!(last.unwrap().swap_halves);
        let other = map("joint_blocks.1.context_block.adaLN_modulation.1").unwrap();
        assert!(!other.swap_halves);
        assert!(
            !map("joint_blocks.2.x_block.adaLN_modulation.1")
                .unwrap()
                .swap_halves
        );
    }

    #[test]
    fn names_map_one_to_one() {
        let one = |n: &str| diffusers_parts(n, 24).unwrap().parts[0].clone();
        assert_eq!(one("pos_embed"), "pos_embed.pos_embed");
        assert_eq!(
            one("y_embedder.mlp.2"),
            "time_text_embed.text_embedder.linear_2"
        );
        assert_eq!(
            one("joint_blocks.4.context_block.attn.ln_k.weight"),
            "transformer_blocks.4.attn.norm_added_k.weight"
        );
        assert_eq!(
            one("joint_blocks.4.x_block.mlp.fc2"),
            "transformer_blocks.4.ff.net.2"
        );
        assert_eq!(diffusers_parts("joint_blocks.x.x_block.attn.qkv", 24), None);
        assert_eq!(diffusers_parts("joint_blocks.1.y_block.attn.qkv", 24), None);
    }
}
