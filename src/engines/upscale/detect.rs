//! Which Real-ESRGAN network a weight file holds, read from its tensors' names and shapes, and
//! its names brought to one layout: BasicSR's (`conv_first`, `body.N.rdb1.conv1`, `conv_up1`...)
//! for RRDBNet, `body.N` for SRVGGNetCompact. Accepted as released (`params_ema.` / `params.`
//! prefixes of a flattened .pth) and in the original ESRGAN layout (`model.1.sub.N.RDB1.conv1.0`)
//! that spandrel and many community files use.

use std::collections::{BTreeSet, HashMap};

use candle_core::Tensor;

/// The network and the sizes read from its weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arch {
    /// ESRGAN / Real-ESRGAN x4plus, x2plus.
    Rrdb(RrdbShape),
    /// SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3).
    Compact(CompactShape),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrdbShape {
    pub in_channels: usize,
    pub out_channels: usize,
    pub features: usize,
    pub grow: usize,
    pub blocks: usize,
    /// 2x nearest upsamplings, each followed by a conv (`conv_up1`, `conv_up2`, ...).
    pub upsamples: usize,
    /// The input is pixel-unshuffled by this factor first (x2plus: 2; 1 = none).
    pub unshuffle: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactShape {
    pub channels: usize,
    pub features: usize,
    /// 3x3 convs between the first and the last.
    pub convs: usize,
    pub scale: usize,
}

impl Arch {
    /// Output pixels per input pixel along a side.
    pub fn scale(&self) -> usize {
        match self {
            Self::Rrdb(s) => (1usize << s.upsamples) / s.unshuffle,
            Self::Compact(s) => s.scale,
        }
    }

    /// How the input's sides must divide (RRDBNet's pixel-unshuffle).
    pub fn side_multiple(&self) -> usize {
        match self {
            Self::Rrdb(s) => s.unshuffle,
            Self::Compact(_) => 1,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Rrdb(s) => format!(
                "RRDBNet x{} ({} blocks, {} features, growth {})",
                self.scale(),
                s.blocks,
                s.features,
                s.grow
            ),
            Self::Compact(s) => format!(
                "SRVGGNetCompact x{} ({} convs, {} features)",
                s.scale, s.convs, s.features
            ),
        }
    }
}

/// Why a weight file is not an upscaler we run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAnUpscaler(pub String);

/// What detection reads of a tensor: its shape (a loaded tensor, or a safetensors header's
/// entry, so a file is recognised without loading it).
pub trait Shaped {
    fn shape_dims(&self) -> &[usize];
}

impl Shaped for Tensor {
    fn shape_dims(&self) -> &[usize] {
        self.dims()
    }
}

impl Shaped for Vec<usize> {
    fn shape_dims(&self) -> &[usize] {
        self
    }
}

type Tensors<T = Tensor> = HashMap<String, T>;

/// The architecture of `tensors`, with their names in the layout the networks read.
pub fn detect<T: Shaped>(tensors: Tensors<T>) -> Result<(Arch, Tensors<T>), NotAnUpscaler> {
    let tensors = from_esrgan_repo(strip_prefix(tensors));
    let tensors = if tensors.contains_key("model.0.weight") {
        from_original_esrgan(tensors)?
    } else {
        tensors
    };
    if tensors.contains_key("conv_first.weight") {
        let shape = rrdb_shape(&tensors)?;
        return Ok((Arch::Rrdb(shape), tensors));
    }
    if tensors.contains_key("body.0.weight") {
        let shape = compact_shape(&tensors)?;
        return Ok((Arch::Compact(shape), tensors));
    }
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    Err(NotAnUpscaler(format!(
        "not a Real-ESRGAN network (RRDBNet or SRVGGNetCompact): no `conv_first.weight`, \
         `model.0.weight` or `body.0.weight` tensor (first names: {})",
        names
            .iter()
            .take(3)
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Drops the `params_ema.` (or `params.`, `module.`) prefix a flattened .pth gives every name;
/// where both EMA and plain weights are there, the EMA ones (what Real-ESRGAN loads).
fn strip_prefix<T>(tensors: Tensors<T>) -> Tensors<T> {
    for prefix in ["params_ema.", "params.", "module."] {
        if tensors.keys().any(|k| k.starts_with(prefix)) {
            return tensors
                .into_iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_owned(), v)))
                .collect();
        }
    }
    tensors
}

/// The ESRGAN repository's later names (`RRDB_trunk.N.RDB1`, `trunk_conv`, `upconv1`, `HRconv`)
/// to BasicSR's.
fn from_esrgan_repo<T>(tensors: Tensors<T>) -> Tensors<T> {
    if !tensors.keys().any(|k| k.starts_with("RRDB_trunk.")) {
        return tensors;
    }
    tensors
        .into_iter()
        .map(|(k, v)| {
            let k = k
                .replacen("RRDB_trunk.", "body.", 1)
                .replace(".RDB", ".rdb")
                .replacen("trunk_conv.", "conv_body.", 1)
                .replacen("upconv", "conv_up", 1)
                .replacen("HRconv.", "conv_hr.", 1);
            (k, v)
        })
        .collect()
}

/// The original ESRGAN sequential names to BasicSR's: `model.0` conv_first, `model.1.sub.N.RDBk.
/// convm.0` body.N.rdbk.convm, `model.1.sub.<last>` conv_body, then the upsampling convs and the
/// last two (conv_hr, conv_last) in index order.
fn from_original_esrgan<T>(tensors: Tensors<T>) -> Result<Tensors<T>, NotAnUpscaler> {
    let mut out = Tensors::new();
    let mut tail: BTreeSet<usize> = BTreeSet::new();
    let mut sub_plain: BTreeSet<usize> = BTreeSet::new();
    let mut rest: Vec<(String, T)> = Vec::new();
    for (name, t) in tensors {
        if let Some(r) = name.strip_prefix("model.0.") {
            out.insert(format!("conv_first.{r}"), t);
        } else if let Some(r) = name.strip_prefix("model.1.sub.") {
            let (n, r) = r.split_once('.').unwrap_or((r, ""));
            let n: usize = n.parse().map_err(|_| bad_name(&name))?;
            if let Some(r) = r.strip_prefix("RDB") {
                // "1.conv1.0.weight" -> "rdb1.conv1.weight"
                let parts: Vec<&str> = r.split('.').collect();
                let [k, conv, "0", leaf] = parts[..] else {
                    return Err(bad_name(&name));
                };
                out.insert(format!("body.{n}.rdb{k}.{conv}.{leaf}"), t);
            } else {
                sub_plain.insert(n);
                rest.push((format!("sub.{n}.{r}"), t));
            }
        } else if let Some(r) = name.strip_prefix("model.") {
            let (i, _) = r.split_once('.').unwrap_or((r, ""));
            let i: usize = i.parse().map_err(|_| bad_name(&name))?;
            tail.insert(i);
            rest.push((name.clone(), t));
        } else {
            return Err(bad_name(&name));
        }
    }
    if sub_plain.len() != 1 || tail.len() < 3 {
        return Err(NotAnUpscaler(
            "an ESRGAN-layout file (`model.N`) without its trunk conv or upsampling convs"
                .to_owned(),
        ));
    }
    let tail: Vec<usize> = tail.into_iter().collect();
    let ups = tail.len() - 2;
    let name_of = |i: usize| -> String {
        match tail.iter().position(|&t| t == i) {
            Some(p) if p < ups => format!("conv_up{}", p + 1),
            Some(p) if p == ups => "conv_hr".to_owned(),
            _ => "conv_last".to_owned(),
        }
    };
    for (name, t) in rest {
        if let Some(r) = name.strip_prefix("sub.") {
            let leaf = r.rsplit('.').next().unwrap_or(r);
            out.insert(format!("conv_body.{leaf}"), t);
        } else if let Some(r) = name.strip_prefix("model.") {
            let (i, leaf) = r.split_once('.').unwrap_or((r, ""));
            let i: usize = i.parse().map_err(|_| bad_name(&name))?;
            out.insert(format!("{}.{leaf}", name_of(i)), t);
        }
    }
    Ok(out)
}

fn bad_name(name: &str) -> NotAnUpscaler {
    NotAnUpscaler(format!(
        "tensor `{name}` does not belong to an ESRGAN network"
    ))
}

fn dims<T: Shaped>(tensors: &Tensors<T>, name: &str) -> Result<Vec<usize>, NotAnUpscaler> {
    tensors
        .get(name)
        .map(|t| t.shape_dims().to_vec())
        .ok_or_else(|| NotAnUpscaler(format!("tensor `{name}` is missing")))
}

fn conv_dims<T: Shaped>(tensors: &Tensors<T>, name: &str) -> Result<(usize, usize), NotAnUpscaler> {
    match dims(tensors, &format!("{name}.weight"))?[..] {
        [o, i, 3, 3] => Ok((o, i)),
        ref d => Err(NotAnUpscaler(format!(
            "`{name}.weight` has shape {d:?}, not a 3x3 convolution"
        ))),
    }
}

fn rrdb_shape<T: Shaped>(tensors: &Tensors<T>) -> Result<RrdbShape, NotAnUpscaler> {
    let (features, in_channels) = conv_dims(tensors, "conv_first")?;
    let (out_channels, _) = conv_dims(tensors, "conv_last")?;
    let blocks = tensors
        .keys()
        .filter(|k| k.starts_with("body.") && k.ends_with(".rdb1.conv1.weight"))
        .count();
    if blocks == 0 {
        return Err(NotAnUpscaler("an RRDBNet without RRDB blocks".to_owned()));
    }
    let (grow, _) = conv_dims(tensors, "body.0.rdb1.conv1")?;
    let upsamples = (1..)
        .take_while(|i| tensors.contains_key(&format!("conv_up{i}.weight")))
        .count();
    let unshuffle = match in_channels / out_channels.max(1) {
        1 => 1,
        4 => 2,
        16 => 4,
        _ => {
            return Err(NotAnUpscaler(format!(
                "RRDBNet with {in_channels} input and {out_channels} output channels: not a \
                 known pixel-unshuffle (x1, x2 or x4 models have 1x, 4x or 16x the channels in)"
            )));
        }
    };
    if upsamples == 0 || (1usize << upsamples) < unshuffle {
        return Err(NotAnUpscaler(
            "RRDBNet without its upsampling convs (conv_up1...)".to_owned(),
        ));
    }
    Ok(RrdbShape {
        in_channels,
        out_channels,
        features,
        grow,
        blocks,
        upsamples,
        unshuffle,
    })
}

fn compact_shape<T: Shaped>(tensors: &Tensors<T>) -> Result<CompactShape, NotAnUpscaler> {
    let (features, channels) = conv_dims(tensors, "body.0")?;
    let mut i: usize = 0;
    let mut last = None;
    loop {
        let conv = format!("body.{i}");
        if !tensors.contains_key(&format!("{conv}.weight")) {
            break;
        }
        let (o, _) = conv_dims(tensors, &conv)?;
        last = Some(o);
        let act = format!("body.{}.weight", i + 1);
        match tensors.get(&act).map(|t| t.shape_dims().to_vec()) {
            Some(d) if d == [features] => i += 2,
            Some(_) => {
                return Err(NotAnUpscaler(format!(
                    "`{act}` is not a PReLU of {features} channels"
                )));
            }
            None if i == 0 => {
                return Err(NotAnUpscaler(
                    "an SRVGGNetCompact without PReLU weights (`body.1.weight`): only the \
                     PReLU variant (Real-ESRGAN's released models) is supported"
                        .to_owned(),
                ));
            }
            None => break,
        }
    }
    let last_out = last.unwrap_or(0);
    let convs = (i / 2).saturating_sub(1);
    let ratio = last_out / channels.max(1);
    let scale = (1..=8).find(|s| s * s == ratio && ratio * channels == last_out);
    let Some(scale) = scale else {
        return Err(NotAnUpscaler(format!(
            "SRVGGNetCompact whose last conv has {last_out} channels: not {channels} x scale²"
        )));
    };
    Ok(CompactShape {
        channels,
        features,
        convs,
        scale,
    })
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
