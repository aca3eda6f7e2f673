//! Matching a LoRA's modules to a model's weight tensors, once at pipeline load from the
//! components' headers (nothing loaded): every module must name a weight of the right shape, or
//! the LoRA is refused naming the file and the first key that did not match.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::file::LoraModule;
use super::keys::{Module, Target, flatten};
use super::patch::{Delta, WeightPatch};
use super::{LoraSpec, sgm};
use crate::error::{Error, Result};

/// A component's weight tensors by name, and kohya's flattened module names for them.
#[derive(Debug, Default)]
pub struct ComponentIndex {
    shapes: HashMap<String, Vec<usize>>,
    flat: HashMap<String, String>,
    /// The UNet's `layers_per_block` (kohya's SDXL names count blocks in layers).
    layers_per_block: Option<usize>,
}

impl ComponentIndex {
    /// From `(name, shape)` of every tensor. Text encoders saved without transformers'
    /// `text_model.` prefix are also found under it (the name every LoRA uses).
    pub fn new(
        tensors: impl IntoIterator<Item = (String, Vec<usize>)>,
        layers_per_block: Option<usize>,
    ) -> Self {
        let shapes: HashMap<String, Vec<usize>> = tensors.into_iter().collect();
        let mut flat = HashMap::new();
        for name in shapes.keys() {
            if let Some(module) = name.strip_suffix(".weight") {
                flat.insert(flatten(module), name.clone());
                if !module.starts_with("text_model.") {
                    flat.insert(format!("text_model_{}", flatten(module)), name.clone());
                }
            }
        }
        Self {
            shapes,
            flat,
            layers_per_block,
        }
    }

    /// The weight tensor a module names, if the component has it.
    fn weight_of(&self, module: &Module) -> Option<&str> {
        if module.flat {
            let path = match self
                .layers_per_block
                .and_then(|n| sgm::to_diffusers(&module.path, n))
            {
                Some(p) => p,
                None => module.path.clone(),
            };
            return self.flat.get(&path).map(String::as_str);
        }
        let direct = format!("{}.weight", module.path);
        if let Some((name, _)) = self.shapes.get_key_value(&direct) {
            return Some(name);
        }
        let stripped = module.path.strip_prefix("text_model.")?;
        let name = format!("{stripped}.weight");
        self.shapes.get_key_value(&name).map(|(n, _)| n.as_str())
    }
}

/// Each component's deltas from all the LoRAs of a job.
pub type Patches = HashMap<Target, Arc<WeightPatch>>;

/// What a model family calls itself in messages (`an SD 1.x model`).
fn no_component(target: Target) -> String {
    format!(
        "this model has no {} (a LoRA made for another model family?)",
        target.folder()
    )
}

/// The deltas of `loras` on the components `indexes` describes; every module must match a
/// weight of its shape.
pub fn resolve(loras: &[LoraSpec], indexes: &HashMap<Target, ComponentIndex>) -> Result<Patches> {
    let mut patches: HashMap<Target, WeightPatch> = HashMap::new();
    for lora in loras {
        for (module, m) in super::file::read(&lora.path)? {
            let (target, deltas) = match_module(&lora.path, indexes, &module, m, lora.weight)?;
            let patch = patches.entry(target).or_default();
            for (name, delta) in deltas {
                patch.add(name, delta);
            }
        }
    }
    Ok(patches.into_iter().map(|(t, p)| (t, Arc::new(p))).collect())
}

/// The weight(s) a module changes: one, or for a fused BFL layer of a FLUX transformer each
/// diffusers projection with its rows of the up matrix. With the network they belong to.
type Matched = (Target, Vec<(String, Delta)>);

fn match_module(
    file: &Path,
    indexes: &HashMap<Target, ComponentIndex>,
    module: &Module,
    m: LoraModule,
    weight: f64,
) -> Result<Matched> {
    let key = m.key.clone();
    let refuse = |why: String| {
        Error::bad_input(format!(
            "--lora {}: `{key}` matches no layer: {why}",
            file.display()
        ))
    };
    let scale = weight * m.scale();
    // kohya's FLUX LoRAs say `lora_unet_` for the transformer, in BFL's names.
    if module.target == Target::Unet
        && !indexes.contains_key(&Target::Unet)
        && let Some(index) = indexes.get(&Target::Transformer)
        && let Some(parts) = super::bfl::to_diffusers(&module.path)
    {
        return split_fused(index, &parts, m, scale)
            .map(|d| (Target::Transformer, d))
            .map_err(refuse);
    }
    let index = indexes
        .get(&module.target)
        .ok_or_else(|| refuse(no_component(module.target)))?;
    let name = index.weight_of(module).ok_or_else(|| {
        refuse(format!(
            "the {} has no such module (a LoRA made for another model family?)",
            module.target.folder()
        ))
    })?;
    let shape = index.shapes.get(name).cloned().unwrap_or_default();
    let out = m.up.dims()[0];
    let inner: usize = m.down.dims()[1..].iter().product();
    let up_trailing: usize = m.up.dims()[2..].iter().product();
    let base_inner: usize = shape.iter().skip(1).product();
    if shape.first() != Some(&out) || base_inner != inner || up_trailing != 1 {
        return Err(refuse(format!(
            "its delta is {:?} x {:?} but the {}'s `{name}` is {shape:?} (a LoRA made for \
             another model family?)",
            m.up.dims(),
            m.down.dims(),
            module.target.folder()
        )));
    }
    let delta = Delta {
        up: m.up,
        down: m.down,
        scale,
    };
    Ok((module.target, vec![(name.to_string(), delta)]))
}

/// A fused layer's LoRA cut into one delta per diffusers projection `parts` (in order).
fn split_fused(
    index: &ComponentIndex,
    parts: &[String],
    m: LoraModule,
    scale: f64,
) -> std::result::Result<Vec<(String, Delta)>, String> {
    let mut shapes = Vec::with_capacity(parts.len());
    for part in parts {
        let name = format!("{part}.weight");
        match index.shapes.get(&name) {
            Some(shape) if shape.len() == 2 => shapes.push((name, shape.clone())),
            _ => return Err(format!("the transformer has no `{name}`")),
        }
    }
    let total: usize = shapes.iter().map(|(_, s)| s[0]).sum();
    let (out, rank_in) = (m.up.dims()[0], m.down.dims());
    if out != total
        || m.up.rank() != 2
        || rank_in.len() != 2
        || shapes.iter().any(|(_, s)| s[1] != rank_in[1])
    {
        return Err(format!(
            "its delta is {:?} x {rank_in:?} but the transformer's {} are {:?} (a LoRA made for \
             another model?)",
            m.up.dims(),
            parts.join(" + "),
            shapes.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>()
        ));
    }
    let mut offset = 0;
    let mut deltas = Vec::with_capacity(shapes.len());
    for (name, shape) in shapes {
        let up =
            m.up.narrow(0, offset, shape[0])
                .map_err(|e| e.to_string())?;
        offset += shape[0];
        deltas.push((
            name,
            Delta {
                up,
                down: m.down.clone(),
                scale,
            },
        ));
    }
    Ok(deltas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(layers_per_block: Option<usize>, names: &[(&str, &[usize])]) -> ComponentIndex {
        ComponentIndex::new(
            names.iter().map(|(n, s)| (n.to_string(), s.to_vec())),
            layers_per_block,
        )
    }

    fn module(target: Target, path: &str, flat: bool) -> Module {
        Module {
            target,
            path: path.into(),
            flat,
        }
    }

    #[test]
    fn kohya_and_peft_names_find_the_same_weight() {
        let unet = index(
            Some(1),
            &[(
                "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.weight",
                &[4, 4],
            )],
        );
        let dotted = module(
            Target::Unet,
            "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0",
            false,
        );
        let flat = module(
            Target::Unet,
            "down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0",
            true,
        );
        let sgm = module(
            Target::Unet,
            "input_blocks_3_1_transformer_blocks_0_attn1_to_out_0",
            true,
        );
        let want = Some("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.weight");
        assert_eq!(unet.weight_of(&dotted), want);
        assert_eq!(unet.weight_of(&flat), want);
        assert_eq!(unet.weight_of(&sgm), want);
    }

    #[test]
    fn text_encoders_match_with_or_without_text_model_prefix() {
        let bare = index(None, &[("encoder.layers.0.mlp.fc1.weight", &[8, 4])]);
        let prefixed = index(
            None,
            &[("text_model.encoder.layers.0.mlp.fc1.weight", &[8, 4])],
        );
        for (ix, want) in [
            (&bare, "encoder.layers.0.mlp.fc1.weight"),
            (&prefixed, "text_model.encoder.layers.0.mlp.fc1.weight"),
        ] {
            let kohya = module(
                Target::TextEncoder,
                "text_model_encoder_layers_0_mlp_fc1",
                true,
            );
            let peft = module(
                Target::TextEncoder,
                "text_model.encoder.layers.0.mlp.fc1",
                false,
            );
            assert_eq!(ix.weight_of(&kohya), Some(want));
            assert_eq!(ix.weight_of(&peft), Some(want));
        }
        let missing = module(
            Target::TextEncoder,
            "text_model_encoder_layers_5_mlp_fc1",
            true,
        );
        assert_eq!(bare.weight_of(&missing), None);
    }

    #[test]
    fn a_fused_bfl_layer_splits_its_up_rows_over_the_projections() {
        use candle_core::{DType, Device, Tensor};
        let names: Vec<(String, Vec<usize>)> = ["to_q", "to_k", "to_v"]
            .iter()
            .map(|p| (format!("transformer_blocks.0.attn.{p}.weight"), vec![2, 3]))
            .collect();
        let indexes = HashMap::from([(Target::Transformer, ComponentIndex::new(names, None))]);
        let module = module(Target::Unet, "double_blocks_0_img_attn_qkv", true);
        let up = Tensor::arange(0f32, 12., &Device::Cpu)
            .unwrap()
            .reshape((6, 2))
            .unwrap();
        let m = LoraModule {
            key: "k".into(),
            down: Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap(),
            up,
            alpha: Some(1.0),
        };
        let (target, deltas) = match_module(Path::new("f"), &indexes, &module, m, 2.0).unwrap();
        assert_eq!(target, Target::Transformer);
        assert_eq!(deltas.len(), 3);
        assert_eq!(deltas[2].0, "transformer_blocks.0.attn.to_v.weight");
        assert_eq!(
            deltas[2].1.up.to_vec2::<f32>().unwrap(),
            [[8., 9.], [10., 11.]]
        );
        assert_eq!(deltas[0].1.scale, 1.0, "weight 2 x alpha 1 / rank 2");
    }
}
