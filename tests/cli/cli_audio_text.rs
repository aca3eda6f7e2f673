//! Black-box tests of audio and text jobs through `pallaidium --headless` on the tiny fixtures:
//! speech, music, transcription, captions and prompt enhancement write valid files (a WAV players
//! accept, an SRT that parses, text) with their parameters stored; bad input exits 2 with nothing
//! written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

use crate::run;
use run::{Run, fixture};

/// `--headless --json`.
fn json_command(run: &Run) -> Command {
    let mut cmd = run.command();
    cmd.arg("--json");
    cmd
}

/// A 1.5 s mono 16 kHz WAV: a chirp, like a voice sweeping in pitch.
fn speech_wav(run: &Run) -> PathBuf {
    let path = run.dir.path().join("talk.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..24_000 {
        let t = f64::from(i) / 16_000.0;
        let v = (2.0 * std::f64::consts::PI * (200.0 + 300.0 * t) * t).sin() * 0.4;
        w.write_sample((v * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    path
}

pub(crate) fn run_ok(cmd: &mut Command) -> Vec<Value> {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn done(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no done event in {events:?}"))
}

pub(crate) fn bad_input(cmd: &mut Command, needle: &str, run: &Run) {
    let out = cmd.output().unwrap();
    // Refused at submit: the message is on stderr; failed while running: in the `failed` event.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(2), "output: {said}");
    assert!(said.contains(needle), "expected {needle:?} in: {said}");
    assert!(
        run.files().is_empty(),
        "nothing may be written: {:?}",
        run.files()
    );
}

fn sidecar(path: &Path) -> Value {
    let text = std::fs::read_to_string(path.with_extension("json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A WAV a real decoder accepts: mono 16-bit, the expected length, not silence; and its INFO chunk.
fn check_wav(path: &Path, min_s: f64, max_s: f64) -> hound::WavSpec {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16));
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let secs = samples.len() as f64 / f64::from(spec.sample_rate);
    assert!(
        (min_s..=max_s).contains(&secs),
        "{} lasts {secs} s, expected {min_s}..{max_s}",
        path.display()
    );
    assert!(samples.iter().any(|&s| s != 0), "silence");
    let bytes = std::fs::read(path).unwrap();
    let info = pallaidium::jobs::output::media_files::read_wav_info(&bytes).expect("an INFO chunk");
    assert!(info.software.starts_with("pallaidium"), "{info:?}");
    spec
}

#[test]
fn music_makes_a_wav_of_the_asked_duration_with_its_parameters() {
    let run = Run::new();
    let events = run_ok(
        json_command(&run)
            .arg("--model")
            .arg(fixture("musicgen-tiny"))
            .args(["--prompt", "lofi beat", "--duration", "0.5", "--seed", "7"]),
    );
    let d = done(&events);
    assert!(d["duration_s"].as_f64().unwrap() > 0.0, "{d}");
    assert!(events.iter().any(|e| e["event"] == "progress"));
    let wav = PathBuf::from(d["outputs"][0].as_str().unwrap());
    assert!(
        wav.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("7_lofi-beat")
    );
    check_wav(&wav, 0.3, 0.6);
    let car = sidecar(&wav);
    assert_eq!(car["spec"]["kind"], "music");
    assert_eq!(car["spec"]["params"]["music"]["duration"], 0.5);
    assert_eq!(car["spec"]["seed"], 7);
    // The same seed makes the same audio.
    let again = run_ok(
        json_command(&run)
            .arg("--model")
            .arg(fixture("musicgen-tiny"))
            .args(["--prompt", "lofi beat", "--duration", "0.5", "--seed", "7"]),
    );
    let wav2 = PathBuf::from(done(&again)["outputs"][0].as_str().unwrap());
    assert_ne!(wav, wav2);
    let pcm = |p: &Path| {
        hound::WavReader::open(p)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    assert_eq!(pcm(&wav), pcm(&wav2));
}

#[test]
fn speech_makes_a_wav_and_stores_the_voice() {
    let run = Run::new();
    let events = run_ok(
        json_command(&run)
            .arg("--model")
            .arg(fixture("parler-tiny"))
            .args([
                "--prompt",
                "Hello there.",
                "--voice",
                "a calm voice",
                "--duration",
                "1",
                "--seed",
                "1",
            ]),
    );
    let wav = PathBuf::from(done(&events)["outputs"][0].as_str().unwrap());
    check_wav(&wav, 0.01, 1.1);
    let car = sidecar(&wav);
    assert_eq!(car["spec"]["kind"], "tts");
    assert_eq!(car["spec"]["params"]["speech"]["voice"], "a calm voice");
    // `info` reads audio outputs too.
    let info = Command::cargo_bin("pallaidium")
        .unwrap()
        .arg("info")
        .arg(&wav)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("kind: tts") && text.contains("voice: a calm voice"),
        "{text}"
    );
}

#[test]
fn transcription_writes_srt_and_timed_text() {
    let run = Run::new();
    let audio = speech_wav(&run);
    let events = run_ok(
        json_command(&run)
            .arg("--model")
            .arg(fixture("whisper-tiny"))
            .arg("--audio")
            .arg(&audio)
            .args(["--max-tokens", "20"]),
    );
    let d = done(&events);
    let outputs: Vec<PathBuf> = d["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    let srt = outputs
        .iter()
        .find(|p| p.extension().unwrap() == "srt")
        .unwrap();
    assert!(
        srt.file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("_talk.srt")
    );
    assert!(outputs.iter().any(|p| p.extension().unwrap() == "txt"));
    let cues = std::fs::read_to_string(srt).unwrap();
    // Every cue: a number, "HH:MM:SS,mmm --> HH:MM:SS,mmm", text, a blank line.
    let time = regex::Regex::new(r"^\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}$").unwrap();
    for (n, cue) in cues
        .split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .enumerate()
    {
        let lines: Vec<&str> = cue.lines().collect();
        assert_eq!(lines[0], (n + 1).to_string(), "{cues}");
        assert!(time.is_match(lines[1]), "{cues}");
    }
    let car = sidecar(srt);
    assert_eq!(car["spec"]["kind"], "stt");
    assert_eq!(d["text"], car["text"]);
}

#[test]
fn a_caption_is_printed_and_written() {
    let run = Run::new();
    let image = fixture("images/init.png");
    let events = run_ok(
        json_command(&run)
            .arg("--model")
            .arg(fixture("blip-tiny"))
            .arg("--caption")
            .arg(&image)
            .args(["--max-tokens", "8"]),
    );
    let d = done(&events);
    let text = d["text"].as_str().unwrap();
    assert!(!text.is_empty());
    let txt = PathBuf::from(d["outputs"][0].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(&txt).unwrap().trim(), text);
    assert_eq!(sidecar(&txt)["spec"]["kind"], "caption");
}

#[test]
fn enhance_streams_text_and_writes_the_prompt() {
    let run = Run::new();
    let events = run_ok(
        json_command(&run)
            .args(["--kind", "enhance", "--enhancer"])
            .arg(fixture("qwen2-tiny-gguf"))
            .args([
                "--prompt",
                "a fox in snow",
                "--max-tokens",
                "12",
                "--seed",
                "5",
            ]),
    );
    let d = done(&events);
    let streamed: String = events
        .iter()
        .filter(|e| e["event"] == "text")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert!(!streamed.is_empty());
    assert_eq!(streamed.trim(), d["text"].as_str().unwrap());
    let txt = PathBuf::from(d["outputs"][0].as_str().unwrap());
    assert!(
        txt.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("5_a-fox-in-snow")
    );
}

#[test]
fn an_image_job_can_enhance_its_prompt_first() {
    let run = Run::new();
    let events = run_ok(
        json_command(&run)
            .arg("--model")
            .arg(fixture("sd1-tiny"))
            .args([
                "--width", "64", "--height", "64", "--steps", "2", "--seed", "3",
            ])
            .args(["--prompt", "a fox", "--enhance", "--enhancer"])
            .arg(fixture("qwen2-tiny-gguf"))
            .args(["--max-tokens", "8"]),
    );
    let d = done(&events);
    let png = PathBuf::from(d["outputs"][0].as_str().unwrap());
    let out = Command::cargo_bin("pallaidium")
        .unwrap()
        .args(["info", "--json"])
        .arg(&png)
        .output()
        .unwrap();
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["params"]["image"]["enhance"]["from"], "a fox");
    assert_eq!(spec["prompt"], d["text"]);
}

#[test]
fn bad_audio_and_text_input_exits_2_with_nothing_written() {
    let run = Run::new();
    let musicgen = fixture("musicgen-tiny");
    bad_input(
        json_command(&run).arg("--model").arg(&musicgen).args([
            "--prompt",
            "x",
            "--duration",
            "100000",
        ]),
        "--duration",
        &run,
    );
    bad_input(
        json_command(&run)
            .arg("--model")
            .arg(&musicgen)
            .args(["--prompt", " "]),
        "--prompt",
        &run,
    );
    bad_input(
        json_command(&run)
            .arg("--model")
            .arg(&musicgen)
            .args(["--kind", "stt", "--audio", "x.wav"]),
        "makes music",
        &run,
    );
    bad_input(
        json_command(&run)
            .arg("--model")
            .arg(fixture("whisper-tiny"))
            .args(["--audio", "/no/such/file.wav"]),
        "no such file",
        &run,
    );
    let not_audio = run.dir.path().join("notes.wav");
    std::fs::write(&not_audio, b"this is not audio").unwrap();
    bad_input(
        json_command(&run)
            .arg("--model")
            .arg(fixture("whisper-tiny"))
            .arg("--audio")
            .arg(&not_audio),
        "notes.wav",
        &run,
    );
    bad_input(
        json_command(&run)
            .arg("--model")
            .arg(fixture("blip-tiny"))
            .arg("--caption")
            .arg(&not_audio),
        "--caption",
        &run,
    );
    bad_input(
        json_command(&run)
            .arg("--model")
            .arg(fixture("sd1-tiny"))
            .args(["--kind", "tts", "--prompt", "hi"]),
        "makes images",
        &run,
    );
    // An input alone picks the kind's default model; offline and not cached, it says how to get it.
    bad_input(
        json_command(&run)
            .arg("--caption")
            .arg(fixture("images/init.png")),
        "pallaidium fetch blip-base",
        &run,
    );
}

#[test]
fn a_damaged_enhancer_gguf_exits_2_naming_it() {
    let run = Run::new();
    let good = std::fs::read(fixture("qwen2-tiny-gguf/qwen2-tiny-f32.gguf")).unwrap();
    // Cut short (an interrupted download), and a header claiming 2^62 tensors, which candle's own
    // parser would try to allocate for: both are refused before any model code runs.
    let truncated = run.dir.path().join("cut.gguf");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let mut absurd = good.clone();
    absurd[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let huge = run.dir.path().join("huge.gguf");
    std::fs::write(&huge, &absurd).unwrap();
    for (file, name) in [(&truncated, "cut.gguf"), (&huge, "huge.gguf")] {
        bad_input(
            json_command(&run)
                .args(["--kind", "enhance", "--prompt", "a fox", "--enhancer"])
                .arg(file),
            name,
            &run,
        );
    }
}

#[test]
fn a_job_file_mixes_kinds_with_paths_relative_to_it() {
    let run = Run::new();
    let audio = speech_wav(&run);
    let jobs = run.dir.path().join("jobs.toml");
    std::fs::write(
        &jobs,
        format!(
            "[[job]]\nmodel = {musicgen:?}\nprompt = \"drums\"\nduration = 0.3\nseed = 1\n\n\
             [[job]]\nmodel = {whisper:?}\naudio = \"talk.wav\"\nmax-tokens = 6\n\n\
             [[job]]\nkind = \"caption\"\nmodel = {blip:?}\ncaption = {image:?}\nmax_tokens = 4\n",
            musicgen = fixture("musicgen-tiny"),
            whisper = fixture("whisper-tiny"),
            blip = fixture("blip-tiny"),
            image = fixture("images/init.png"),
        ),
    )
    .unwrap();
    assert!(audio.is_file());
    let events = run_ok(json_command(&run).arg("--jobs").arg(&jobs));
    let done: Vec<&Value> = events.iter().filter(|e| e["event"] == "done").collect();
    assert_eq!(done.len(), 3, "{events:?}");
    let exts: Vec<String> = done
        .iter()
        .map(|d| {
            Path::new(d["outputs"][0].as_str().unwrap())
                .extension()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(exts, ["wav", "srt", "txt"]);
}

#[test]
fn the_memory_plan_of_an_audio_model_counts_its_weights_and_length() {
    let run = Run::new();
    let plan = |duration: &str| -> Value {
        let out = run
            .command()
            .arg("--model")
            .arg(fixture("musicgen-tiny"))
            .args(["--prompt", "x", "--plan", "--duration", duration])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let short = plan("2");
    let long = plan("120");
    assert!(short["fits"].as_bool().unwrap());
    let working = |p: &Value| p["steps"][1]["working_bytes"].as_u64().unwrap();
    assert!(working(&long) > working(&short), "{short} vs {long}");
    assert_eq!(short["steps"][0]["stage"], "load musicgen");
    assert!(run.files().is_empty());
}
