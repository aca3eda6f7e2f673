//! The tensor types a GGUF file may store (ggml's `ggml_type` ids), their block layout, and which
//! of them pallaidium dequantizes.

use candle_core::quantized::GgmlDType;

/// One ggml tensor type: its id in the file, its name as gguf-py spells it, and its block layout
/// (`block` values stored in `bytes` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    pub id: u32,
    pub name: &'static str,
    pub block: usize,
    pub bytes: usize,
    supported: bool,
}

const fn t(id: u32, name: &'static str, block: usize, bytes: usize, supported: bool) -> GgmlType {
    GgmlType {
        id,
        name,
        block,
        bytes,
        supported,
    }
}

/// Every type id ggml knows (gguf-py 0.19's GGML_QUANT_SIZES); ids 4, 5 (the removed Q4_2/Q4_3)
/// and 31..33 (removed Q4_0_4_4 and friends) are unknown.
const KNOWN: [GgmlType; 37] = [
    t(0, "F32", 1, 4, true),
    t(1, "F16", 1, 2, true),
    t(2, "Q4_0", 32, 18, true),
    t(3, "Q4_1", 32, 20, true),
    t(6, "Q5_0", 32, 22, true),
    t(7, "Q5_1", 32, 24, true),
    t(8, "Q8_0", 32, 34, true),
    t(9, "Q8_1", 32, 40, false),
    t(10, "Q2_K", 256, 84, true),
    t(11, "Q3_K", 256, 110, true),
    t(12, "Q4_K", 256, 144, true),
    t(13, "Q5_K", 256, 176, true),
    t(14, "Q6_K", 256, 210, true),
    t(15, "Q8_K", 256, 292, false),
    t(16, "IQ2_XXS", 256, 66, false),
    t(17, "IQ2_XS", 256, 74, false),
    t(18, "IQ3_XXS", 256, 98, false),
    t(19, "IQ1_S", 256, 50, false),
    t(20, "IQ4_NL", 32, 18, false),
    t(21, "IQ3_S", 256, 110, false),
    t(22, "IQ2_S", 256, 82, false),
    t(23, "IQ4_XS", 256, 136, false),
    t(24, "I8", 1, 1, false),
    t(25, "I16", 1, 2, false),
    t(26, "I32", 1, 4, false),
    t(27, "I64", 1, 8, false),
    t(28, "F64", 1, 8, false),
    t(29, "IQ1_M", 256, 56, false),
    t(30, "BF16", 1, 2, true),
    t(34, "TQ1_0", 256, 54, false),
    t(35, "TQ2_0", 256, 66, false),
    t(39, "MXFP4", 32, 17, false),
    t(40, "NVFP4", 64, 36, false),
    t(41, "Q1_0", 128, 18, false),
    // Q4_0_4_4, Q4_0_4_8, Q4_0_8_8: removed from ggml, listed so that a file naming them is
    // refused as unsupported rather than as corrupt.
    t(31, "Q4_0_4_4", 32, 18, false),
    t(32, "Q4_0_4_8", 32, 18, false),
    t(33, "Q4_0_8_8", 32, 18, false),
];

impl GgmlType {
    /// The type of id `id`; None for an id ggml does not define.
    pub fn from_id(id: u32) -> Option<Self> {
        KNOWN.iter().copied().find(|t| t.id == id)
    }

    /// Whether pallaidium dequantizes this type.
    pub fn is_supported(self) -> bool {
        self.supported
    }

    /// The supported types' names, for messages.
    pub fn supported_names() -> String {
        let names: Vec<&str> = KNOWN
            .iter()
            .filter(|t| t.supported)
            .map(|t| t.name)
            .collect();
        names.join(", ")
    }

    /// candle's name for this type, for the quantized-matmul path (every supported type has one).
    pub fn candle(self) -> Option<GgmlDType> {
        Some(match self.id {
            0 => GgmlDType::F32,
            1 => GgmlDType::F16,
            2 => GgmlDType::Q4_0,
            3 => GgmlDType::Q4_1,
            6 => GgmlDType::Q5_0,
            7 => GgmlDType::Q5_1,
            8 => GgmlDType::Q8_0,
            10 => GgmlDType::Q2K,
            11 => GgmlDType::Q3K,
            12 => GgmlDType::Q4K,
            13 => GgmlDType::Q5K,
            14 => GgmlDType::Q6K,
            30 => GgmlDType::BF16,
            _ => return None,
        })
    }

    /// The stored size of `elements` values, None when they do not fill whole blocks or the size
    /// overflows.
    pub fn size_of(self, elements: u64) -> Option<u64> {
        let block = self.block as u64;
        if !elements.is_multiple_of(block) {
            return None;
        }
        (elements / block).checked_mul(self.bytes as u64)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_supported_types_match_candles_layout() {
        for (i, a) in KNOWN.iter().enumerate() {
            assert!(KNOWN[i + 1..].iter().all(|b| b.id != a.id), "{}", a.name);
            if a.is_supported() {
                let c = a.candle().unwrap();
                assert_eq!(
                    (c.block_size(), c.type_size()),
                    (a.block, a.bytes),
                    "{}",
                    a.name
                );
            } else {
                assert!(a.candle().is_none(), "{}", a.name);
            }
        }
        assert_eq!(GgmlType::from_id(12).unwrap().name, "Q4_K");
        assert!(GgmlType::from_id(4).is_none());
        assert_eq!(GgmlType::from_id(12).unwrap().size_of(512), Some(288));
        assert_eq!(GgmlType::from_id(12).unwrap().size_of(100), None);
        assert_eq!(
            GgmlType::supported_names(),
            "F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, BF16"
        );
    }
}
