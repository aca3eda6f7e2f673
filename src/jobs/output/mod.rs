//! Output files: `<out>/<YYYY-MM-DD>/<seed>_<prompt-slug>.png`, written under a temporary name in
//! the same folder, synced, then linked into place, so no half file ever has the final name.

pub mod lora_tags;
pub mod media;
pub mod media_files;
pub mod mp4;
pub mod mp4_demux;
pub mod out_dir;
pub mod png_meta;
pub mod video;
pub mod video_decode;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::jobs::output::png_meta::encode_png;
use crate::jobs::spec::JobSpec;
use crate::platform::process::process_alive;

/// Temporary files start with this and carry the writer's pid, so a later run can remove those
/// left by a killed process.
const TEMP_PREFIX: &str = ".pallaidium-partial-";
const MAX_SLUG: usize = 50;
const MAX_COLLISIONS: u32 = 10_000;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct OutputWriter {
    root: PathBuf,
    /// The run's recorded PALLAIDIUM_* switches (`Switches::recorded`): in every output's
    /// metadata.
    switches: std::collections::BTreeMap<String, String>,
}

/// At most 50 safe characters of the prompt: ASCII letters, digits, `-`; runs of anything else
/// become one `-`.
pub fn prompt_slug(prompt: &str) -> String {
    let mut slug = String::new();
    for c in prompt.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= MAX_SLUG {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "untitled".to_string()
    } else {
        slug.to_string()
    }
}

/// Today's folder name in local time.
pub fn today() -> String {
    chrono::Local::now().format("%Y-%m-%d").to_string()
}

/// Warns when an image is one flat colour: usually a NaN-free but broken decode (e.g. f16 VAE).
pub fn looks_uniform(image: &image::RgbImage) -> bool {
    let mut pixels = image.pixels();
    match pixels.next() {
        Some(first) => pixels.all(|p| p == first),
        None => true,
    }
}

impl OutputWriter {
    /// A writer into `root` whose outputs record no switches (`with_switches` adds them).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            switches: Default::default(),
        }
    }

    /// This writer recording `switches` (`Switches::recorded`) in each output's metadata.
    pub fn with_switches(self, switches: std::collections::BTreeMap<String, String>) -> Self {
        Self { switches, ..self }
    }

    /// The switches each output records.
    pub fn switches(&self) -> &std::collections::BTreeMap<String, String> {
        &self.switches
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes temporary files left in `<root>/*/` by processes that no longer run.
    /// Returns how many were removed.
    pub fn sweep_stale_temps(&self) -> usize {
        let Ok(days) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let mut removed = 0;
        for day in days.flatten() {
            let Ok(files) = std::fs::read_dir(day.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
                    continue;
                };
                let pid = rest.split('-').next().and_then(|p| p.parse::<i64>().ok());
                if pid.is_some_and(process_alive) {
                    continue;
                }
                if std::fs::remove_file(file.path()).is_ok() {
                    tracing::info!(path = %file.path().display(), "removed a stale partial output");
                    removed += 1;
                }
            }
        }
        removed
    }

    fn candidate(dir: &Path, stem: &str, n: u32, ext: &str) -> PathBuf {
        if n == 0 {
            dir.join(format!("{stem}.{ext}"))
        } else {
            dir.join(format!("{stem}({n}).{ext}"))
        }
    }

    /// Writes one image as PNG with its metadata and returns the final path.
    /// `before_place` runs with the final name just before the file appears under it (the runner
    /// notes it in the store); an error there aborts the write and removes the temporary file.
    pub fn write_png(
        &self,
        image: &image::RgbImage,
        spec: &JobSpec,
        before_place: impl FnMut(&Path) -> crate::Result<()>,
    ) -> crate::Result<PathBuf> {
        if looks_uniform(image) {
            tracing::warn!(
                seed = spec.seed,
                "the image is a single flat colour; the model or dtype may be broken \
                 (try --dtype f32)"
            );
        }
        let mut bytes = Vec::new();
        encode_png(&mut bytes, image, spec, &self.switches)
            .map_err(|e| crate::Error::job_failed(format!("PNG encoding failed: {e}")))?;
        self.write_bytes(&output_stem(spec), "png", &bytes, before_place)
    }

    /// Writes an upscaled image (8-bit RGB or RGBA) as PNG with its metadata, as `write_png`.
    pub fn write_image_png(
        &self,
        image: &image::DynamicImage,
        spec: &JobSpec,
        before_place: impl FnMut(&Path) -> crate::Result<()>,
    ) -> crate::Result<PathBuf> {
        let rgba;
        let rgb;
        let pixels = if image.color().has_alpha() {
            rgba = image.to_rgba8();
            png_meta::Pixels {
                width: rgba.width(),
                height: rgba.height(),
                alpha: true,
                data: rgba.as_raw(),
            }
        } else {
            rgb = image.to_rgb8();
            png_meta::Pixels {
                width: rgb.width(),
                height: rgb.height(),
                alpha: false,
                data: rgb.as_raw(),
            }
        };
        let mut bytes = Vec::new();
        png_meta::encode_png_pixels(&mut bytes, &pixels, spec, &self.switches)
            .map_err(|e| crate::Error::job_failed(format!("PNG encoding failed: {e}")))?;
        self.write_bytes(&output_stem(spec), "png", &bytes, before_place)
    }

    /// Writes `bytes` as `<out>/<date>/<stem>.<ext>` (a `(N)` suffix on collision) through a
    /// synced temporary file, and returns the final path.
    pub fn write_bytes(
        &self,
        stem: &str,
        ext: &str,
        bytes: &[u8],
        mut before_place: impl FnMut(&Path) -> crate::Result<()>,
    ) -> crate::Result<PathBuf> {
        let dir = self.root.join(today());
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        let temp = self.temp_in(&dir, ext);
        let result = Self::write_temp(&temp, bytes)
            .and_then(|()| Self::place(&dir, &temp, stem, ext, &mut before_place));
        // Whatever happened, the temporary name must not stay behind.
        let _ = std::fs::remove_file(&temp);
        result
    }

    /// Writes a file that belongs to `main` (same stem, other extension: a sidecar, the .txt of
    /// an .srt), atomically; an older companion of the same name is replaced.
    pub fn write_companion(&self, main: &Path, ext: &str, bytes: &[u8]) -> crate::Result<PathBuf> {
        let target = main.with_extension(ext);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        let temp = self.temp_in(&dir, ext);
        let result = Self::write_temp(&temp, bytes).and_then(|()| {
            std::fs::rename(&temp, &target).map_err(|e| crate::Error::io(&target, e))
        });
        let _ = std::fs::remove_file(&temp);
        result.map(|()| target)
    }

    fn temp_in(&self, dir: &Path, ext: &str) -> PathBuf {
        dir.join(format!(
            "{TEMP_PREFIX}{}-{}.{ext}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn write_temp(temp: &Path, bytes: &[u8]) -> crate::Result<()> {
        let file = File::create(temp).map_err(|e| crate::Error::io(temp, e))?;
        let mut out = BufWriter::new(file);
        out.write_all(bytes)
            .map_err(|e| crate::Error::io(temp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| crate::Error::io(temp, e.into_error()))?;
        // On disk before it gets its final name, so a power loss cannot leave a torn file there.
        file.sync_all().map_err(|e| crate::Error::io(temp, e))
    }

    /// Links the temporary file to the first free name; `hard_link` fails if the name exists,
    /// so two writers never overwrite each other.
    fn place(
        dir: &Path,
        temp: &Path,
        stem: &str,
        ext: &str,
        before_place: &mut impl FnMut(&Path) -> crate::Result<()>,
    ) -> crate::Result<PathBuf> {
        for n in 0..MAX_COLLISIONS {
            let target = Self::candidate(dir, stem, n, ext);
            // A companion of another output (its .json, .txt) blocks the stem too.
            if target.exists() || target.with_extension("json").exists() {
                continue;
            }
            before_place(&target)?;
            match std::fs::hard_link(temp, &target) {
                Ok(()) => return Ok(target),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(link_err) => {
                    // Filesystems without hard links: a rename is atomic too.
                    tracing::debug!(error = %link_err, "hard link failed; renaming instead");
                    std::fs::rename(temp, &target).map_err(|e| crate::Error::io(&target, e))?;
                    return Ok(target);
                }
            }
        }
        Err(crate::Error::job_failed(format!(
            "{}: {MAX_COLLISIONS} files named {stem}(N).{ext} already exist; choose another --out",
            dir.display()
        )))
    }
}

/// `<seed>_<slug>`: the slug of the prompt, or of the input file's name for jobs without a prompt
/// (transcripts, captions).
pub fn output_stem(spec: &JobSpec) -> String {
    let source = if spec.prompt.trim().is_empty() {
        let input = match &spec.params {
            crate::jobs::spec::Params::Transcribe(p) => Some(&p.audio),
            crate::jobs::spec::Params::Caption(p) => Some(&p.image),
            crate::jobs::spec::Params::Upscale(p) => Some(&p.image),
            crate::jobs::spec::Params::Image(p) => p.init_image.as_ref(),
            _ => None,
        };
        input
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        spec.prompt.clone()
    };
    format!("{}_{}", spec.seed.unwrap_or(0), prompt_slug(&source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64, prompt: &str) -> JobSpec {
        JobSpec {
            model: "tiny".into(),
            prompt: prompt.into(),
            seed: Some(seed),
            ..JobSpec::default()
        }
    }

    fn noise() -> image::RgbImage {
        image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 1]))
    }

    #[test]
    fn slugs_are_short_and_safe() {
        assert_eq!(prompt_slug("A cat, on a mat!"), "a-cat-on-a-mat");
        assert_eq!(prompt_slug("  ../../etc/passwd"), "etc-passwd");
        assert_eq!(prompt_slug("猫"), "untitled");
        assert_eq!(prompt_slug(""), "untitled");
        let long = prompt_slug(&"word ".repeat(40));
        assert!(long.len() <= 50, "{long}");
        assert!(!long.ends_with('-'));
    }

    #[test]
    fn names_follow_the_contract_and_collisions_get_suffixes() {
        let dir = tempfile::tempdir().unwrap();
        let writer = OutputWriter::new(dir.path());
        let mut noted = vec![];
        let a = writer
            .write_png(&noise(), &spec(42, "a cat"), |p| {
                noted.push(p.to_path_buf());
                Ok(())
            })
            .unwrap();
        let b = writer
            .write_png(&noise(), &spec(42, "a cat"), |_| Ok(()))
            .unwrap();
        let day = dir.path().join(today());
        assert_eq!(a, day.join("42_a-cat.png"));
        assert_eq!(b, day.join("42_a-cat(1).png"));
        assert_eq!(noted, vec![a.clone()]);
        let names: Vec<_> = std::fs::read_dir(&day)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file stays: {names:?}");
        let stored = crate::jobs::output::png_meta::read_parameters(&a).unwrap();
        assert_eq!(stored.spec.unwrap().seed, Some(42));
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = OutputWriter::new(dir.path());
        let err = writer
            .write_png(&noise(), &spec(1, "x"), |_| {
                Err(crate::Error::job_failed("store down"))
            })
            .unwrap_err();
        assert!(err.to_string().contains("store down"));
        let day = dir.path().join(today());
        assert_eq!(std::fs::read_dir(&day).unwrap().count(), 0);
    }

    #[test]
    fn stale_temps_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("2020-01-01");
        std::fs::create_dir_all(&day).unwrap();
        let dead = day.join(format!("{TEMP_PREFIX}2147483600-0.png"));
        let ours = day.join(format!("{TEMP_PREFIX}{}-0.png", std::process::id()));
        let output = day.join("1_x.png");
        for p in [&dead, &ours, &output] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(OutputWriter::new(dir.path()).sweep_stale_temps(), 1);
        assert!(!dead.exists() && ours.exists() && output.exists());
    }

    #[test]
    fn uniform_images_are_detected() {
        assert!(looks_uniform(&image::RgbImage::new(4, 4)));
        assert!(!looks_uniform(&noise()));
    }
}
