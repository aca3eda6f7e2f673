//! The original Z-Image checkpoint's tensor names (what the model is built on, and what Z-Image
//! GGUFs store) and where each lives in a diffusers checkpoint: the inverse of diffusers'
//! `convert_z_image_transformer_checkpoint_to_diffusers` (its renames, and the fused
//! `attention.qkv` that diffusers splits into `to_q`, `to_k`, `to_v`).

/// The 2x2, one-frame patch's key in diffusers' `all_x_embedder` / `all_final_layer`.
const PATCH_KEY: &str = "2-1";

/// The diffusers module paths (or full tensor names) holding the original `name`, concatenated
/// along dim 0 in order when there are several (the fused q/k/v).
pub fn diffusers_parts(name: &str) -> Vec<String> {
    if let Some(block) = name.strip_suffix(".attention.qkv") {
        return ["to_q", "to_k", "to_v"]
            .iter()
            .map(|p| format!("{block}.attention.{p}"))
            .collect();
    }
    let mut mapped = name.to_string();
    for (original, diffusers) in [
        ("final_layer.", format!("all_final_layer.{PATCH_KEY}.")),
        ("x_embedder", format!("all_x_embedder.{PATCH_KEY}")),
    ] {
        if let Some(rest) = mapped.strip_prefix(original) {
            mapped = format!("{diffusers}{rest}");
        }
    }
    for (original, diffusers) in [
        (".attention.out", ".attention.to_out.0"),
        (".attention.q_norm.", ".attention.norm_q."),
        (".attention.k_norm.", ".attention.norm_k."),
    ] {
        mapped = mapped.replace(original, diffusers);
    }
    vec![mapped]
}

/// How an error names the original tensor or layer `name`.
pub fn describe(name: &str) -> String {
    format!("the Z-Image transformer's `{name}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_names_map_as_diffusers_converts_them() {
        let one = |n: &str| diffusers_parts(n).join(" ");
        assert_eq!(one("x_embedder"), "all_x_embedder.2-1");
        assert_eq!(
            one("final_layer.adaLN_modulation.1"),
            "all_final_layer.2-1.adaLN_modulation.1"
        );
        assert_eq!(
            one("layers.3.attention.qkv"),
            "layers.3.attention.to_q layers.3.attention.to_k layers.3.attention.to_v"
        );
        assert_eq!(
            one("noise_refiner.0.attention.out"),
            "noise_refiner.0.attention.to_out.0"
        );
        assert_eq!(
            one("context_refiner.1.attention.k_norm.weight"),
            "context_refiner.1.attention.norm_k.weight"
        );
        for same in [
            "cap_embedder.1",
            "cap_embedder.0.weight",
            "t_embedder.mlp.2",
            "x_pad_token",
            "layers.0.feed_forward.w2",
            "layers.0.ffn_norm1.weight",
            "layers.0.adaLN_modulation.0",
        ] {
            assert_eq!(one(same), same);
        }
    }
}
