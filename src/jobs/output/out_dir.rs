//! The output folder, checked before anything is queued: a `--out` that is a file, cannot be
//! created or written, or lacks room for the batch's outputs is refused up front (exit 2) instead
//! of failing after the image has been computed. Nothing is created here: a probe file is made
//! and removed in the nearest existing folder.

use std::path::Path;

use crate::device::memory::format_bytes;
use crate::jobs::spec::JobSpec;
use crate::platform::disk;

/// Room kept free beyond the outputs themselves (sidecars, the queue database's growth).
const SLACK_BYTES: u64 = 16 << 20;
/// Highest sample rate an audio engine writes, for sizing WAV outputs.
const MAX_AUDIO_RATE: u64 = 48_000;

/// Upper bound of the bytes `spec`'s outputs take: uncompressed RGB for a PNG, 16-bit mono for
/// a WAV, a little for text (plus each output's JSON sidecar).
pub fn planned_output_bytes(spec: &JobSpec) -> u64 {
    let batch = u64::from(spec.batch().max(1));
    let sidecar = 64 << 10;
    let one = if let Some(p) = spec.image() {
        let scale = u64::from(p.upscale.as_ref().map_or(1, |u| u.scale));
        u64::from(p.width) * u64::from(p.height) * 3 * scale * scale + sidecar
    } else if let crate::jobs::spec::Params::Upscale(p) = &spec.params {
        // RGBA at the output size (the input's header gives its size).
        let (w, h) = crate::jobs::spec::resolve::image_size(&p.image, "--image").unwrap_or((0, 0));
        let scale = u64::from(p.scale);
        u64::from(w) * u64::from(h) * 4 * scale * scale + sidecar
    } else if let Some(seconds) = spec.duration() {
        (seconds.clamp(0.0, 3600.0) * (MAX_AUDIO_RATE * 2) as f64) as u64 + sidecar
    } else {
        2 * sidecar
    };
    one.saturating_mul(batch)
}

fn bad(dir: &Path, what: impl std::fmt::Display) -> crate::Error {
    crate::Error::bad_input(format!("--out {}: {what}", dir.display()))
}

/// Refuses an output folder the jobs could not be written to: `dir` (or the nearest folder
/// above it, where it would be created) must be a writable folder with room for `needed` bytes.
pub fn check_out_dir(dir: &Path, needed: u64) -> crate::Result<()> {
    let Some(existing) = disk::nearest_existing(dir) else {
        return Err(bad(dir, "no part of this path exists; pass a folder"));
    };
    if !existing.is_dir() {
        let what = if existing == dir {
            "is a file, not a folder".to_string()
        } else {
            format!(
                "{} is a file, so no folder can be made there",
                existing.display()
            )
        };
        return Err(bad(
            dir,
            format!("{what}; pass a folder with --out (it is created if missing)"),
        ));
    }
    if !disk::writable(&existing) {
        let place = if existing == dir {
            "cannot be written".to_string()
        } else {
            format!("cannot be created ({} is not writable)", existing.display())
        };
        return Err(bad(
            dir,
            format!("{place}; pass a folder you can write to with --out"),
        ));
    }
    if let Some(free) = disk::free_bytes(&existing) {
        let want = needed.saturating_add(SLACK_BYTES);
        if free < want {
            return Err(bad(
                dir,
                format!(
                    "only {} free on its disk, the outputs need about {}; free some space or \
                     pass --out on another disk",
                    format_bytes(free),
                    format_bytes(want)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks `dir` for all of `specs`' outputs together.
pub fn check_for_jobs(dir: &Path, specs: &[JobSpec]) -> crate::Result<()> {
    let needed = specs
        .iter()
        .map(planned_output_bytes)
        .fold(0u64, u64::saturating_add);
    check_out_dir(dir, needed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::jobs::spec::{ImageParams, MusicParams, Params};
    use crate::vocab::JobKind;

    #[test]
    fn a_missing_folder_under_a_writable_one_is_fine_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b");
        check_out_dir(&out, 1 << 20).unwrap();
        assert!(!dir.path().join("a").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_a_path_under_a_file_and_proc_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = check_out_dir(&file, 0).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("is a file, not a folder"), "{err}");
        let under = check_out_dir(&file.join("out"), 0).unwrap_err();
        assert!(
            under.to_string().contains("is a file, so no folder"),
            "{under}"
        );
        let proc = check_out_dir(Path::new("/proc/pallaidium-out"), 0).unwrap_err();
        assert!(proc.to_string().contains("cannot be created"), "{proc}");
    }

    #[test]
    fn more_than_the_disk_holds_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_out_dir(dir.path(), u64::MAX / 2).unwrap_err();
        assert!(err.to_string().contains("free some space"), "{err}");
    }

    #[test]
    fn planned_bytes_follow_size_batch_and_duration() {
        let image = JobSpec {
            params: Params::Image(ImageParams {
                width: 1024,
                height: 512,
                batch: 4,
                ..ImageParams::default()
            }),
            ..JobSpec::default()
        };
        assert_eq!(
            planned_output_bytes(&image),
            4 * (1024 * 512 * 3 + (64 << 10))
        );
        let music = JobSpec {
            kind: JobKind::Music,
            params: Params::Music(MusicParams {
                duration: 10.0,
                guidance: 3.0,
                batch: 1,
            }),
            ..JobSpec::default()
        };
        assert_eq!(planned_output_bytes(&music), 960_000 + (64 << 10));
    }
}
