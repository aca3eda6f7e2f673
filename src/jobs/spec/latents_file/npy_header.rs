//! The header of a NumPy `.npy` file (magic, version, then a Python dict literal with `descr`,
//! `fortran_order` and `shape`), read alone so a shape can be checked before its data is
//! allocated: candle's reader allocates whatever the header claims.

use std::io::Read;
use std::path::Path;

/// NumPy's own limit on a header's length; anything longer is not an .npy file.
const MAX_HEADER_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// e.g. `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
}

/// Reads and parses the header; the error says what is wrong with it.
pub fn read(path: &Path) -> Result<NpyHeader, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read it ({e})"))?;
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic)
        .map_err(|_| "too short for an .npy header".to_string())?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not an .npy file (no \\x93NUMPY magic)".into());
    }
    let len = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            file.read_exact(&mut b)
                .map_err(|_| "truncated .npy header".to_string())?;
            usize::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            file.read_exact(&mut b)
                .map_err(|_| "truncated .npy header".to_string())?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(format!("unknown .npy format version {v}")),
    };
    if len > MAX_HEADER_BYTES {
        return Err(format!("declares a {len}-byte header"));
    }
    let mut text = vec![0u8; len];
    file.read_exact(&mut text)
        .map_err(|_| "truncated .npy header".to_string())?;
    parse(&String::from_utf8_lossy(&text))
}

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, 8, 8), }`.
pub fn parse(text: &str) -> Result<NpyHeader, String> {
    let value_after = |key: &str| -> Result<&str, String> {
        let at = text
            .find(&format!("'{key}'"))
            .ok_or_else(|| format!("the header has no '{key}'"))?;
        let rest = &text[at + key.len() + 2..];
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("malformed '{key}' in the header"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = value_after("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("malformed 'descr' in the header")?
        .to_string();
    let fortran_order = value_after("fortran_order")?.starts_with("True");
    let shape_text = value_after("shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("malformed 'shape' in the header")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<u64>()
                .map_err(|_| format!("'shape' has a non-integer dimension `{d}`"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numpy_headers_parse() {
        let h = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, 8, 8), }").unwrap();
        assert_eq!(h.descr, "<f4");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, vec![1, 4, 8, 8]);
        let one = parse("{'descr': '<f8', 'fortran_order': True, 'shape': (5,), }").unwrap();
        assert_eq!((one.shape, one.fortran_order), (vec![5], true));
        let huge = parse(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 4, 100000, 100000), }",
        )
        .unwrap();
        assert_eq!(huge.shape[3], 100_000);
        assert!(parse("{'descr': '<f4', 'shape': (1, x), 'fortran_order': False}").is_err());
        assert!(parse("{'descr': '<f4'}").is_err());
    }

    #[test]
    fn a_file_candle_wrote_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        candle_core::Tensor::zeros((2, 3), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap()
            .write_npy(&path)
            .unwrap();
        let h = read(&path).unwrap();
        assert_eq!((h.descr.as_str(), h.shape), ("<f4", vec![2, 3]));
        std::fs::write(&path, b"not numpy").unwrap();
        assert!(read(&path).unwrap_err().contains("magic"));
    }
}
