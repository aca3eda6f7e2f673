//! kohya's SDXL LoRAs name UNet modules as Stability's generative-models code does
//! (`input_blocks_4_1_transformer_blocks_0_attn1_to_q`, `middle_block_1_...`,
//! `output_blocks_2_0_in_layers_2`); this maps such a flattened path to diffusers' flattened
//! path (`down_blocks_1_attentions_1_...`), as diffusers' `_maybe_map_sgm_blocks_to_diffusers`.

/// A resnet's inner layer, generative-models' name -> diffusers'.
const RESNET: [(&str, &str); 6] = [
    ("in_layers_0", "norm1"),
    ("in_layers_2", "conv1"),
    ("emb_layers_1", "time_emb_proj"),
    ("out_layers_0", "norm2"),
    ("out_layers_3", "conv2"),
    ("skip_connection", "conv_shortcut"),
];

/// Top-level layers outside the blocks.
const TOP: [(&str, &str); 6] = [
    ("time_embed_0", "time_embedding_linear_1"),
    ("time_embed_2", "time_embedding_linear_2"),
    ("label_emb_0_0", "add_embedding_linear_1"),
    ("label_emb_0_2", "add_embedding_linear_2"),
    ("out_0", "conv_norm_out"),
    ("out_2", "conv_out"),
];

/// Two leading `_`-separated numbers and the rest (`4_1_proj_in` -> 4, 1, "proj_in").
fn two_numbers(s: &str) -> Option<(usize, usize, &str)> {
    let (a, rest) = s.split_once('_')?;
    let (b, rest) = match rest.split_once('_') {
        Some((b, rest)) => (b, rest),
        None => (rest, ""),
    };
    Some((a.parse().ok()?, b.parse().ok()?, rest))
}

fn resnet(prefix: String, rest: &str) -> Option<String> {
    let inner = RESNET.iter().find(|(g, _)| *g == rest).map(|(_, d)| *d)?;
    Some(format!("{prefix}_{inner}"))
}

fn join(prefix: String, rest: &str) -> String {
    if rest.is_empty() {
        prefix
    } else {
        format!("{prefix}_{rest}")
    }
}

/// diffusers' flattened path of a generative-models flattened UNet path; None when `path` is not
/// one (a diffusers-named path is left to the caller) or names no layer diffusers has.
/// `layers_per_block` is the UNet config's.
pub fn to_diffusers(path: &str, layers_per_block: usize) -> Option<String> {
    let per = layers_per_block + 1;
    if let Some((_, d)) = TOP.iter().find(|(g, _)| *g == path) {
        return Some((*d).to_string());
    }
    if let Some(rest) = path.strip_prefix("input_blocks_") {
        let (i, j, rest) = two_numbers(rest)?;
        if i == 0 {
            return (j == 0 && rest.is_empty()).then(|| "conv_in".to_string());
        }
        let (block, layer) = ((i - 1) / per, (i - 1) % per);
        if layer == layers_per_block {
            return (j == 0 && rest == "op")
                .then(|| format!("down_blocks_{block}_downsamplers_0_conv"));
        }
        return match j {
            0 => resnet(format!("down_blocks_{block}_resnets_{layer}"), rest),
            1 => Some(join(
                format!("down_blocks_{block}_attentions_{layer}"),
                rest,
            )),
            _ => None,
        };
    }
    if let Some(rest) = path.strip_prefix("middle_block_") {
        let (j, rest) = rest.split_once('_')?;
        return match j.parse::<usize>().ok()? {
            0 => resnet("mid_block_resnets_0".into(), rest),
            1 => Some(join("mid_block_attentions_0".into(), rest)),
            2 => resnet("mid_block_resnets_1".into(), rest),
            _ => None,
        };
    }
    if let Some(rest) = path.strip_prefix("output_blocks_") {
        let (i, j, rest) = two_numbers(rest)?;
        let (block, layer) = (i / per, i % per);
        return match j {
            0 => resnet(format!("up_blocks_{block}_resnets_{layer}"), rest),
            1 | 2 if rest == "conv" => Some(format!("up_blocks_{block}_upsamplers_0_conv")),
            1 => Some(join(format!("up_blocks_{block}_attentions_{layer}"), rest)),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::to_diffusers;

    #[test]
    fn sdxl_attention_blocks_map_to_diffusers() {
        // SDXL: two layers a block, the first down block without attention.
        let m = |p: &str| to_diffusers(p, 2);
        assert_eq!(
            m("input_blocks_4_1_transformer_blocks_0_attn1_to_q").as_deref(),
            Some("down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q")
        );
        assert_eq!(
            m("input_blocks_8_1_proj_in").as_deref(),
            Some("down_blocks_2_attentions_1_proj_in")
        );
        assert_eq!(
            m("middle_block_1_transformer_blocks_9_ff_net_2").as_deref(),
            Some("mid_block_attentions_0_transformer_blocks_9_ff_net_2")
        );
        assert_eq!(
            m("output_blocks_5_1_proj_out").as_deref(),
            Some("up_blocks_1_attentions_2_proj_out")
        );
    }

    #[test]
    fn resnets_samplers_and_top_layers_map_too() {
        let m = |p: &str| to_diffusers(p, 1);
        assert_eq!(m("input_blocks_0_0").as_deref(), Some("conv_in"));
        assert_eq!(
            m("input_blocks_1_0_in_layers_2").as_deref(),
            Some("down_blocks_0_resnets_0_conv1")
        );
        assert_eq!(
            m("input_blocks_2_0_op").as_deref(),
            Some("down_blocks_0_downsamplers_0_conv")
        );
        assert_eq!(
            m("middle_block_2_skip_connection").as_deref(),
            Some("mid_block_resnets_1_conv_shortcut")
        );
        assert_eq!(
            m("output_blocks_1_1_conv").as_deref(),
            Some("up_blocks_0_upsamplers_0_conv")
        );
        assert_eq!(
            m("output_blocks_3_2_conv").as_deref(),
            Some("up_blocks_1_upsamplers_0_conv")
        );
        assert_eq!(
            m("time_embed_2").as_deref(),
            Some("time_embedding_linear_2")
        );
        assert_eq!(m("down_blocks_0_attentions_0_proj_in"), None);
        assert_eq!(m("input_blocks_1_0_bogus"), None);
    }
}
