//! Inputs whose headers lie or that cannot be used, through the real binary: each is refused
//! before anything is queued (exit 2, a message naming the flag or file, no output, no queue
//! row) instead of allocating what a header claims, running away, or failing after the work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::run;
use run::{Run, fixture};

/// Runs `args` and checks the refusal; returns stderr.
fn refused(run: &Run, args: &[&str], needles: &[&str]) -> String {
    refused_by(run, run.command().args(args), needles)
}

fn refused_by(run: &Run, cmd: &mut assert_cmd::Command, needles: &[&str]) -> String {
    let out = cmd.output().unwrap();
    let args: Vec<_> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(run.files().is_empty(), "nothing may be written");
    let history = run
        .command()
        .args(["--history", "--json"])
        .output()
        .unwrap();
    assert!(
        history.stdout.is_empty(),
        "nothing may be queued: {}",
        String::from_utf8_lossy(&history.stdout)
    );
    stderr
}

fn sd1() -> String {
    fixture("sd1-tiny").to_string_lossy().into_owned()
}

fn image_job(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--model", &sd1(), "--prompt", "x", "--steps", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A 0.5 s 16 kHz mono WAV whose header then claims `rate` Hz.
fn wav_claiming_rate(dir: &Path, rate: u32) -> PathBuf {
    let path = dir.join(format!("rate{rate}.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..8_000 {
        w.write_sample(((i % 100) * 300) as i16).unwrap();
    }
    w.finalize().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // fmt chunk: sample rate at 24, byte rate at 28.
    bytes[24..28].copy_from_slice(&rate.to_le_bytes());
    bytes[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_wav_claiming_one_hertz_is_refused_from_its_header() {
    let run = Run::new();
    let wav = wav_claiming_rate(run.dir.path(), 1);
    let whisper = fixture("whisper-tiny");
    refused(
        &run,
        &[
            "--model",
            whisper.to_str().unwrap(),
            "--audio",
            wav.to_str().unwrap(),
        ],
        &["--audio", "rate1.wav", "sample rate of 1 Hz"],
    );
}

#[test]
fn corrupt_audio_and_images_are_refused_before_queueing() {
    let run = Run::new();
    let not_audio = run.dir.path().join("notes.wav");
    std::fs::write(&not_audio, b"RIFF\x10\0\0\0WAVEjunk that is no audio").unwrap();
    let whisper = fixture("whisper-tiny");
    refused(
        &run,
        &[
            "--model",
            whisper.to_str().unwrap(),
            "--audio",
            not_audio.to_str().unwrap(),
        ],
        &["--audio", "notes.wav", "not a readable audio file"],
    );
    // A PNG whose header reads but whose pixels are cut off.
    let png = std::fs::read(fixture("images/init.png")).unwrap();
    let cut = run.dir.path().join("cut.png");
    std::fs::write(&cut, &png[..png.len() / 2]).unwrap();
    let blip = fixture("blip-tiny");
    refused(
        &run,
        &[
            "--model",
            blip.to_str().unwrap(),
            "--caption",
            cut.to_str().unwrap(),
        ],
        &["--caption", "cut.png", "not a decodable image"],
    );
}

#[test]
fn img2img_with_no_effective_step_is_refused() {
    let run = Run::new();
    let init = fixture("images/init.png");
    let args = [
        "--model",
        &sd1(),
        "--prompt",
        "x",
        "--init-image",
        init.to_str().unwrap(),
        "--strength",
        "0.8",
        "--steps",
        "1",
    ]
    .map(str::to_owned);
    refused(
        &run,
        &strs(&args),
        &["--strength 0.8 with --steps 1", "--steps to at least 2"],
    );
}

#[test]
fn bf16_on_the_cpu_is_refused_naming_what_to_use() {
    let run = Run::new();
    let args = image_job(&["--width", "64", "--height", "64", "--dtype", "bf16"]);
    refused(&run, &strs(&args), &["--dtype bf16", "--dtype f32"]);
}

/// A PNG of just a signature and an IHDR claiming `w` x `h` (the pixels never come).
fn png_claiming(path: &Path, w: u32, h: u32) {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // An empty IDAT (decoders read the header up to the first one) and the end.
    for chunk in [&b"IDAT"[..], &b"IEND"[..]] {
        png.extend_from_slice(&0u32.to_be_bytes());
        png.extend_from_slice(chunk);
        png.extend_from_slice(&crc32(chunk).to_be_bytes());
    }
    std::fs::write(path, png).unwrap();
}

#[test]
fn headers_claiming_huge_sizes_are_refused_before_allocating() {
    let run = Run::new();
    // .npy: shape 100000x4x100000x100000 (16 PB of f32) in the header, a few bytes of data.
    let npy = run.dir.path().join("huge.npy");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 4, 100000, 100000), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<118}\n");
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&npy, bytes).unwrap();
    let args = image_job(&[
        "--width",
        "64",
        "--height",
        "64",
        "--init-latents",
        npy.to_str().unwrap(),
    ]);
    refused(
        &run,
        &strs(&args),
        &["--init-latents", "huge.npy", "does not fit this job"],
    );

    // .safetensors: the same claim in a safetensors header.
    let st = run.dir.path().join("huge.safetensors");
    let json =
        r#"{"latents":{"dtype":"F32","shape":[100000,4,100000,100000],"data_offsets":[0,64]}}"#;
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&st, bytes).unwrap();
    let args = image_job(&[
        "--width",
        "64",
        "--height",
        "64",
        "--init-latents",
        st.to_str().unwrap(),
    ]);
    refused(&run, &strs(&args), &["--init-latents", "huge.safetensors"]);

    // An image: 100000x100000 pixels claimed by its PNG header.
    let png = run.dir.path().join("huge.png");
    png_claiming(&png, 100_000, 100_000);
    let args = image_job(&["--init-image", png.to_str().unwrap()]);
    refused(
        &run,
        &strs(&args),
        &["--init-image", "huge.png", "100000x100000", "megapixel"],
    );
    let blip = fixture("blip-tiny");
    refused(
        &run,
        &[
            "--model",
            blip.to_str().unwrap(),
            "--caption",
            png.to_str().unwrap(),
        ],
        &["--caption", "huge.png", "megapixel"],
    );
}

#[test]
fn an_out_folder_that_cannot_take_the_outputs_is_refused_before_queueing() {
    let run = Run::new();
    std::fs::create_dir_all(run.dir.path()).unwrap();
    let file = run.dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under = file.join("out");
    for (out, says) in [
        (file.as_path(), "is a file, not a folder"),
        (under.as_path(), "is a file, so no folder can be made there"),
        (Path::new("/proc/pallaidium-out"), "cannot be created"),
    ] {
        // run.command() names its own --out; this one names the broken one instead.
        let mut cmd = assert_cmd::Command::cargo_bin("pallaidium").unwrap();
        cmd.env("PALLAIDIUM_HOME", &run.home)
            .env("HF_HOME", run.home.join("hf"))
            .env("HF_HUB_OFFLINE", "1")
            .args(["--headless", "--device", "cpu", "--out"])
            .arg(out)
            .args(strs(&image_job(&["--width", "64", "--height", "64"])));
        refused_by(&run, &mut cmd, &["--out", says]);
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "the file is untouched");
}

#[test]
fn bench_has_the_size_and_batch_limits_of_jobs() {
    for (flags, says) in [
        (["--width", "8192"], "--width 8192"),
        (["--batch", "65"], "--batch 65"),
        (["--steps", "0"], "--steps 0"),
    ] {
        let out = assert_cmd::Command::cargo_bin("pallaidium")
            .unwrap()
            .args(["bench", "unet", "--device", "cpu", "--runs", "1"])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
}
