//! `pallaidium serve`: checks the flags (a token where other machines can reach it, the body
//! limit), sets up the runner as headless runs do, and hands over to `serve::run`.

use std::sync::Arc;

use crate::cli::{Cli, GlobalArgs, ServeArgs};
use crate::jobs::Store;
use crate::jobs::run::setup::{FetchDisplay, runner_setup};
use crate::jobs::store::{JobStore, PgOptions, PgStore};
use crate::log_ring::LogRing;
use crate::platform::paths::Paths;
use crate::platform::switches::Switches;
use crate::serve::auth::{Token, check_exposure, read_token_file};
use crate::serve::limits::RETAINED_LOG_LINES;

pub fn run(
    cli: &Cli,
    global: &GlobalArgs,
    switches: &Switches,
    args: &ServeArgs,
    logs: Option<Arc<LogRing>>,
) -> anyhow::Result<i32> {
    let logs = logs.unwrap_or_else(|| Arc::new(LogRing::new(RETAINED_LOG_LINES)));
    let secret = args
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    if let Some(secret) = &secret {
        logs.redact(secret);
    }
    let token = secret.as_deref().map(Token::new);
    check_exposure(args.listen, token.is_some())?;
    let max_body = crate::device::memory::parse_size(&args.max_body)
        .map_err(|e| crate::Error::bad_input(format!("--max-body: {e}")))?;
    let paths = Paths::resolve(global.out.as_deref(), switches)?;
    // `--preview`: latent previews while jobs run, for clients (`GET /api/v1/jobs/{id}/preview`).
    let preview_every = if cli.job.preview {
        crate::tui::runner_link::PREVIEW_EVERY
    } else {
        0
    };
    let setup = runner_setup(
        &global.run_settings(),
        &paths,
        switches,
        preview_every,
        FetchDisplay::LogOnly,
    )?;
    let machine = crate::serve::machine::Machine::new(
        Some(crate::tui::sampler::device_probe(
            std::sync::Arc::clone(&setup.selected),
            std::sync::Arc::clone(&setup.platform),
        )),
        format!("{}:{}", setup.selected.kind, setup.selected.ordinal),
        setup.selected.kind,
    );
    // Two connections (the runner's, the API's reads) and, on a shared queue, a third for the
    // events every worker stores there.
    type Queues = (Box<dyn JobStore>, Box<dyn JobStore>, Option<PgStore>);
    let (store, reads, shared_queue): Queues = match &args.queue {
        Some(url) => {
            let connect =
                || PgStore::connect(url, PgOptions::default()).map_err(crate::Error::from);
            let (store, reads) = (connect()?, connect()?);
            tracing::info!(
                queue = store.url(),
                "jobs go to the shared queue; workers run them"
            );
            (Box::new(store), Box::new(reads), Some(connect()?))
        }
        None => (
            Box::new(Store::open(&paths.queue_db).map_err(crate::Error::from)?),
            Box::new(Store::open(&paths.queue_db).map_err(crate::Error::from)?),
            None,
        ),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::serve::run(crate::serve::ServeConfig {
        listen: args.listen,
        token,
        max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
        runner: setup.config,
        store,
        reads,
        shared_queue,
        defaults: cli.job.job.clone(),
        uploads_dir: paths.home.join("uploads"),
        global: global.clone(),
        switches: switches.clone(),
        machine,
        logs,
    }))?;
    Ok(0)
}
