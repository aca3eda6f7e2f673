//! Files a request uploads (base64, as JSON clients send them): checked to be images, stored
//! under `<PALLAIDIUM_HOME>/uploads/` by their SHA-256 (the same file twice is stored once), and
//! laid into the job as the paths the runner reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::jobs::spec::JobOverrides;
use crate::serve::error::ApiError;

/// The job inputs a request may upload, by their job-file key. A job with several ControlNets
/// uploads the N-th one's image as `control-image.N` (from 0; `control-image` is the first).
pub const UPLOADABLE: [&str; 6] = [
    "init-image",
    "last-image",
    "mask",
    "caption",
    "image",
    "control-image",
];

/// Decodes base64, with or without a `data:image/...;base64,` prefix (A1111 clients send one).
pub fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    let payload = match text.split_once(";base64,") {
        Some((head, rest)) if head.starts_with("data:") => rest,
        _ => text,
    };
    let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| ApiError::BadRequest(format!("{field}: not base64 ({e})")))
}

/// Where uploads are kept.
#[derive(Debug, Clone)]
pub struct Uploads {
    dir: PathBuf,
}

impl Uploads {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Stores one uploaded image; returns its path. Bytes that are no image are 422.
    pub fn store_image(&self, field: &str, bytes: &[u8]) -> Result<PathBuf, ApiError> {
        let format = image::guess_format(bytes).map_err(|_| {
            ApiError::Unprocessable(format!("{field}: not an image (PNG, JPEG or WebP)"))
        })?;
        // Decoding it now turns a damaged file into a clear refusal instead of a failed job.
        image::load_from_memory_with_format(bytes, format)
            .map_err(|e| ApiError::Unprocessable(format!("{field}: cannot read the image: {e}")))?;
        let ext = format.extensions_str().first().copied().unwrap_or("img");
        let digest = Sha256::digest(bytes);
        let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let path = self.dir.join(format!("{name}.{ext}"));
        if !path.exists() {
            write_atomically(&self.dir, &path, bytes)
                .map_err(|e| ApiError::Internal(format!("cannot store the upload {field}: {e}")))?;
        }
        Ok(path)
    }

    /// Stores each of `files` (key: a job-file key such as `init-image`) and sets the job's path.
    pub fn attach(
        &self,
        job: &mut JobOverrides,
        files: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let mut control = BTreeMap::new();
        for (key, text) in files {
            let field = format!("files.{key}");
            if let Some(index) = control_index(key)? {
                let bytes = decode_base64(&field, text)?;
                if control
                    .insert(index, self.store_image(&field, &bytes)?)
                    .is_some()
                {
                    return Err(ApiError::Unprocessable(format!(
                        "{field}: the ControlNet image {index} is sent twice (control-image is \
                         control-image.0)"
                    )));
                }
                continue;
            }
            let slot = match key.as_str() {
                "init-image" => &mut job.init_image,
                "last-image" => &mut job.last_image,
                "mask" => &mut job.mask,
                "caption" => &mut job.caption,
                "image" => &mut job.image,
                other => {
                    return Err(ApiError::Unprocessable(format!(
                        "files.{other}: not an upload this server takes; it takes {} (and \
                         control-image.N for the N-th ControlNet)",
                        UPLOADABLE.join(", ")
                    )));
                }
            };
            let bytes = decode_base64(&field, text)?;
            *slot = Some(self.store_image(&field, &bytes)?);
        }
        if !control.is_empty() {
            if let Some(missing) = (0..control.len()).find(|i| !control.contains_key(i)) {
                return Err(ApiError::Unprocessable(format!(
                    "files.control-image.{missing} is missing: send one image for each \
                     ControlNet, numbered from 0 in the order of job.controlnet"
                )));
            }
            job.control_image = Some(control.into_values().collect());
        }
        Ok(())
    }
}

/// The ControlNet a `control-image` / `control-image.N` key is for; `None` for other keys.
fn control_index(key: &str) -> Result<Option<usize>, ApiError> {
    match key.strip_prefix("control-image") {
        Some("") => Ok(Some(0)),
        Some(rest) => match rest.strip_prefix('.').map(str::parse::<usize>) {
            Some(Ok(n)) if n < 64 => Ok(Some(n)),
            _ => Err(ApiError::Unprocessable(format!(
                "files.{key}: name the N-th ControlNet's image control-image.N, N from 0"
            ))),
        },
        None => Ok(None),
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension("part");
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([10, 20, 30]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn images_are_stored_once_by_content_and_other_bytes_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path().join("uploads"));
        let b64 = base64::engine::general_purpose::STANDARD.encode(png());
        let mut job = JobOverrides::default();
        let files = BTreeMap::from([
            (
                "init-image".to_owned(),
                format!("data:image/png;base64,{b64}"),
            ),
            ("mask".to_owned(), b64.clone()),
        ]);
        uploads.attach(&mut job, &files).unwrap();
        let (init, mask) = (job.init_image.unwrap(), job.mask.unwrap());
        assert_eq!(init, mask, "the same bytes are one file");
        assert_eq!(std::fs::read(&init).unwrap(), png());

        let bad = BTreeMap::from([("mask".to_owned(), "!!!".to_owned())]);
        let err = uploads
            .attach(&mut JobOverrides::default(), &bad)
            .unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        let text = base64::engine::general_purpose::STANDARD.encode(b"hello");
        let not_image = BTreeMap::from([("mask".to_owned(), text)]);
        let err = uploads
            .attach(&mut JobOverrides::default(), &not_image)
            .unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let other = BTreeMap::from([("audio".to_owned(), b64.clone())]);
        assert!(
            uploads
                .attach(&mut JobOverrides::default(), &other)
                .is_err()
        );
    }

    #[test]
    fn control_images_go_in_controlnet_order_and_gaps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path().join("uploads"));
        let first = base64::engine::general_purpose::STANDARD.encode(png());
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 0, 0]));
        let mut second = std::io::Cursor::new(Vec::new());
        img.write_to(&mut second, image::ImageFormat::Png).unwrap();
        let second = base64::engine::general_purpose::STANDARD.encode(second.into_inner());
        let mut job = JobOverrides::default();
        let files = BTreeMap::from([
            ("control-image.1".to_owned(), second.clone()),
            ("control-image".to_owned(), first.clone()),
        ]);
        uploads.attach(&mut job, &files).unwrap();
        let paths = job.control_image.unwrap();
        assert_eq!(paths.len(), 2);
        assert_eq!(std::fs::read(&paths[0]).unwrap(), png());
        assert_ne!(paths[0], paths[1]);

        let refuse = |files: &[(&str, &str)], says: &str| {
            let files = files
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let err = uploads
                .attach(&mut JobOverrides::default(), &files)
                .unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
            assert!(err.to_string().contains(says), "{err}");
        };
        refuse(
            &[("control-image.1", &second)],
            "control-image.0 is missing",
        );
        refuse(
            &[("control-image", &first), ("control-image.0", &second)],
            "sent twice",
        );
        refuse(&[("control-image.x", &first)], "control-image.N");
        refuse(&[("control-imagex", &first)], "control-image.N");
    }
}
