//! The transformer built from a diffusers folder and from BFL-named GGUFs of the same weights
//! (written here): the same outputs, and every mismatch refused naming the file and the tensor.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use super::build::WeightSource;
use super::linear::{Linear, Weight};
use super::names::diffusers_source;
use super::*;

/// 2 heads x 16, axes 4 + 6 + 6; inputs 8 wide (kept F32 in quantized files, as city96 keeps
/// the small layers), everything else a multiple of 32 (quantizable).
const CONFIG: &str = r#"{"in_channels": 8, "num_layers": 1, "num_single_layers": 2,
  "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 8,
  "pooled_projection_dim": 8, "guidance_embeds": true, "axes_dims_rope": [4, 6, 6]}"#;

/// Deterministic values in about [-0.3, 0.3].
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) as f32 * 0.618_034).sin() * 0.3)
        .collect()
}

fn tensor(shape: &[usize], seed: usize) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(values(n, seed), shape, &Device::Cpu).unwrap()
}

/// One request of the model builder: BFL name, input width (none for a vector), output split.
type Request = (String, Vec<usize>, Vec<usize>);

/// Every request the model builder makes.
#[derive(Default)]
struct Recorder {
    tensors: RefCell<Vec<Request>>,
}

impl WeightSource for Recorder {
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize]) -> Result<Linear> {
        self.tensors
            .borrow_mut()
            .push((name.to_string(), vec![in_dim], outs.to_vec()));
        let out = outs.iter().sum();
        let w = Tensor::zeros((out, in_dim), DType::F32, &Device::Cpu)?;
        Ok(Linear::new(Weight::Dense(w), None, true))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Tensor> {
        self.tensors
            .borrow_mut()
            .push((name.to_string(), vec![], vec![len]));
        Ok(Tensor::zeros(len, DType::F32, &Device::Cpu)?)
    }

    fn has_linear(&self, _: &str) -> bool {
        true
    }
}

/// BFL name -> tensor (fused, final modulation in BFL's order), and the diffusers checkpoint of
/// the same weights.
fn checkpoints() -> (Vec<(String, Tensor)>, HashMap<String, Tensor>) {
    let config = FluxTransformerConfig::from_json(CONFIG).unwrap();
    let recorder = Recorder::default();
    FluxTransformer::build(config, &recorder, DType::F32, true).unwrap();
    let mut bfl = Vec::new();
    let mut diffusers = HashMap::new();
    for (seed, (name, in_dim, outs)) in recorder.tensors.into_inner().into_iter().enumerate() {
        let source = diffusers_source(&name).unwrap();
        if in_dim.is_empty() {
            let t = tensor(&outs, seed).affine(1.0, 1.0).unwrap();
            diffusers.insert(source.parts[0].clone(), t.clone());
            bfl.push((name, t));
            continue;
        }
        let parts = if source.parts.len() == outs.len() {
            outs.clone()
        } else {
            vec![outs.iter().sum()]
        };
        let (mut ws, mut bs) = (Vec::new(), Vec::new());
        for (i, (part, out)) in source.parts.iter().zip(&parts).enumerate() {
            let w = tensor(&[*out, in_dim[0]], seed * 10 + i);
            let b = tensor(&[*out], seed * 10 + i + 5);
            diffusers.insert(format!("{part}.weight"), w.clone());
            diffusers.insert(format!("{part}.bias"), b.clone());
            ws.push(w);
            bs.push(b);
        }
        let (mut w, mut b) = (Tensor::cat(&ws, 0).unwrap(), Tensor::cat(&bs, 0).unwrap());
        if source.swap_halves {
            let h = w.dim(0).unwrap() / 2;
            w = Tensor::cat(&[w.narrow(0, h, h).unwrap(), w.narrow(0, 0, h).unwrap()], 0).unwrap();
            b = Tensor::cat(&[b.narrow(0, h, h).unwrap(), b.narrow(0, 0, h).unwrap()], 0).unwrap();
        }
        bfl.push((format!("{name}.weight"), w));
        bfl.push((format!("{name}.bias"), b));
    }
    (bfl, diffusers)
}

fn model_dir(tmp: &Path, config: &str) -> PathBuf {
    let dir = tmp.join("transformer");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    let (_, diffusers) = checkpoints();
    candle_core::safetensors::save(&diffusers, dir.join("diffusion_pytorch_model.safetensors"))
        .unwrap();
    dir
}

/// A GGUF of `tensors`, 2-D ones 32 wide or more stored as `quantized`.
fn write_gguf(path: &Path, arch: &str, tensors: &[(String, Tensor)], quantized: GgmlDType) {
    let qs: Vec<(String, QTensor)> = tensors
        .iter()
        .map(|(n, t)| {
            let ty = if t.rank() == 2 && t.dim(1).unwrap() % 32 == 0 {
                quantized
            } else {
                GgmlDType::F32
            };
            (n.clone(), QTensor::quantize(t, ty).unwrap())
        })
        .collect();
    let refs: Vec<(&str, &QTensor)> = qs.iter().map(|(n, q)| (n.as_str(), q)).collect();
    let arch = Value::String(arch.to_string());
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &[("general.architecture", &arch)], &refs).unwrap();
}

fn inputs() -> [Tensor; 7] {
    let ids = |rows: Vec<[f32; 3]>| {
        let n = rows.len();
        Tensor::from_vec(rows.concat(), (n, 3), &Device::Cpu).unwrap()
    };
    let img: Vec<[f32; 3]> = (0..6)
        .map(|i| [0.0, (i / 3) as f32, (i % 3) as f32])
        .collect();
    [
        tensor(&[1, 6, 8], 901),
        tensor(&[1, 5, 8], 902),
        tensor(&[1, 8], 903),
        Tensor::new(&[0.75f32], &Device::Cpu).unwrap(),
        Tensor::new(&[3.5f32], &Device::Cpu).unwrap(),
        ids(img),
        ids(vec![[0.0; 3]; 5]),
    ]
}

fn run(model: &FluxTransformer) -> Tensor {
    let [x, ctx, pooled, t, g, img_ids, txt_ids] = inputs();
    model
        .forward(&x, &ctx, &pooled, &t, Some(&g), &img_ids, &txt_ids)
        .unwrap()
}

/// GGUF matrices dequantized per call with diffusers' arithmetic (what these tests compare).
fn load(dir: &Path, gguf: Option<&Path>) -> Result<FluxTransformer> {
    let switches = EngineSwitches {
        gguf_matmul: Some(GgufMatmul::Dequant),
        ..Default::default()
    };
    FluxTransformer::load(dir, gguf, &Device::Cpu, DType::F32, switches, None)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    crate::engines::nn::compare::max_abs_diff(a, b).unwrap().0
}

#[test]
fn diffusers_weights_and_a_bfl_gguf_of_them_give_the_same_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), CONFIG);
    let dense = run(&load(&dir, None).unwrap());
    assert_eq!(dense.dims(), &[1, 6, 8]);
    assert!(
        dense
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 1e-3
    );
    let (bfl, _) = checkpoints();
    let gguf = tmp.path().join("f32.gguf");
    write_gguf(&gguf, "flux", &bfl, GgmlDType::F32);
    assert_eq!(
        max_diff(&run(&load(&dir, Some(&gguf)).unwrap()), &dense),
        0.0
    );
    // ComfyUI's prefix.
    let prefixed: Vec<(String, Tensor)> = bfl
        .iter()
        .map(|(n, t)| (format!("model.diffusion_model.{n}"), t.clone()))
        .collect();
    let gguf = tmp.path().join("prefixed.gguf");
    write_gguf(&gguf, "flux", &prefixed, GgmlDType::F32);
    assert_eq!(
        max_diff(&run(&load(&dir, Some(&gguf)).unwrap()), &dense),
        0.0
    );
    assert!(weight_bytes(&dir, None).unwrap() > weight_bytes(&dir, Some(&gguf)).unwrap() / 2);
}

#[test]
fn a_quantized_gguf_multiplies_by_diffusers_dequantized_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), CONFIG);
    let (bfl, _) = checkpoints();
    let q8 = tmp.path().join("q8.gguf");
    write_gguf(&q8, "flux", &bfl, GgmlDType::Q8_0);
    // The same weights as diffusers dequantizes Q8_0 (ggml's values rounded to f16), in F32.
    let rounded: Vec<(String, Tensor)> = bfl
        .iter()
        .map(|(n, t)| {
            if t.rank() == 2 && t.dim(1).unwrap() % 32 == 0 {
                let q = QTensor::quantize(t, GgmlDType::Q8_0).unwrap();
                let v = q.dequantize_f16(&Device::Cpu).unwrap();
                (n.clone(), v.to_dtype(DType::F32).unwrap())
            } else {
                (n.clone(), t.clone())
            }
        })
        .collect();
    let f32_file = tmp.path().join("rounded.gguf");
    write_gguf(&f32_file, "flux", &rounded, GgmlDType::F32);
    let quantized = load(&dir, Some(&q8)).unwrap();
    assert!(quantized.weight_bytes_loaded() < load(&dir, None).unwrap().weight_bytes_loaded());
    let want = run(&load(&dir, Some(&f32_file)).unwrap());
    assert_eq!(max_diff(&run(&quantized), &want), 0.0);
}

fn bad_input(e: Error) -> String {
    match e {
        Error::BadInput { message } => message,
        other => panic!("expected BadInput, got {other:?}"),
    }
}

#[test]
fn ggufs_that_disagree_with_the_config_are_refused_naming_file_and_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), CONFIG);
    let (bfl, _) = checkpoints();
    let write = |name: &str, arch: &str, tensors: &[(String, Tensor)]| {
        let path = tmp.path().join(name);
        write_gguf(&path, arch, tensors, GgmlDType::F32);
        let e = bad_input(load(&dir, Some(&path)).err().unwrap());
        assert!(e.contains(&path.display().to_string()), "{e}");
        e
    };
    let e = write("llama.gguf", "llama", &bfl);
    assert!(e.contains("`llama`"), "{e}");
    let wide: Vec<(String, Tensor)> = bfl
        .iter()
        .map(|(n, t)| match n.as_str() {
            "img_in.weight" => (n.clone(), tensor(&[32, 16], 1)),
            _ => (n.clone(), t.clone()),
        })
        .collect();
    let e = write("wide.gguf", "flux", &wide);
    assert!(
        e.contains("`img_in` (diffusers' x_embedder) is 16 wide in the GGUF, the model's transformer config says 8"),
        "{e}"
    );
    let missing: Vec<(String, Tensor)> = bfl
        .iter()
        .filter(|(n, _)| n != "single_blocks.1.norm.key_norm.scale")
        .cloned()
        .collect();
    let e = write("missing.gguf", "flux", &missing);
    assert!(
        e.contains("`single_blocks.1.norm.key_norm.scale` of"),
        "{e}"
    );
    assert!(e.contains("attn.norm_k.weight"), "{e}");
    let mut extra = bfl.clone();
    extra.push(("single_blocks.2.linear1.weight".into(), tensor(&[1, 32], 3)));
    let e = write("extra.gguf", "flux", &extra);
    assert!(
        e.contains("3 single_blocks") && e.contains("num_single_layers = 2"),
        "{e}"
    );
    let diffusers_named = vec![("x_embedder.weight".to_string(), tensor(&[32, 8], 1))];
    let e = write("diffusers.gguf", "flux", &diffusers_named);
    assert!(e.contains("diffusers' tensor names"), "{e}");
    // A dev GGUF (guidance_in) with a schnell config.
    let schnell = CONFIG.replace(r#""guidance_embeds": true"#, r#""guidance_embeds": false"#);
    std::fs::write(dir.join("config.json"), schnell).unwrap();
    let path = tmp.path().join("dev.gguf");
    write_gguf(&path, "flux", &bfl, GgmlDType::F32);
    let e = bad_input(load(&dir, Some(&path)).err().unwrap());
    assert!(e.contains("guidance_embeds = false"), "{e}");
}

#[test]
fn a_diffusers_folder_that_disagrees_with_its_config_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), CONFIG);
    std::fs::write(
        dir.join("config.json"),
        CONFIG.replace("\"in_channels\": 8", "\"in_channels\": 4"),
    )
    .unwrap();
    let e = bad_input(load(&dir, None).err().unwrap());
    assert!(
        e.contains("x_embedder.weight") && e.contains("diffusion_pytorch_model"),
        "{e}"
    );
}

#[test]
fn a_guidance_model_needs_a_guidance_value() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), CONFIG);
    let model = load(&dir, None).unwrap();
    let [x, ctx, pooled, t, _, img_ids, txt_ids] = inputs();
    let e = model
        .forward(&x, &ctx, &pooled, &t, None, &img_ids, &txt_ids)
        .unwrap_err();
    assert!(bad_input(e).contains("guidance"));
    // Batched ids take the first entry, as diffusers does.
    let out = model
        .forward(
            &x,
            &ctx,
            &pooled,
            &t,
            Some(&inputs()[4]),
            &img_ids.unsqueeze(0).unwrap(),
            &txt_ids.unsqueeze(0).unwrap(),
        )
        .unwrap();
    assert_eq!(max_diff(&out, &run(&model)), 0.0);
}

#[test]
fn inputs_that_disagree_are_refused_and_a_cancel_stops_the_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), CONFIG);
    let model = load(&dir, None).unwrap();
    let [x, ctx, pooled, t, g, img_ids, txt_ids] = inputs();
    let base = Inputs {
        hidden_states: &x,
        encoder_hidden_states: &ctx,
        pooled: &pooled,
        timestep: &t,
        guidance: Some(&g),
        img_ids: &img_ids,
        txt_ids: &txt_ids,
    };
    let token = CancelToken::new();
    let refused = |inputs: Inputs| bad_input(model.forward_watched(&inputs, &token).unwrap_err());
    let wide = tensor(&[1, 6, 9], 1);
    assert!(
        refused(Inputs {
            hidden_states: &wide,
            ..base
        })
        .contains("in_channels 8")
    );
    let two = Tensor::new(&[0.5f32, 0.5], &Device::Cpu).unwrap();
    assert!(
        refused(Inputs {
            timestep: &two,
            ..base
        })
        .contains("batch of 1")
    );
    let short = img_ids.narrow(0, 0, 5).unwrap();
    assert!(
        refused(Inputs {
            img_ids: &short,
            ..base
        })
        .contains("6 image")
    );
    token.cancel();
    let e = model.forward_watched(&base, &token).unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e:?}");
}
