//! Checks of the config values an engine divides or indexes by. Model configs are files a user
//! can edit or download broken: a zero group or head count would divide by zero, a token id past
//! the vocabulary would index out of bounds. Each check's reason names the key; the config
//! loader adds the file, so the message says where to look.

use std::path::Path;

use crate::error::{Error, Result};

/// A reason naming the key, or nothing.
pub type Check = std::result::Result<(), String>;

/// A value the engine does not implement.
pub fn unsupported(key: &str, value: impl std::fmt::Debug) -> String {
    format!("`{key}` = {value:?} is not supported by this engine")
}

/// A diffusers / transformers `config.json`'s text; a missing or unreadable file is bad input
/// naming it.
pub fn read_config(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input(format!(
            "cannot read {}: {e}; a diffusers model folder needs this config.json beside its weights",
            path.display()
        ))
    })
}

/// A config file that fails a check: bad input naming the file and the reason (which names the
/// key).
pub fn bad_config(path: &Path, why: &str) -> Error {
    Error::bad_input(format!(
        "{} is not a usable diffusers config: {why}",
        path.display()
    ))
}

/// Every value is at least 1.
pub fn positive(values: &[(&str, usize)]) -> Check {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(format!("`{key}` = 0: it must be at least 1")),
        None => Ok(()),
    }
}

/// Every entry of a per-block list is at least 1 (and there is one).
pub fn all_positive(key: &str, values: &[usize]) -> Check {
    if values.is_empty() {
        return Err(format!("`{key}` is empty: it needs one entry per block"));
    }
    match values.iter().position(|&v| v == 0) {
        Some(i) => Err(format!("`{key}`[{i}] = 0: it must be at least 1")),
        None => Ok(()),
    }
}

/// `value` splits evenly into `by` (which must be at least 1).
pub fn multiple_of(key: &str, value: usize, by_key: &str, by: usize) -> Check {
    positive(&[(by_key, by)])?;
    if value.is_multiple_of(by) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` = {value} is not a multiple of `{by_key}` = {by}"
        ))
    }
}

/// A token id that indexes a table of `size` rows.
pub fn index_in(key: &str, id: usize, size_key: &str, size: usize) -> Check {
    if id < size {
        Ok(())
    } else {
        Err(format!(
            "`{key}` = {id} is outside `{size_key}` = {size}: ids must be below it"
        ))
    }
}

/// A finite number above zero (epsilons, rates, scales that are divided by).
pub fn positive_float(key: &str, value: f64) -> Check {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("`{key}` = {value}: it must be a number above 0"))
    }
}

/// A convolution kernel: odd, so its padding `(k - 1) / 2` keeps the size.
pub fn odd_kernel(key: &str, value: usize) -> Check {
    if value % 2 == 1 {
        Ok(())
    } else {
        Err(format!("`{key}` = {value}: a kernel size must be odd"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_key_and_value() {
        assert!(positive(&[("a", 1), ("b", 2)]).is_ok());
        assert_eq!(
            positive(&[("a", 1), ("norm_num_groups", 0)]).unwrap_err(),
            "`norm_num_groups` = 0: it must be at least 1"
        );
        assert!(
            all_positive("block_out_channels", &[32, 0])
                .unwrap_err()
                .contains("`block_out_channels`[1] = 0")
        );
        assert!(all_positive("x", &[]).is_err());
        assert!(multiple_of("hidden_size", 64, "heads", 4).is_ok());
        assert!(
            multiple_of("hidden_size", 64, "heads", 0)
                .unwrap_err()
                .contains("`heads` = 0")
        );
        assert!(
            multiple_of("hidden_size", 65, "heads", 4)
                .unwrap_err()
                .contains("not a multiple")
        );
        assert!(index_in("eos", 10, "vocab", 10).is_err());
        assert!(index_in("eos", 9, "vocab", 10).is_ok());
        assert!(positive_float("eps", 0.0).is_err());
        assert!(positive_float("eps", f64::NAN).is_err());
        assert!(odd_kernel("k", 2).is_err() && odd_kernel("k", 3).is_ok());
    }
}
