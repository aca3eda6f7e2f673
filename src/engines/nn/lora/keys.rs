//! A LoRA file's tensor names, parsed: which network a module targets (UNet, text encoders,
//! transformer), its module path, and which part of the low-rank pair the tensor is. Two naming
//! schemes are read: kohya/A1111 (`lora_unet_down_blocks_0_..._to_q.lora_down.weight`, module
//! paths flattened with underscores, an `.alpha` per module) and diffusers/PEFT
//! (`unet.down_blocks.0....to_q.lora_A.weight`, dotted module paths).

/// The network of a pipeline a LoRA module changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Unet,
    TextEncoder,
    TextEncoder2,
    Transformer,
}

impl Target {
    /// The component folder's name in a diffusers pipeline.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Unet => "unet",
            Self::TextEncoder => "text_encoder",
            Self::TextEncoder2 => "text_encoder_2",
            Self::Transformer => "transformer",
        }
    }
}

/// Which tensor of a module's low-rank pair a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The (rank, in, ...) projection: kohya's lora_down, PEFT's lora_A.
    Down,
    /// The (out, rank, ...) projection: kohya's lora_up, PEFT's lora_B.
    Up,
    /// kohya's scalar alpha (the delta is scaled by alpha / rank).
    Alpha,
}

/// A module a LoRA changes, as the file names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Module {
    pub target: Target,
    /// The module path: dotted (PEFT, `down_blocks.0.attentions.0.proj_in`) or flattened with
    /// underscores (kohya, `down_blocks_0_attentions_0_proj_in`).
    pub path: String,
    pub flat: bool,
}

/// What a LoRA tensor name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// A part of a plain LoRA's pair.
    Lora(Module, Part),
    /// A LyCORIS variant (LoHa, LoKr, DoRA, ...), which is not read.
    Lycoris(&'static str),
    /// Not a LoRA tensor name at all.
    Unknown,
}

const SUFFIXES: [(&str, Part); 9] = [
    (".lora_down.weight", Part::Down),
    (".lora_up.weight", Part::Up),
    (".alpha", Part::Alpha),
    (".lora_A.weight", Part::Down),
    (".lora_B.weight", Part::Up),
    (".lora_A.default.weight", Part::Down),
    (".lora_B.default.weight", Part::Up),
    (".lora.down.weight", Part::Down),
    (".lora.up.weight", Part::Up),
];

/// What a LyCORIS (or other non-LoRA) tensor is, from its name's last part.
fn lycoris(key: &str) -> Option<&'static str> {
    if key.ends_with(".lora_mid.weight") {
        return Some("LoCon with a CP-decomposed middle");
    }
    let last = key.rsplit_once('.').map_or(key, |(_, l)| l);
    match last {
        l if l.starts_with("hada_") => Some("LoHa"),
        l if l.starts_with("lokr_") => Some("LoKr"),
        "dora_scale" => Some("DoRA"),
        "diff" | "diff_b" => Some("full weight difference"),
        _ => None,
    }
}

/// Parses one tensor name of a LoRA file.
pub fn parse_key(key: &str) -> KeyKind {
    if let Some(kind) = lycoris(key) {
        return KeyKind::Lycoris(kind);
    }
    let Some((module, part)) = SUFFIXES
        .iter()
        .find_map(|(s, part)| key.strip_suffix(s).map(|m| (m, *part)))
    else {
        return KeyKind::Unknown;
    };
    match parse_module(module) {
        Some(m) => KeyKind::Lora(m, part),
        None => KeyKind::Unknown,
    }
}

/// The network and module path of a module name (the key without its part suffix).
pub fn parse_module(module: &str) -> Option<Module> {
    let module = module.strip_prefix("base_model.model.").unwrap_or(module);
    const KOHYA: [(&str, Target); 5] = [
        ("lora_unet_", Target::Unet),
        ("lora_te1_", Target::TextEncoder),
        ("lora_te2_", Target::TextEncoder2),
        ("lora_te_", Target::TextEncoder),
        ("lora_transformer_", Target::Transformer),
    ];
    const PEFT: [(&str, Target); 4] = [
        ("unet.", Target::Unet),
        ("text_encoder.", Target::TextEncoder),
        ("text_encoder_2.", Target::TextEncoder2),
        ("transformer.", Target::Transformer),
    ];
    let found = KOHYA
        .iter()
        .map(|(p, t)| (p, t, true))
        .chain(PEFT.iter().map(|(p, t)| (p, t, false)))
        .find_map(|(prefix, target, flat)| {
            module.strip_prefix(prefix).map(|rest| Module {
                target: *target,
                path: rest.to_string(),
                flat,
            })
        });
    found.filter(|m| !m.path.is_empty())
}

/// A module path flattened as kohya names it: dots become underscores.
pub fn flatten(path: &str) -> String {
    path.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lora(key: &str) -> (Module, Part) {
        match parse_key(key) {
            KeyKind::Lora(m, p) => (m, p),
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn kohya_keys_name_network_and_flat_path() {
        let (m, p) = lora("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight");
        assert_eq!(m.target, Target::Unet);
        assert_eq!(m.path, "down_blocks_0_attentions_0_proj_in");
        assert!(m.flat);
        assert_eq!(p, Part::Down);
        let (m, p) = lora("lora_te2_text_model_encoder_layers_0_self_attn_q_proj.alpha");
        assert_eq!((m.target, p), (Target::TextEncoder2, Part::Alpha));
        let (m, _) = lora("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight");
        assert_eq!(m.target, Target::TextEncoder);
        assert_eq!(m.path, "text_model_encoder_layers_0_mlp_fc1");
        let (m, _) = lora("lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight");
        assert_eq!(m.target, Target::TextEncoder);
    }

    #[test]
    fn peft_keys_name_network_and_dotted_path() {
        let (m, p) =
            lora("unet.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight");
        assert_eq!(m.target, Target::Unet);
        assert_eq!(
            m.path,
            "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0"
        );
        assert!(!m.flat);
        assert_eq!(p, Part::Up);
        let (m, p) =
            lora("text_encoder_2.text_model.encoder.layers.1.self_attn.v_proj.lora_A.weight");
        assert_eq!((m.target, p), (Target::TextEncoder2, Part::Down));
        assert_eq!(m.path, "text_model.encoder.layers.1.self_attn.v_proj");
        let (m, _) = lora("transformer.single_transformer_blocks.0.proj_out.lora.up.weight");
        assert_eq!(m.target, Target::Transformer);
    }

    #[test]
    fn other_names_are_told_apart() {
        assert_eq!(
            parse_key("lora_unet_mid_block_attentions_0_proj_in.hada_w1_a"),
            KeyKind::Lycoris("LoHa")
        );
        assert_eq!(
            parse_key("lora_unet_conv_in.lokr_w1"),
            KeyKind::Lycoris("LoKr")
        );
        assert_eq!(parse_key("vae.decoder.conv_in.weight"), KeyKind::Unknown);
        assert_eq!(parse_key("lora_unet_.lora_up.weight"), KeyKind::Unknown);
        assert_eq!(
            parse_key("model.diffusion_model.x.lora_up.weight"),
            KeyKind::Unknown
        );
    }

    #[test]
    fn flatten_joins_with_underscores() {
        assert_eq!(flatten("to_out.0"), "to_out_0");
    }
}
