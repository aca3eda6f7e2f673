//! What a job's LoRAs hold in memory, from their files' headers only (the planner runs before
//! anything loads, and again before the engine does): their factors in f32, and the largest
//! change one module makes (the f32 temporary of merging it), from the factors' shapes.

use std::collections::HashMap;

use super::LoraSpec;
use super::keys::{KeyKind, Ly, Module, Part, parse_key};
use crate::error::Result;

/// The elements of the full change a module's factor shapes make (LoRA, LoHa, LoKr; 0 when the
/// shapes do not make one, which reading the file refuses later).
fn change_elements(parts: &HashMap<Part, Vec<u64>>) -> u64 {
    let get = |p: Part| parts.get(&p);
    let ly = |l: Ly| get(Part::Lycoris(l));
    let tail = |s: &[u64], from: usize| s.iter().skip(from).product::<u64>();
    // A product a @ b (a (out, r), b (r, in...)) or, with a Tucker core t, (out from a's second
    // dimension, in from b's, t's kernel).
    let product = |a: Option<&Vec<u64>>, b: Option<&Vec<u64>>, t: Option<&Vec<u64>>| match (a, b, t)
    {
        (Some(a), Some(b), None) if !a.is_empty() => a[0] * tail(b, 1),
        (Some(a), Some(b), Some(t)) if a.len() > 1 && b.len() > 1 => a[1] * b[1] * tail(t, 2),
        _ => 0,
    };
    if let (Some(up), Some(down)) = (get(Part::Up), get(Part::Down)) {
        return up.first().copied().unwrap_or(0) * tail(down, 1);
    }
    if ly(Ly::HadaW1A).is_some() {
        return product(ly(Ly::HadaW1A), ly(Ly::HadaW1B), ly(Ly::HadaT1));
    }
    let w1 = ly(Ly::LokrW1).map_or_else(
        || product(ly(Ly::LokrW1A), ly(Ly::LokrW1B), None),
        |w| w.iter().product(),
    );
    let w2 = ly(Ly::LokrW2).map_or_else(
        || product(ly(Ly::LokrW2A), ly(Ly::LokrW2B), ly(Ly::LokrT2)),
        |w| w.iter().product(),
    );
    w1 * w2
}

/// (the factors of `loras` in f32, the largest change one module makes in f32), in bytes.
pub fn footprint(loras: &[LoraSpec]) -> Result<(u64, u64)> {
    let (mut factors, mut largest) = (0u64, 0u64);
    for lora in loras {
        super::file::check_path(&lora.path)?;
        let header = crate::models::safetensors_header::read_header(&lora.path)?;
        let mut modules: HashMap<Module, HashMap<Part, Vec<u64>>> = HashMap::new();
        for (name, info) in &header.tensors {
            if let KeyKind::Lora(module, part) = parse_key(name) {
                if part != Part::Alpha {
                    factors += info.elements() * 4;
                }
                modules
                    .entry(module)
                    .or_default()
                    .insert(part, info.shape.clone());
            }
        }
        for parts in modules.values() {
            largest = largest.max(change_elements(parts) * 4);
        }
    }
    Ok((factors, largest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(list: &[(Part, &[u64])]) -> HashMap<Part, Vec<u64>> {
        list.iter().map(|(p, s)| (*p, s.to_vec())).collect()
    }

    /// The headers' arithmetic is the read factors' (`Factors::bytes`, `Factors::numel`).
    #[test]
    fn headers_agree_with_the_factors_read() {
        for name in [
            "sd1-kohya",
            "sd1-peft",
            "sd1-loha",
            "sd1-lokr",
            "flux-kohya",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/loras/{name}.safetensors"));
            let modules = super::super::file::read(&path).unwrap();
            let factors: u64 = modules.iter().map(|(_, m)| m.factors.bytes()).sum();
            let largest = modules
                .iter()
                .map(|(_, m)| m.factors.numel() as u64 * 4)
                .max()
                .unwrap();
            let got = footprint(&[LoraSpec { path, weight: 1.0 }]).unwrap();
            assert_eq!(got, (factors, largest), "{name}");
        }
    }

    #[test]
    fn each_kind_of_module_makes_its_weight_s_change() {
        let lora = parts(&[(Part::Up, &[8, 4, 1, 1]), (Part::Down, &[4, 16, 3, 3])]);
        assert_eq!(change_elements(&lora), 8 * 16 * 9);
        let l = |ly| Part::Lycoris(ly);
        let loha = parts(&[(l(Ly::HadaW1A), &[8, 4]), (l(Ly::HadaW1B), &[4, 144])]);
        assert_eq!(change_elements(&loha), 8 * 144);
        let tucker = parts(&[
            (l(Ly::HadaW1A), &[4, 8]),
            (l(Ly::HadaW1B), &[4, 16]),
            (l(Ly::HadaT1), &[4, 4, 3, 3]),
        ]);
        assert_eq!(change_elements(&tucker), 8 * 16 * 9);
        let lokr = parts(&[
            (l(Ly::LokrW1), &[2, 4]),
            (l(Ly::LokrW2A), &[4, 2]),
            (l(Ly::LokrW2B), &[2, 36]),
        ]);
        assert_eq!(change_elements(&lokr), 8 * 4 * 36);
        let whole = parts(&[(l(Ly::LokrW1), &[2, 4]), (l(Ly::LokrW2), &[4, 4, 3, 3])]);
        assert_eq!(change_elements(&whole), 8 * 16 * 9);
    }
}
