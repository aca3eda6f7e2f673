//! Files a request uploads (base64, as JSON clients send them): checked to be images, stored
//! under `<PALLAIDIUM_HOME>/uploads/` by their SHA-256 (the same file twice is stored once), and
//! laid into the job as the paths the runner reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::jobs::spec::JobOverrides;
use crate::serve::error::ApiError;

/// The job inputs a request may upload, by their job-file key.
pub const UPLOADABLE: [&str; 4] = ["init-image", "mask", "caption", "image"];

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
        for (key, text) in files {
            let field = format!("files.{key}");
            let slot = match key.as_str() {
                "init-image" => &mut job.init_image,
                "mask" => &mut job.mask,
                "caption" => &mut job.caption,
                "image" => &mut job.image,
                other => {
                    return Err(ApiError::Unprocessable(format!(
                        "files.{other}: not an upload this server takes; it takes {}",
                        UPLOADABLE.join(", ")
                    )));
                }
            };
            let bytes = decode_base64(&field, text)?;
            *slot = Some(self.store_image(&field, &bytes)?);
        }
        Ok(())
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
        let other = BTreeMap::from([("audio".to_owned(), b64)]);
        assert!(
            uploads
                .attach(&mut JobOverrides::default(), &other)
                .is_err()
        );
    }
}
