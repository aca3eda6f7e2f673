//! Load: 50 concurrent clients submit 1,000 jobs to one `pallaidium serve` on loopback, its
//! queue paused so the jobs stay cheap (queued, not run). Every submit must be answered 201 with
//! its own id and nothing may be lost: the server lists exactly the 1,000 jobs, each prompt
//! once, all queued. Latencies are measured, never asserted: with PALLAIDIUM_LOAD_REPORT=PATH
//! the percentiles go to PATH as JSON (BENCHMARKS.md records a run).

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{Value, json};

use crate::serve::Server;

const CLIENTS: usize = 50;
const JOBS_EACH: usize = 20;

/// One client's submits: (prompt, status, job id, seconds).
fn client(server: &Server, client: usize) -> Vec<(String, u16, Option<i64>, f64)> {
    (0..JOBS_EACH)
        .map(|n| {
            let prompt = format!("load c{client} j{n}");
            let body = json!({ "job": { "prompt": prompt, "seed": n } });
            let start = Instant::now();
            let reply = server.post_json("/api/v1/jobs", &body);
            let took = start.elapsed().as_secs_f64();
            let id = reply.json()["id"].as_i64();
            (prompt, reply.status, id, took)
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn fifty_clients_submit_a_thousand_jobs_and_none_is_lost() {
    let server = Server::start(&[], &[]);
    let system = server.get("/api/v1/system").expect(200);
    assert_eq!(system["device"], "cpu:0", "{system}");
    assert!(system["machine"]["ram_total"].as_u64().unwrap() > 0);
    assert_eq!(
        server
            .post_json("/api/v1/queue/pause", &json!({ "paused": true }))
            .expect(200)["paused"],
        true
    );
    assert_eq!(
        server
            .post_json("/api/v1/queue/pause", &json!({ "paused": "yes" }))
            .status,
        422,
        "a pause that is not a boolean is refused"
    );

    let start = Instant::now();
    let answers: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let server = &server;
                scope.spawn(move || client(server, c))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let wall = start.elapsed();

    assert_eq!(answers.len(), CLIENTS * JOBS_EACH, "every submit answered");
    for (prompt, status, id, _) in &answers {
        assert_eq!(*status, 201, "{prompt}: status {status}");
        assert!(id.is_some(), "{prompt}: no id");
    }
    let ids: BTreeSet<i64> = answers.iter().filter_map(|a| a.2).collect();
    assert_eq!(ids.len(), answers.len(), "every job has its own id");

    let listed = server.get("/api/v1/jobs?limit=1000").expect(200);
    let listed = listed["jobs"].as_array().unwrap();
    let listed_ids: BTreeSet<i64> = listed.iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert_eq!(
        listed_ids, ids,
        "the server lists exactly the submitted jobs"
    );
    let prompts: BTreeSet<&str> = listed
        .iter()
        .map(|j| j["spec"]["prompt"].as_str().unwrap())
        .collect();
    let sent: BTreeSet<&str> = answers.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(prompts, sent, "each prompt queued once");
    assert!(
        listed.iter().all(|j| j["state"] == "queued"),
        "a paused queue runs nothing"
    );

    let mut latencies: Vec<f64> = answers.iter().map(|a| a.3).collect();
    latencies.sort_by(f64::total_cmp);
    let report: Value = json!({
        "clients": CLIENTS,
        "jobs": answers.len(),
        "wall_s": wall.as_secs_f64(),
        "submits_per_s": answers.len() as f64 / wall.as_secs_f64().max(1e-9),
        "latency_s": {
            "p50": percentile(&latencies, 50.0),
            "p90": percentile(&latencies, 90.0),
            "p99": percentile(&latencies, 99.0),
            "max": latencies[latencies.len() - 1],
            "mean": latencies.iter().sum::<f64>() / latencies.len() as f64,
        },
        "machine": system["machine"],
    });
    eprintln!("load: {report}");
    if let Some(path) = std::env::var_os("PALLAIDIUM_LOAD_REPORT") {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
}
