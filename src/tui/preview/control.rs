//! The control image of the form's ControlNet as the preview shows it: the image itself, or with
//! `--control-preprocess canny` the edge map the job will steer with (the engine's Canny, so the
//! preview is what the ControlNet sees).

use std::path::Path;

use image::DynamicImage;

/// The preview's label and image; the error says why the file cannot be shown.
pub fn control_preview(
    path: &Path,
    canny: Option<(f64, f64)>,
) -> Result<(String, DynamicImage), String> {
    let image = image::open(path).map_err(|e| format!("cannot show {}: {e}", path.display()))?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok(match canny {
        None => (format!("control image: {name}"), image),
        Some((low, high)) => {
            let edges =
                crate::engines::sd::controlnet::canny::canny_rgb(&image.to_rgb8(), low, high);
            (
                format!("canny edges {low}/{high}: {name}"),
                DynamicImage::ImageRgb8(edges),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_map_is_black_and_white_and_not_the_image() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/canny/photo.png");
        let (label, plain) = control_preview(&path, None).unwrap();
        assert_eq!(label, "control image: photo.png");
        let (label, edges) = control_preview(&path, Some((100.0, 200.0))).unwrap();
        assert!(label.starts_with("canny edges 100/200"), "{label}");
        assert_eq!(edges.width(), plain.width());
        let px = edges.to_rgb8();
        assert!(px.pixels().all(|p| p[0] == 0 || p[0] == 255));
        assert!(px.pixels().any(|p| p[0] == 255), "some edges");
        assert_ne!(edges.to_rgb8(), plain.to_rgb8());
        assert!(control_preview(Path::new("nope.png"), None).is_err());
    }
}
