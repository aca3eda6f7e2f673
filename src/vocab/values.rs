//! Value parsers for the numeric job flags (and the same keys' checks nowhere else): a negative number reaches these (the command allows negative
//! numbers as values) and gets a message saying what the flag takes, exit 2. Ranges past that
//! are the job's to check (`--steps 0: must be between 1 and 1000`), the same for flags, job files
//! and the TUI's form.

use crate::jobs::spec::resolve::{MAX_SIDE, MIN_SIDE};

fn whole(s: &str) -> Option<i128> {
    s.trim().parse::<i128>().ok()
}

fn non_negative_whole(s: &str) -> Option<u32> {
    whole(s).and_then(|v| u32::try_from(v).ok())
}

/// `--width` / `--height`: a multiple of 8 between 64 and 4096 (the job says which to try).
pub fn side(s: &str) -> Result<u32, String> {
    match non_negative_whole(s) {
        Some(v) => Ok(v),
        _ => Err(format!(
            "must be a multiple of 8 between {MIN_SIDE} and {MAX_SIDE} pixels"
        )),
    }
}

/// Counts (steps, batch, tokens): a whole number of at least 1; the job checks the bounds.
pub fn count(s: &str) -> Result<u32, String> {
    non_negative_whole(s).ok_or_else(|| "must be a whole number of at least 1".to_owned())
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

/// `--strength`: how much of the init image to repaint, 0 to 1 (the job checks the top).
pub fn fraction(s: &str) -> Result<f64, String> {
    match finite(s) {
        Some(v) if v >= 0.0 => Ok(v),
        _ => Err("must be a number between 0 and 1".to_owned()),
    }
}

/// `--duration`: seconds, more than 0 (the job checks 0 and the model's most).
pub fn seconds(s: &str) -> Result<f64, String> {
    match finite(s) {
        Some(v) if v >= 0.0 => Ok(v),
        _ => Err("must be a number of seconds more than 0".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_sides_are_told_the_range_and_the_rest_left_to_the_job() {
        assert_eq!(side("512"), Ok(512));
        assert_eq!(side("100"), Ok(100));
        for bad in ["-1", "-512", "x", "", "1e3"] {
            let err = side(bad).unwrap_err();
            assert!(
                err.contains("multiple of 8 between 64 and 4096"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn counts_seeds_and_fractions_refuse_negatives() {
        assert_eq!(count("4"), Ok(4));
        assert_eq!(count("0"), Ok(0));
        assert!(count("-3").unwrap_err().contains("at least 1"));
        assert_eq!(seed("0"), Ok(0));
        assert!(seed("-1").unwrap_err().contains("from 0"));
        assert_eq!(fraction("0.6"), Ok(0.6));
        assert!(fraction("-0.1").unwrap_err().contains("between 0 and 1"));
        assert!(non_negative("-2").is_err() && non_negative("NaN").is_err());
        assert!(seconds("-1").is_err() && seconds("inf").is_err());
    }
}
