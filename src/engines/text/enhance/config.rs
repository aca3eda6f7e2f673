//! The model shape a GGUF header declares (`{arch}.attention.head_count`, ...), checked before
//! candle builds the model from it: candle divides the width by the head count and the heads by
//! the key/value heads, so a zero or a mismatch would panic there instead of naming the key.

use std::path::Path;

use candle_core::quantized::gguf_file;

use crate::engines::config_check as check;
use crate::error::{Error, Result};

fn read_u32(content: &gguf_file::Content, key: &str) -> std::result::Result<Option<usize>, String> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(v) => v
            .to_u32()
            .map(|n| Some(n as usize))
            .map_err(|_| format!("`{key}` is not an unsigned integer")),
    }
}

fn shape_checks(content: &gguf_file::Content, arch: &str) -> check::Check {
    let key = |k: &str| format!("{arch}.{k}");
    let need = |k: &str| -> std::result::Result<usize, String> {
        read_u32(content, &key(k))?.ok_or_else(|| format!("`{}` is missing", key(k)))
    };
    let heads = need("attention.head_count")?;
    let kv_heads = need("attention.head_count_kv")?;
    let width = need("embedding_length")?;
    let blocks = need("block_count")?;
    check::positive(&[
        (&key("attention.head_count"), heads),
        (&key("embedding_length"), width),
        (&key("block_count"), blocks),
    ])?;
    check::multiple_of(
        &key("embedding_length"),
        width,
        &key("attention.head_count"),
        heads,
    )?;
    check::multiple_of(
        &key("attention.head_count"),
        heads,
        &key("attention.head_count_kv"),
        kv_heads,
    )?;
    // Rotary embeddings pair up dimensions.
    let rope = read_u32(content, &key("rope.dimension_count"))?.unwrap_or(width / heads);
    if rope == 0 || !rope.is_multiple_of(2) {
        return Err(format!(
            "`{}` = {rope}: rotary embeddings need an even, non-zero size",
            key("rope.dimension_count")
        ));
    }
    if let Some(context) = read_u32(content, &key("context_length"))? {
        check::positive(&[(&key("context_length"), context)])?;
    }
    Ok(())
}

/// Refuses a header whose model shape candle could not build, naming the file and the key.
pub fn check_header(content: &gguf_file::Content, arch: &str, file: &Path) -> Result<()> {
    shape_checks(content, arch).map_err(|why| {
        Error::bad_input(format!(
            "{}: the GGUF header's model shape is unusable: {why}; the file is damaged or not \
             an instruct model this enhancer runs",
            file.display()
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gguf_file::Value;

    fn content(pairs: &[(&str, u32)]) -> gguf_file::Content {
        gguf_file::Content {
            magic: gguf_file::VersionedMagic::GgufV3,
            metadata: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::U32(*v)))
                .collect(),
            tensor_infos: Default::default(),
            tensor_data_offset: 0,
        }
    }

    const GOOD: [(&str, u32); 5] = [
        ("qwen2.attention.head_count", 14),
        ("qwen2.attention.head_count_kv", 2),
        ("qwen2.embedding_length", 896),
        ("qwen2.block_count", 24),
        ("qwen2.context_length", 32768),
    ];

    #[test]
    fn header_shapes_are_checked_naming_the_key() {
        let file = Path::new("m.gguf");
        check_header(&content(&GOOD), "qwen2", file).unwrap();
        for (key, value, names) in [
            (
                "qwen2.attention.head_count",
                0,
                "`qwen2.attention.head_count` = 0",
            ),
            (
                "qwen2.attention.head_count_kv",
                0,
                "`qwen2.attention.head_count_kv` = 0",
            ),
            ("qwen2.attention.head_count_kv", 3, "not a multiple"),
            (
                "qwen2.embedding_length",
                900,
                "`qwen2.embedding_length` = 900",
            ),
            ("qwen2.block_count", 0, "`qwen2.block_count` = 0"),
        ] {
            let mut pairs = GOOD.to_vec();
            for p in &mut pairs {
                if p.0 == key {
                    p.1 = value;
                }
            }
            let err = check_header(&content(&pairs), "qwen2", file)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(names) && err.contains("m.gguf"),
                "{key}: {err}"
            );
        }
        let missing = check_header(&content(&GOOD[1..]), "qwen2", file).unwrap_err();
        assert!(missing.to_string().contains("head_count` is missing"));
    }
}
