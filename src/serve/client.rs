//! `pallaidium --headless --host URL`: the jobs the flags describe run on a remote `pallaidium
//! serve`. Each is submitted (input files uploaded), its events are shown as a local run shows
//! them (JSON lines or a progress bar; `done` lists the downloaded files), and its outputs are
//! written into `--out` as a local run writes them. The jobs never depend on this client: if it
//! goes away they finish on the server.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::cli::Cli;
use crate::headless::progress::HumanView;
use crate::jobs::JobEvent;
use crate::jobs::output::OutputWriter;
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::serve::remote::Remote;

pub fn run(cli: &Cli, switches: &Switches, host: &str) -> anyhow::Result<i32> {
    if cli.batch.resume || cli.batch.history {
        return Err(crate::Error::bad_input(
            "--resume and --history read this machine's queue; with --host the server keeps it \
             (GET /api/v1/jobs)",
        )
        .into());
    }
    let specs = crate::headless::specs::collect(cli)?;
    let token = cli
        .remote
        .token_file
        .as_deref()
        .map(crate::serve::auth::read_token_file)
        .transpose()?;
    let paths = Paths::resolve(cli.global.out.as_deref(), switches)?;
    let remote = Remote::new(host, token)?;
    // All or nothing, as a local batch: one refused job cancels the ones already queued.
    let mut ids = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        match remote.submit(spec) {
            Ok(id) => ids.push(id),
            Err(err) => {
                ids.iter().for_each(|&id| remote.cancel(id));
                return Err(err.in_batch(i, specs.len()).into());
            }
        }
    }

    let json = cli.job.json || !std::io::stdout().is_terminal();
    let mut view = HumanView::new(std::io::stderr().is_terminal());
    let writer = OutputWriter::new(&paths.outputs);
    let (mut failed, mut cancelled) = (false, false);
    for id in ids {
        let end = remote.follow(id, |event| {
            if !event.is_terminal() {
                crate::headless::show(event, json, false, &mut view);
            }
        })?;
        let shown = match end {
            JobEvent::Done {
                job,
                outputs,
                timings,
                peak_bytes,
                device_peak_bytes,
                text,
                duration_s,
            } => {
                let local = download_all(&remote, &writer, id, outputs.len())?;
                JobEvent::Done {
                    job,
                    outputs: local,
                    timings,
                    peak_bytes,
                    device_peak_bytes,
                    text,
                    duration_s,
                }
            }
            other => {
                failed |= matches!(other, JobEvent::Failed { .. });
                cancelled |= matches!(other, JobEvent::Cancelled { .. });
                other
            }
        };
        crate::headless::show(&shown, json, cli.job.preview, &mut view);
    }
    Ok(if cancelled { 130 } else { i32::from(failed) })
}

/// Writes each output of `job` into `--out/<date>/` under the server's name (a `(N)` suffix on
/// collision), returning the local paths.
pub(crate) fn download_all(
    remote: &Remote,
    writer: &OutputWriter,
    job: i64,
    count: usize,
) -> crate::Result<Vec<PathBuf>> {
    (0..count)
        .map(|index| {
            let (name, bytes) = remote.download(job, index)?;
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || "-_.()".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let (stem, ext) = match safe.rsplit_once('.') {
                Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => {
                    (stem.to_owned(), ext.to_owned())
                }
                _ => (format!("job{job}-{index}"), "bin".to_owned()),
            };
            writer.write_bytes(&stem, &ext, &bytes, |_| Ok(()))
        })
        .collect()
}
