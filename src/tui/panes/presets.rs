//! Helpers of the parameters form: size presets per model and path completion.

use std::path::{MAIN_SEPARATOR, Path};

/// Sizes with about the native pixel count at common aspect ratios, multiples of 64.
pub fn size_presets(native: [u32; 2]) -> Vec<(u32, u32)> {
    let area = f64::from(native[0]) * f64::from(native[1]);
    let mut out = vec![(native[0], native[1])];
    for (a, b) in [
        (2.0, 3.0),
        (3.0, 2.0),
        (3.0, 4.0),
        (4.0, 3.0),
        (9.0, 16.0),
        (16.0, 9.0),
    ] {
        let h = (area * b / a).sqrt();
        let w = area / h;
        let round = |v: f64| ((v / 64.0).round() as u32).max(1) * 64;
        let size = (round(w), round(h));
        if !out.contains(&size) {
            out.push(size);
        }
    }
    out
}

/// Completes the last path component of `input` to the longest prefix shared by the entries
/// that match; a single directory match gets a trailing separator. `None` when nothing matches.
pub fn complete_path(input: &str) -> Option<String> {
    let (dir, stem) = match input.rfind(MAIN_SEPARATOR) {
        Some(i) => (&input[..=i], &input[i + 1..]),
        None => ("", input),
    };
    let expanded = match dir.strip_prefix("~/") {
        Some(rest) => dirs::home_dir()?.join(rest),
        None if dir.is_empty() => Path::new(".").to_path_buf(),
        None => Path::new(dir).to_path_buf(),
    };
    let mut names: Vec<(String, bool)> = std::fs::read_dir(&expanded)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (name.starts_with(stem) && (stem.starts_with('.') || !name.starts_with('.')))
                .then_some((name, is_dir))
        })
        .collect();
    names.sort();
    let first = names.first()?.0.clone();
    let common = names.iter().fold(first, |acc, (n, _)| {
        acc.chars()
            .zip(n.chars())
            .take_while(|(a, b)| a == b)
            .map(|(a, _)| a)
            .collect()
    });
    let mut out = format!("{dir}{common}");
    if names.len() == 1 && names[0].1 {
        out.push(MAIN_SEPARATOR);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_keep_the_pixel_count() {
        let p = size_presets([512, 512]);
        assert_eq!(p[0], (512, 512));
        assert!(p.contains(&(448, 640)) || p.contains(&(384, 640)), "{p:?}");
        for (w, h) in &p {
            assert_eq!((w % 64, h % 64), (0, 0));
            let ratio = f64::from(w * h) / (512.0 * 512.0);
            assert!((0.8..1.25).contains(&ratio), "{w}x{h}");
        }
        assert!(size_presets([1024, 1024]).contains(&(1024, 1024)));
    }

    #[test]
    fn completes_unique_files_and_common_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("init.png"), b"").unwrap();
        std::fs::write(dir.path().join("inpaint.png"), b"").unwrap();
        std::fs::create_dir(dir.path().join("masks")).unwrap();
        let base = format!("{}{MAIN_SEPARATOR}", dir.path().display());
        assert_eq!(
            complete_path(&format!("{base}in")),
            Some(format!("{base}in"))
        );
        assert_eq!(
            complete_path(&format!("{base}ini")),
            Some(format!("{base}init.png"))
        );
        assert_eq!(
            complete_path(&format!("{base}m")),
            Some(format!("{base}masks{MAIN_SEPARATOR}"))
        );
        assert_eq!(complete_path(&format!("{base}zzz")), None);
    }
}
