use super::*;

fn spec(prompt: &str) -> JobSpec {
    JobSpec {
        model: "tiny".into(),
        prompt: prompt.into(),
        ..JobSpec::default()
    }
}

#[test]
fn migrations_run_from_empty_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/queue.db");
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let id = store.enqueue(&spec("a")).unwrap();
    assert_eq!(store.get(id).unwrap().state, JobState::Queued);
}

#[test]
fn processes_starting_together_on_a_fresh_database_all_open_and_enqueue() {
    // Threads with their own connections lock the file as separate processes do.
    const OPENERS: usize = 8;
    for round in 0..25 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let start = std::sync::Arc::new(std::sync::Barrier::new(OPENERS));
        let threads: Vec<_> = (0..OPENERS)
            .map(|i| {
                let (path, start) = (path.clone(), std::sync::Arc::clone(&start));
                std::thread::spawn(move || -> StoreResult<usize> {
                    start.wait();
                    let mut store = Store::open(&path)?;
                    let ids =
                        store.enqueue_all(&[spec(&format!("{i}a")), spec(&format!("{i}b"))])?;
                    store.history(100)?;
                    Ok(ids.len())
                })
            })
            .collect();
        for thread in threads {
            let queued = thread.join().unwrap();
            assert!(matches!(queued, Ok(2)), "round {round}: {queued:?}");
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.pending().unwrap().len(), 2 * OPENERS, "round {round}");
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    drop(Store::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn transitions_are_validated() {
    let mut store = Store::open_in_memory().unwrap();
    let id = store.enqueue(&spec("a")).unwrap();
    // queued -> done skips running
    let err = store.mark_done(id).unwrap_err();
    assert!(matches!(
        err,
        StoreError::InvalidTransition {
            from: JobState::Queued,
            to: JobState::Done,
            ..
        }
    ));
    let rec = store.claim(id).unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Running, 1));
    assert!(rec.started_ms.is_some());
    store.mark_failed(id, "boom").unwrap();
    let rec = store.get(id).unwrap();
    assert_eq!(
        (rec.state, rec.error.as_deref()),
        (JobState::Failed, Some("boom"))
    );
    // failed cannot run without a retry
    assert!(store.claim(id).is_err());
    store.requeue(id).unwrap();
    let rec = store.claim(id).unwrap();
    assert_eq!((rec.attempts, rec.error), (2, None));
    store.mark_done(id).unwrap();
    assert!(store.requeue(id).is_err());
    assert!(store.mark_cancelled(id).is_err());
    assert!(matches!(
        store.get(JobId(999)),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn running_rows_of_a_dead_process_become_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let (dead, alive) = {
        let mut store = Store::open(&path).unwrap();
        let dead = store.enqueue(&spec("dead")).unwrap();
        let alive = store.enqueue(&spec("alive")).unwrap();
        store.claim(dead).unwrap();
        store.claim(alive).unwrap();
        // A pid that cannot exist stands for a killed process.
        store
            .sql(|c| {
                c.execute(
                    "UPDATE jobs SET owner_pid = 2147483600 WHERE id = ?1",
                    [dead.0],
                )
            })
            .unwrap();
        (dead, alive)
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get(dead).unwrap().state, JobState::Interrupted);
    // Our own process is alive: its running job is left alone.
    assert_eq!(store.get(alive).unwrap().state, JobState::Running);
    let pending: Vec<JobId> = store.pending().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(pending, vec![dead]);
}

#[test]
fn a_pending_output_that_reached_disk_is_recorded_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let done_file = dir.path().join("made.png");
    let missing_file = dir.path().join("never.png");
    std::fs::write(&done_file, b"png").unwrap();
    let (a, b) = {
        let mut store = Store::open(&path).unwrap();
        let a = store.enqueue(&spec("a")).unwrap();
        let b = store.enqueue(&spec("b")).unwrap();
        store.claim(a).unwrap();
        store.claim(b).unwrap();
        store.set_pending_output(a, &done_file).unwrap();
        store.set_pending_output(b, &missing_file).unwrap();
        store.mark_interrupted(a).unwrap();
        store.mark_interrupted(b).unwrap();
        (a, b)
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get(a).unwrap().outputs, vec![done_file]);
    assert!(store.get(b).unwrap().outputs.is_empty());
}

#[test]
fn queue_order_follows_position_and_moves() {
    let mut store = Store::open_in_memory().unwrap();
    let ids = store
        .enqueue_all(&[spec("a"), spec("b"), spec("c")])
        .unwrap();
    let order = |s: &Store| -> Vec<String> {
        s.pending()
            .unwrap()
            .into_iter()
            .map(|r| r.spec.prompt)
            .collect()
    };
    assert_eq!(order(&store), ["a", "b", "c"]);
    store.move_to(ids[2], 0).unwrap();
    assert_eq!(order(&store), ["c", "a", "b"]);
    store.move_to(ids[2], 99).unwrap();
    assert_eq!(order(&store), ["a", "b", "c"]);
    // A cancelled job leaves the queue; a retry puts it at the end.
    store.mark_cancelled(ids[0]).unwrap();
    assert_eq!(order(&store), ["b", "c"]);
    assert!(store.move_to(ids[0], 0).is_err());
    store.requeue(ids[0]).unwrap();
    assert_eq!(order(&store), ["b", "c", "a"]);
}

#[test]
fn outputs_are_recorded_once_and_history_is_newest_first() {
    let mut store = Store::open_in_memory().unwrap();
    let a = store.enqueue(&spec("a")).unwrap();
    let b = store.enqueue(&spec("b")).unwrap();
    store.record_output(a, Path::new("x.png")).unwrap();
    store.record_output(a, Path::new("x.png")).unwrap();
    store.record_output(a, Path::new("y.png")).unwrap();
    assert_eq!(
        store.get(a).unwrap().outputs,
        vec![PathBuf::from("x.png"), PathBuf::from("y.png")]
    );
    let history: Vec<JobId> = store.history(10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(history, vec![b, a]);
    let mut changed = spec("a2");
    changed.seed = Some(5);
    store.update_spec(a, &changed).unwrap();
    assert_eq!(store.get(a).unwrap().spec.seed, Some(5));
}

/// A queue database written by the release before `vocab` (f9eb111: clap's enums stored in the
/// spec, every field side by side), from tests/fixtures/queue/capture.toml, and its spec column
/// as that release wrote it. Opening it migrates each row to the family shape; every value reads
/// back as that release stored it.
#[test]
fn rows_written_by_the_previous_release_load_unchanged() {
    use crate::jobs::spec::{MusicParams, Params, TranscribeParams};
    use crate::vocab::{AttentionSlicing, DtypeChoice, JobKind, ResidencyChoice, Toggle};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/queue");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    std::fs::copy(fixtures.join("f9eb111.sqlite3"), &path).unwrap();
    let store = Store::open(&path).unwrap();
    let mut records = store.history(100).unwrap();
    records.sort_by_key(|r| r.id);
    let captured = std::fs::read_to_string(fixtures.join("f9eb111-specs.jsonl")).unwrap();
    let lines: Vec<&str> = captured.lines().collect();
    assert_eq!(records.len(), lines.len());
    // The rows were rewritten in today's shape, each to the spec its flat line reads as.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let mut stmt = conn.prepare("SELECT spec FROM jobs ORDER BY id").unwrap();
    let raw: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for ((record, line), raw) in records.iter().zip(&lines).zip(&raw) {
        assert_eq!(record.state, JobState::Done, "{line}");
        assert!(raw.contains("\"params\":{"), "{raw}");
        let flat: JobSpec = serde_json::from_str(line).unwrap();
        assert_eq!(record.spec, flat, "{line}");
        assert_eq!(serde_json::to_string(&record.spec).unwrap(), *raw);
        // Each flat line's values all survive: its fields, re-read from the spec, match.
        let asked = record.spec.to_overrides();
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(asked.prompt.as_deref(), line["prompt"].as_str());
        assert_eq!(asked.seed, line["seed"].as_u64());
        if record.spec.kind.makes_images() {
            assert_eq!(asked.steps.map(u64::from), line["steps"].as_u64());
            assert_eq!(asked.strength, line["strength"].as_f64());
            assert_eq!(
                asked.init_image.map(|p| p.display().to_string()).as_deref(),
                line["init_image"].as_str()
            );
        }
    }
    // Opening it again changes nothing.
    drop(store);
    let again = Store::open(&path).unwrap();
    assert_eq!(again.get(records[0].id).unwrap().spec, records[0].spec);
    let kinds: Vec<JobKind> = records.iter().map(|r| r.spec.kind).collect();
    assert_eq!(
        kinds,
        [
            JobKind::Txt2img,
            JobKind::Img2img,
            JobKind::Inpaint,
            JobKind::Stt,
            JobKind::Music
        ]
    );
    let first = records[0].spec.image().unwrap();
    assert_eq!(
        (
            records[0].spec.dtype,
            first.vae_tiling,
            first.residency,
            first.attention_slicing
        ),
        (
            Some(DtypeChoice::F32),
            Some(Toggle::On),
            Some(ResidencyChoice::Staged),
            Some(AttentionSlicing::Auto)
        )
    );
    let second = records[1].spec.image().unwrap();
    assert_eq!(
        (records[1].spec.dtype, second.vae_tiling, second.residency),
        (
            Some(DtypeChoice::Auto),
            Some(Toggle::Off),
            Some(ResidencyChoice::Auto)
        )
    );
    let third = records[2].spec.image().unwrap();
    assert_eq!(
        (third.vae_tiling, third.residency, third.attention_slicing),
        (
            Some(Toggle::Auto),
            Some(ResidencyChoice::Resident),
            Some(AttentionSlicing::Off)
        )
    );
    let Params::Transcribe(TranscribeParams { audio, .. }) = &records[3].spec.params else {
        panic!("{:?}", records[3].spec)
    };
    assert!(
        audio.ends_with("speech.wav") || audio.extension().is_some(),
        "{audio:?}"
    );
    assert!(matches!(
        records[4].spec.params,
        Params::Music(MusicParams { .. })
    ));
}
