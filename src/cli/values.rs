//! Value parsers for numeric flags: a negative or out-of-range number reaches these (the command
//! allows negative numbers as values) and gets a message saying what the flag takes, exit 2.

use crate::jobs::resolve::{MAX_SIDE, MIN_SIDE};

fn whole(s: &str) -> Option<i128> {
    s.trim().parse::<i128>().ok()
}

/// `--width` / `--height`: a multiple of 8 between 64 and 4096.
pub fn side(s: &str) -> Result<u32, String> {
    match whole(s) {
        Some(v) if v % 8 == 0 && (i128::from(MIN_SIDE)..=i128::from(MAX_SIDE)).contains(&v) => {
            Ok(v as u32)
        }
        _ => Err(format!(
            "must be a multiple of 8 between {MIN_SIDE} and {MAX_SIDE} pixels"
        )),
    }
}

/// Counts (steps, batch, tokens): a whole number of at least 1; the job checks the upper bound.
pub fn count(s: &str) -> Result<u32, String> {
    match whole(s) {
        Some(v) if (1..=i128::from(u32::MAX)).contains(&v) => Ok(v as u32),
        _ => Err("must be a whole number of at least 1".to_owned()),
    }
}

/// `--seed`: a whole number from 0 to 2^64-1.
pub fn seed(s: &str) -> Result<u64, String> {
    match whole(s) {
        Some(v) if (0..=i128::from(u64::MAX)).contains(&v) => Ok(v as u64),
        _ => Err("must be a whole number from 0 to 18446744073709551615".to_owned()),
    }
}

fn finite(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `--guidance`: a number of at least 0; the job checks the model's upper bound.
pub fn non_negative(s: &str) -> Result<f64, String> {
    match finite(s) {
        Some(v) if v >= 0.0 => Ok(v),
        _ => Err("must be a number of at least 0".to_owned()),
    }
}

/// `--strength`: how much of the init image to repaint, 0 to 1.
pub fn fraction(s: &str) -> Result<f64, String> {
    match finite(s) {
        Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("must be a number between 0 and 1".to_owned()),
    }
}

/// `--duration`: seconds, more than 0.
pub fn seconds(s: &str) -> Result<f64, String> {
    match finite(s) {
        Some(v) if v > 0.0 => Ok(v),
        _ => Err("must be a number of seconds more than 0".to_owned()),
    }
}

/// `--log-level`: a level or an EnvFilter directive list that parses.
pub fn log_level(s: &str) -> Result<String, String> {
    crate::logging::check_filter(s).map(|()| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_multiples_of_8_in_range() {
        assert_eq!(side("512"), Ok(512));
        for bad in ["-1", "0", "60", "513", "8192", "x", ""] {
            let err = side(bad).unwrap_err();
            assert!(
                err.contains("multiple of 8 between 64 and 4096"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn counts_seeds_and_fractions() {
        assert_eq!(count("4"), Ok(4));
        assert!(count("0").is_err() && count("-3").is_err());
        assert_eq!(seed("0"), Ok(0));
        assert!(seed("-1").unwrap_err().contains("from 0"));
        assert_eq!(fraction("0.6"), Ok(0.6));
        assert!(fraction("-0.1").is_err() && fraction("1.5").is_err());
        assert!(non_negative("-2").is_err() && non_negative("NaN").is_err());
        assert!(seconds("0").is_err());
    }
}
