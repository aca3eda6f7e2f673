//! BFL's tensor names (what the model is built on, and what FLUX GGUFs store) and where each
//! lives in a diffusers checkpoint: one diffusers linear, several concatenated along the output
//! dimension (a fused q/k/v), or one stored with its halves swapped (the final modulation).

/// Where a BFL tensor comes from in diffusers' FluxTransformer2DModel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffusersSource {
    /// Module paths concatenated along dim 0, in order (one for an unfused layer).
    pub parts: Vec<String>,
    /// The two halves of the output dimension swapped (diffusers' `norm_out.linear` is scale,
    /// shift; BFL's `final_layer.adaLN_modulation.1` shift, scale).
    pub swap_halves: bool,
}

/// The diffusers module(s) of BFL's layer `bfl` (a module path like `double_blocks.3.img_attn.qkv`
/// or a norm scale's full name like `single_blocks.0.norm.query_norm.scale`, which maps to the
/// diffusers tensor's full name). None for a name FLUX does not have.
pub fn diffusers_source(bfl: &str) -> Option<DiffusersSource> {
    let one = |p: String| DiffusersSource {
        parts: vec![p],
        swap_halves: false,
    };
    let fused = |prefix: &str, names: &[&str]| DiffusersSource {
        parts: names.iter().map(|n| format!("{prefix}.{n}")).collect(),
        swap_halves: false,
    };
    let top = match bfl {
        "img_in" => Some("x_embedder"),
        "txt_in" => Some("context_embedder"),
        "time_in.in_layer" => Some("time_text_embed.timestep_embedder.linear_1"),
        "time_in.out_layer" => Some("time_text_embed.timestep_embedder.linear_2"),
        "guidance_in.in_layer" => Some("time_text_embed.guidance_embedder.linear_1"),
        "guidance_in.out_layer" => Some("time_text_embed.guidance_embedder.linear_2"),
        "vector_in.in_layer" => Some("time_text_embed.text_embedder.linear_1"),
        "vector_in.out_layer" => Some("time_text_embed.text_embedder.linear_2"),
        "final_layer.linear" => Some("proj_out"),
        _ => None,
    };
    if let Some(name) = top {
        return Some(one(name.to_string()));
    }
    if bfl == "final_layer.adaLN_modulation.1" {
        return Some(DiffusersSource {
            parts: vec!["norm_out.linear".to_string()],
            swap_halves: true,
        });
    }
    if let Some(rest) = bfl.strip_prefix("double_blocks.") {
        let (index, layer) = split_index(rest)?;
        let p = format!("transformer_blocks.{index}");
        let mapped = match layer {
            "img_mod.lin" => format!("{p}.norm1.linear"),
            "txt_mod.lin" => format!("{p}.norm1_context.linear"),
            "img_attn.qkv" => return Some(fused(&p, &["attn.to_q", "attn.to_k", "attn.to_v"])),
            "txt_attn.qkv" => {
                return Some(fused(
                    &p,
                    &["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
                ));
            }
            "img_attn.proj" => format!("{p}.attn.to_out.0"),
            "txt_attn.proj" => format!("{p}.attn.to_add_out"),
            "img_attn.norm.query_norm.scale" => format!("{p}.attn.norm_q.weight"),
            "img_attn.norm.key_norm.scale" => format!("{p}.attn.norm_k.weight"),
            "txt_attn.norm.query_norm.scale" => format!("{p}.attn.norm_added_q.weight"),
            "txt_attn.norm.key_norm.scale" => format!("{p}.attn.norm_added_k.weight"),
            "img_mlp.0" => format!("{p}.ff.net.0.proj"),
            "img_mlp.2" => format!("{p}.ff.net.2"),
            "txt_mlp.0" => format!("{p}.ff_context.net.0.proj"),
            "txt_mlp.2" => format!("{p}.ff_context.net.2"),
            _ => return None,
        };
        return Some(one(mapped));
    }
    if let Some(rest) = bfl.strip_prefix("single_blocks.") {
        let (index, layer) = split_index(rest)?;
        let p = format!("single_transformer_blocks.{index}");
        let mapped = match layer {
            "linear1" => {
                return Some(fused(
                    &p,
                    &["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"],
                ));
            }
            "linear2" => format!("{p}.proj_out"),
            "norm.query_norm.scale" => format!("{p}.attn.norm_q.weight"),
            "norm.key_norm.scale" => format!("{p}.attn.norm_k.weight"),
            "modulation.lin" => format!("{p}.norm.linear"),
            _ => return None,
        };
        return Some(one(mapped));
    }
    None
}

/// `"3.img_attn.qkv"` -> (3, "img_attn.qkv").
fn split_index(rest: &str) -> Option<(usize, &str)> {
    let (index, layer) = rest.split_once('.')?;
    Some((index.parse().ok()?, layer))
}

/// How an error names a BFL tensor: with its diffusers name, which users know from the config.
pub fn describe(bfl: &str) -> String {
    match diffusers_source(bfl) {
        Some(s) => format!("`{bfl}` (diffusers' {})", s.parts.join(" + ")),
        None => format!("`{bfl}`"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fused_layers_concatenate_diffusers_projections_in_order() {
        let s = diffusers_source("double_blocks.11.txt_attn.qkv").unwrap();
        assert_eq!(
            s.parts,
            [
                "transformer_blocks.11.attn.add_q_proj",
                "transformer_blocks.11.attn.add_k_proj",
                "transformer_blocks.11.attn.add_v_proj"
            ]
        );
        let s = diffusers_source("single_blocks.37.linear1").unwrap();
        assert_eq!(s.parts.len(), 4);
        assert_eq!(s.parts[3], "single_transformer_blocks.37.proj_mlp");
        assert!(!s.swap_halves);
    }

    #[test]
    fn the_final_modulation_swaps_halves_and_names_map_one_to_one() {
        let s = diffusers_source("final_layer.adaLN_modulation.1").unwrap();
        assert_eq!(s.parts, ["norm_out.linear"]);
        assert!(s.swap_halves);
        let one = |n: &str| diffusers_source(n).unwrap().parts[0].clone();
        assert_eq!(one("img_in"), "x_embedder");
        assert_eq!(
            one("guidance_in.out_layer"),
            "time_text_embed.guidance_embedder.linear_2"
        );
        assert_eq!(
            one("double_blocks.0.txt_attn.norm.key_norm.scale"),
            "transformer_blocks.0.attn.norm_added_k.weight"
        );
        assert_eq!(
            one("single_blocks.2.modulation.lin"),
            "single_transformer_blocks.2.norm.linear"
        );
        assert_eq!(diffusers_source("double_blocks.x.img_mod.lin"), None);
        assert_eq!(diffusers_source("unknown"), None);
        assert!(describe("img_in").contains("x_embedder"));
    }
}
