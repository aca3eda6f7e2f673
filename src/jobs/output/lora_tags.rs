//! A1111 keeps a job's LoRAs in the prompt as `<lora:NAME:WEIGHT>` tags: written after our
//! prompt in the PNG's `parameters`, and taken back out when a PNG is read.

use crate::jobs::spec::lora::LoraRef;

/// ` <lora:NAME:WEIGHT>` for each LoRA, in order.
pub fn tags(loras: &[LoraRef]) -> String {
    loras
        .iter()
        .map(|l| format!(" <lora:{}:{}>", l.name(), l.weight))
        .collect()
}

/// The prompt without its A1111 `<lora:NAME:WEIGHT>` tags, and the tags as `--lora NAME@WEIGHT`
/// values (a name is a file only where A1111 kept it; a flag laid over replaces them).
pub fn take(prompt: &str) -> (String, Vec<String>) {
    let mut rest = prompt;
    let mut kept = String::new();
    let mut loras = vec![];
    while let Some(at) = rest.find("<lora:") {
        let Some(end) = rest[at..].find('>') else {
            break;
        };
        let tag = &rest[at + "<lora:".len()..at + end];
        let (name, weight) = match tag.rsplit_once(':') {
            Some((n, w)) if w.trim().parse::<f64>().is_ok() => (n, w.trim()),
            _ => (tag, "1"),
        };
        loras.push(format!("{name}@{weight}"));
        kept.push_str(rest[..at].trim_end_matches(' '));
        rest = &rest[at + end + 1..];
    }
    kept.push_str(rest);
    (kept, loras)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_out_of_the_prompt_with_their_weights() {
        let (prompt, loras) = take("<lora:a:0.5>cat <lora:b> on a mat");
        assert_eq!(prompt, "cat on a mat");
        assert_eq!(loras, ["a@0.5", "b@1"]);
    }
}
