//! The claim and lease logic against a real PostgreSQL server (`PALLAIDIUM_TEST_POSTGRES`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::jobs::run::events::JobEvent;
use crate::jobs::spec::JobSpec;
use crate::jobs::store::ops::{JobStore, Lease};
use crate::jobs::store::state::JobState;

fn spec(prompt: &str) -> JobSpec {
    JobSpec {
        model: "tiny".into(),
        prompt: prompt.into(),
        ..JobSpec::default()
    }
}

/// A URL on a fresh schema, or None when the tests are skipped (see `test_env::url`).
fn database(name: &str) -> Option<String> {
    let url = test_env::url()?;
    Some(test_env::fresh_schema(&url, name).unwrap())
}

fn store(url: &str, lease_ms: u64) -> PgStore {
    PgStore::connect(
        url,
        PgOptions {
            lease: Duration::from_millis(lease_ms),
            poll: Duration::from_millis(50),
        },
    )
    .unwrap()
}

fn runs(url: &str, job: JobId) -> Vec<(i64, String, Option<String>)> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .query(
            "SELECT attempt, worker, outcome FROM pallaidium_runs WHERE job = $1 ORDER BY attempt",
            &[&job.0],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[test]
fn workers_claiming_at_once_take_every_job_exactly_once() {
    let Some(url) = database("claims") else {
        return;
    };
    let mut submitter = store(&url, 60_000);
    let specs: Vec<JobSpec> = (0..60).map(|i| spec(&format!("p{i}"))).collect();
    let ids = submitter.enqueue_all(&specs).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut worker = store(&url, 60_000);
                let mut taken = Vec::new();
                while let Some(record) = worker.claim_next().unwrap() {
                    assert_eq!(record.state, JobState::Running);
                    assert_eq!(record.attempts, 1);
                    worker.mark_done(record.id).unwrap();
                    taken.push(record.id);
                }
                taken
            })
        })
        .collect();
    let taken: Vec<JobId> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let unique: BTreeSet<JobId> = taken.iter().copied().collect();
    assert_eq!(taken.len(), ids.len(), "no job taken twice");
    assert_eq!(unique, ids.iter().copied().collect(), "no job left behind");
    assert_eq!(submitter.unfinished().unwrap(), 0);
    for id in ids {
        assert_eq!(submitter.get(id).unwrap().state, JobState::Done);
        let runs = runs(&url, id);
        assert_eq!(runs.len(), 1, "one run of {id}: {runs:?}");
        assert_eq!(runs[0].2.as_deref(), Some("done"));
    }
}

#[test]
fn a_job_whose_lease_ends_runs_elsewhere_and_the_old_holder_cannot_finish_it() {
    let Some(url) = database("lease") else {
        return;
    };
    let mut dead = store(&url, 300);
    let mut alive = store(&url, 60_000);
    let id = dead.enqueue_all(&[spec("a")]).unwrap()[0];
    assert_eq!(dead.claim_next().unwrap().unwrap().id, id);
    assert!(
        alive.claim_next().unwrap().is_none(),
        "a held lease is not taken"
    );
    std::thread::sleep(Duration::from_millis(600));
    let again = alive.claim_next().unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (id, 2));
    // The first holder wakes up late: it can neither record an output nor finish the job.
    assert!(matches!(
        dead.record_output(id, std::path::Path::new("/nowhere.png")),
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(dead.mark_done(id), Err(StoreError::LeaseLost(_))));
    assert_eq!(dead.heartbeat(id).unwrap(), Lease::Lost);
    alive.mark_done(id).unwrap();
    let record = alive.get(id).unwrap();
    assert_eq!(record.state, JobState::Done);
    assert!(record.outputs.is_empty());
    let runs = runs(&url, id);
    let outcomes: Vec<Option<&str>> = runs.iter().map(|r| r.2.as_deref()).collect();
    assert_eq!(outcomes, vec![Some("lease expired"), Some("done")]);
    assert_ne!(runs[0].1, runs[1].1, "two different workers");
}

#[test]
fn heartbeats_keep_a_lease_and_carry_a_cancel_request() {
    let Some(url) = database("heartbeat") else {
        return;
    };
    let mut holder = store(&url, 400);
    let mut other = store(&url, 400);
    let id = holder.enqueue_all(&[spec("a")]).unwrap()[0];
    holder.claim_next().unwrap().unwrap();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(holder.heartbeat(id).unwrap(), Lease::Held);
        assert!(other.claim_next().unwrap().is_none());
    }
    assert!(other.request_cancel(id).unwrap());
    assert_eq!(holder.heartbeat(id).unwrap(), Lease::CancelRequested);
    holder.mark_cancelled(id).unwrap();
    assert!(!other.request_cancel(id).unwrap(), "not running any more");
    assert_eq!(other.get(id).unwrap().state, JobState::Cancelled);
}

#[test]
fn an_output_renamed_into_place_before_its_worker_died_is_recorded_not_made_again() {
    let Some(url) = database("pending") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("made.png");
    let mut dead = store(&url, 200);
    let ids = dead.enqueue_all(&[spec("a"), spec("b")]).unwrap();
    dead.claim_next().unwrap().unwrap();
    dead.set_pending_output(ids[0], &made).unwrap();
    std::fs::write(&made, b"png").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let mut next = store(&url, 60_000);
    let record = next.claim_next().unwrap().unwrap();
    assert_eq!(record.id, ids[0], "an interrupted job keeps its place");
    assert_eq!(record.outputs, vec![made]);
    // A pending name that never appeared is forgotten.
    let second = next.claim_next().unwrap().unwrap();
    assert_eq!(second.id, ids[1]);
    next.set_pending_output(ids[1], &dir.path().join("never.png"))
        .unwrap();
    next.mark_interrupted(ids[1]).unwrap();
    assert_eq!(next.claim(ids[1]).unwrap().outputs, Vec::<PathBuf>::new());
}

#[test]
fn order_retry_and_events_round_trip() {
    let Some(url) = database("order") else {
        return;
    };
    let mut s = store(&url, 60_000);
    let ids = s.enqueue_all(&[spec("a"), spec("b"), spec("c")]).unwrap();
    s.move_to(ids[2], 0).unwrap();
    assert_eq!(s.pending_ids().unwrap(), vec![ids[2], ids[0], ids[1]]);
    let first = s.claim_next().unwrap().unwrap();
    assert_eq!(first.id, ids[2]);
    s.mark_failed(ids[2], "boom").unwrap();
    assert_eq!(s.get(ids[2]).unwrap().error.as_deref(), Some("boom"));
    assert!(matches!(
        s.mark_done(ids[2]),
        Err(StoreError::InvalidTransition { .. })
    ));
    s.requeue(ids[2]).unwrap();
    assert_eq!(s.pending_ids().unwrap(), vec![ids[0], ids[1], ids[2]]);
    assert_eq!(s.get(ids[2]).unwrap().error, None);
    assert_eq!(s.history(2).unwrap().len(), 2);

    assert_eq!(s.last_event().unwrap(), 0);
    let events = vec![
        JobEvent::Queued {
            job: ids[0],
            position: 0,
        },
        JobEvent::Failed {
            job: ids[1],
            error: "x".into(),
        },
    ];
    s.append_events(&events).unwrap();
    let read = s.events_after(0, 10).unwrap();
    assert_eq!(
        read.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        events
    );
    assert_eq!(s.events_after(read[0].seq, 10).unwrap().len(), 1);
    assert_eq!(s.last_event().unwrap(), read[1].seq);
}

#[test]
fn a_bad_url_or_an_absent_server_is_refused_with_the_fix_and_no_password() {
    let Err(err) = PgStore::connect("mysql://x", PgOptions::default()) else {
        panic!("a non-postgres URL connected");
    };
    assert!(err.to_string().contains("postgres://USER"), "{err}");
    let Err(err) = PgStore::connect(
        "postgres://me:secret@127.0.0.1:1/db?connect_timeout=2",
        PgOptions::default(),
    ) else {
        panic!("connected to port 1");
    };
    let text = err.to_string();
    assert!(
        text.contains("cannot connect") && text.contains("postgres://me@127.0.0.1:1/db"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    assert_eq!(crate::Error::from(err).exit_code(), 2);
}
