//! The daemon: loads settings and pipelines, runs every pipeline on one runtime, turns SIGTERM
//! and SIGINT into a clean shutdown within the deadline, and restarts a pipeline that failed
//! after a pause instead of dying (a long-running service under systemd).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::{self, DaemonConfig, HttpListen, PipelineConfig};
use crate::observe::status::PipelineState;
use crate::observe::{server, watch, Observer, PipelineWatch, ProblemKey};
use crate::pipeline::{self, RunMode, RunOptions, RunSummary, Shutdown};

/// Why the daemon could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Settings(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Where `--config` points by default.
pub const DEFAULT_SETTINGS: &str = "config/landfall.yaml";

/// Reads the daemon settings (file, then LANDFALL_… environment overrides).
pub fn load_settings(path: &std::path::Path) -> Result<DaemonConfig, DaemonError> {
    // The default file is optional (defaults apply); a file named explicitly must exist.
    let path = (path.exists() || path != std::path::Path::new(DEFAULT_SETTINGS)).then_some(path);
    config::load_daemon_config(path).map_err(|e| DaemonError::Settings(e.to_string()))
}

fn init_logging(settings: &DaemonConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&settings.log_level));
    // Colours only for a person at a terminal: a file or the journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if settings.log_format == config::LogFormat::Json { builder.json().try_init() } else { builder.try_init() };
}

fn pipeline_paths(settings: &DaemonConfig, given: Vec<PathBuf>) -> Vec<PathBuf> {
    if given.is_empty() {
        vec![settings.pipelines_dir.clone()]
    } else {
        given
    }
}

/// Loads, checks and resolves pipelines ([`pipeline::Plan`]: parsed once, reused by every
/// restart), printing every problem; `None` if any. Each warning goes to `warn` (printed by
/// `validate`, logged by `run`) and does not stop anything.
fn load_checked(paths: &[PathBuf], warn: impl Fn(&config::ConfigWarning)) -> Option<Vec<Arc<pipeline::Plan>>> {
    let config::Loaded { pipelines: loaded, errors, warnings } = config::load_pipelines(paths);
    warnings.iter().for_each(warn);
    if !errors.is_empty() {
        eprintln!("{errors}");
        return None;
    }
    if loaded.is_empty() {
        eprintln!("no pipeline files found in {paths:?} (expected *.yaml or *.yml)");
        return None;
    }
    let mut plans = Vec::new();
    for (path, cfg) in loaded {
        let name = cfg.name.clone();
        match pipeline::Plan::resolve(cfg) {
            Ok(plan) => plans.push(Arc::new(plan)),
            Err(e) => {
                eprintln!("{}: pipeline {name}: {e}", path.display());
                return None;
            }
        }
    }
    Some(plans)
}

fn runtime() -> Result<tokio::runtime::Runtime, DaemonError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("landfall")
        .build()
        .map_err(DaemonError::Runtime)
}

/// `landfall validate`: exit 0 only if every pipeline parses, checks and (with `connect`) probes.
pub fn validate(settings: &DaemonConfig, pipelines: Vec<PathBuf>, connect: bool) -> Result<ExitCode, DaemonError> {
    let paths = pipeline_paths(settings, pipelines);
    let Some(loaded) = load_checked(&paths, |w| eprintln!("{w}")) else { return Ok(ExitCode::FAILURE) };
    let mut failed = false;
    if connect {
        init_logging(settings);
        let rt = runtime()?;
        for plan in &loaded {
            for problem in rt.block_on(probe(&plan.cfg)) {
                eprintln!("pipeline {}: {problem}", plan.cfg.name);
                failed = true;
            }
        }
    }
    if failed {
        return Ok(ExitCode::FAILURE);
    }
    for plan in &loaded {
        println!("ok: pipeline {}", plan.cfg.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// Live checks: the broker answers for every topic; the table root is writable; the metastore
/// (`sink.hive`) answers.
async fn probe(cfg: &PipelineConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = pipeline::probe_source(cfg).await {
        problems.push(e);
    }
    match pipeline::open_store(cfg) {
        Err(e) => problems.push(format!("sink: {e}")),
        Ok((store, root)) => {
            let probe = format!("{}/_landfall/probe-{}", root.trim_end_matches('/'), uuid::Uuid::new_v4().simple());
            let written = tokio::time::timeout(Duration::from_secs(30), async {
                let w = store.create(&probe).await?;
                w.close().await?;
                store.delete(&probe).await
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("sink: cannot write under {root} on {}: {e}", store.describe())),
                Err(_) => problems.push(format!("sink: {} did not answer within 30 s; is it up?", store.describe())),
            }
        }
    }
    if let Some(hive) = &cfg.sink.hive {
        if let Err(e) = probe_metastore(hive).await {
            problems.push(format!("sink.hive: {e}"));
        }
    }
    problems
}

/// The metastore answers: its database is read (a missing one is fine: `run` creates it).
async fn probe_metastore(hive: &config::HiveConfig) -> Result<(), String> {
    let client =
        crate::metastore::MetastoreClient::new(&hive.metastore, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    client.get_database(&hive.database).await.map(|_| ()).map_err(|e| e.to_string())
}

/// `landfall run`: every pipeline until a signal (or until caught up with `until_caught_up`).
pub fn run(settings: &DaemonConfig, pipelines: Vec<PathBuf>, until_caught_up: bool) -> Result<ExitCode, DaemonError> {
    init_logging(settings);
    let paths = pipeline_paths(settings, pipelines);
    let log = |w: &config::ConfigWarning| {
        let w = &w.0;
        tracing::warn!(file = %w.file.display(), line = w.line, key = %w.key_path, "{}", w.message);
    };
    let Some(plans) = load_checked(&paths, log) else { return Ok(ExitCode::FAILURE) };
    let rt = runtime()?;
    let shutdown = Shutdown::default();
    let mode = if until_caught_up { RunMode::UntilCaughtUp } else { RunMode::Forever };
    let deadline = settings.shutdown_deadline.get();
    let opts = RunOptions { mode, shutdown_deadline: deadline, progress: until_caught_up };
    let observer = Observer::new();
    let code = rt.block_on(async {
        // Before anything that logs: once the status server says it listens, SIGTERM publishes
        // and exits (a signal before this point finds nothing consumed and kills the process).
        let signals = install_signal_handlers();
        let mut listening = String::from("no HTTP server (http_listen: off)");
        if let HttpListen::At(addr) = settings.http_listen {
            match server::start(addr, observer.clone(), shutdown.clone()).await {
                Ok((bound, _)) => listening = format!("status on http://{bound}/"),
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        tokio::spawn(sample_history(observer.clone()));
        if let Some(signals) = signals {
            tokio::spawn(watch_signals(signals, shutdown.clone(), deadline));
        }
        let mut tasks = Vec::new();
        for plan in plans {
            let watch = observer.pipeline(
                &plan.cfg.name,
                plan.cfg.source.kind(),
                &plan.cfg.sink.describe(),
                watch::stuck_after(plan.policy.max_age),
            );
            tasks.push(tokio::spawn(supervise(plan, opts.clone(), shutdown.clone(), watch)));
        }
        // Started, not necessarily connected: a broker that is down at boot must not fail the
        // service's start (it is retried, and /ready says so).
        crate::systemd::notify_ready(&format!("{} pipelines started; {listening}", tasks.len()));
        if let Some(interval) = crate::systemd::watchdog_interval() {
            let observer = observer.clone();
            tokio::spawn(crate::systemd::run_watchdog(interval, move || observer.alive(WEDGED_AFTER)));
        }
        let mut ok = true;
        for task in tasks {
            match task.await {
                Ok(Some(summary)) => {
                    if until_caught_up {
                        print_summary(&summary);
                    }
                    log_summary(&summary);
                }
                Ok(None) => ok = false,
                Err(e) => {
                    tracing::error!(error = %e, "pipeline task panicked");
                    ok = false;
                }
            }
        }
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(code)
}

/// A running pipeline whose consumer loop has not gone round for this long, with no fault
/// reported that explains it, is wedged: the systemd watchdog keep-alives stop. The loop goes
/// round every 100 ms; a reconnect waits up to 45 s, but with its fault reported.
const WEDGED_AFTER: Duration = Duration::from_secs(90);

/// Runs one pipeline; in daemon mode a failed pipeline is restarted after a pause, because the
/// cause (permissions, a deleted topic) is often fixed by an operator without a restart.
async fn supervise(
    plan: Arc<pipeline::Plan>,
    opts: RunOptions,
    shutdown: Shutdown,
    watch: Arc<PipelineWatch>,
) -> Option<RunSummary> {
    let name = plan.cfg.name.clone();
    // 5 s doubling to 5 minutes: an operator's fix is picked up soon, a lasting fault costs
    // one attempt (and one error line) every few minutes.
    let backoff =
        crate::retry::Backoff { initial: Duration::from_secs(5), max: Duration::from_secs(300), give_up_after: None };
    let mut failures = 0;
    // The cause last logged as an error: a pipeline that stops again for the same reason
    // (an expired ticket, a refused login) says so in one `info` line, without the text.
    let mut logged_cause: Option<String> = None;
    loop {
        let started = std::time::Instant::now();
        watch.set_state(PipelineState::Starting);
        let result = pipeline::run(plan.clone(), opts.clone(), shutdown.clone(), watch.clone()).await;
        match result {
            Ok(summary) => {
                watch.set_state(PipelineState::Stopped);
                return Some(summary);
            }
            Err(e) => {
                if started.elapsed() > Duration::from_secs(600) {
                    logged_cause = None; // it ran for a while: a failure is news again
                }
                let text = e.to_string();
                let cause = crate::retry::cause_key(&text);
                if logged_cause.as_deref() == Some(cause.as_str()) {
                    tracing::info!(pipeline = %name, failures = failures + 1, "pipeline stopped again, with the same error as reported above");
                    tracing::debug!(pipeline = %name, error = %text, "pipeline stopped");
                } else {
                    tracing::error!(pipeline = %name, error = crate::retry::first_line(&text), "pipeline stopped");
                    tracing::debug!(pipeline = %name, error = %text, "pipeline stopped (whole error)");
                    logged_cause = Some(cause);
                }
                if opts.mode == RunMode::UntilCaughtUp || shutdown.requested() {
                    watch.set_state(PipelineState::Stopped);
                    return None;
                }
                watch.set_state(PipelineState::Restarting);
                watch.problem(ProblemKey::Pipeline, Some(format!("stopped, restarting: {e}")));
                // A pipeline that ran for a while before failing starts its backoff over.
                if started.elapsed() > Duration::from_secs(600) {
                    failures = 0;
                }
                failures += 1;
                let pause = backoff.delay(failures);
                tracing::info!(pipeline = %name, seconds = pause.as_secs(), "restarting the pipeline after a pause");
                if shutdown.sleep(pause).await {
                    // Stopped while waiting to restart: nothing was consumed that is not
                    // published, and the failure was reported; a stop is not a failure.
                    watch.set_state(PipelineState::Stopped);
                    return Some(RunSummary { pipeline: name, ..RunSummary::default() });
                }
            }
        }
    }
}

/// Adds a point to every pipeline's history (the status page's charts).
async fn sample_history(observer: Arc<Observer>) {
    let mut every = tokio::time::interval(watch::HISTORY_INTERVAL);
    every.tick().await;
    loop {
        every.tick().await;
        observer.sample();
    }
}

/// SIGTERM and SIGINT streams; `None` (logged) when they cannot be installed.
fn install_signal_handlers() -> Option<(Signal, Signal)> {
    let (Ok(term), Ok(int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; SIGTERM will kill without publishing");
        return None;
    };
    Some((term, int))
}

async fn watch_signals((mut term, mut int): (Signal, Signal), shutdown: Shutdown, deadline: Duration) {
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!(deadline_s = deadline.as_secs_f64(), "shutdown requested: publishing what is buffered");
    crate::systemd::notify_stopping();
    shutdown.request();
    // Retries stop a little before the deadline, so the orderly exit fits inside it; whatever
    // still hangs then (a hung NameNode's RPC, a broker that does not answer) is cut off at the
    // deadline. Exiting mid-commit is safe: the commit protocol survives kill -9.
    let margin = (deadline / 4).min(Duration::from_secs(2));
    let deadline_passed = async {
        tokio::time::sleep(deadline - margin).await;
        tracing::warn!(margin_s = margin.as_secs_f64(), "shutdown deadline near: no more retries");
        shutdown.expire();
        tokio::time::sleep(margin).await;
    };
    tokio::select! {
        _ = term.recv() => tracing::warn!("second signal: exiting now; unpublished data is consumed again at the next start"),
        _ = int.recv() => tracing::warn!("second signal: exiting now; unpublished data is consumed again at the next start"),
        () = deadline_passed => {
            tracing::error!(deadline_s = deadline.as_secs_f64(), "shutdown deadline passed with work unfinished; exiting (unpublished data is consumed again at the next start; raise shutdown_deadline if this repeats)");
            std::process::exit(1);
        }
    }
    std::process::exit(130);
}

fn log_summary(s: &RunSummary) {
    tracing::info!(
        pipeline = %s.pipeline,
        events = s.events,
        rejected = s.rejected,
        duplicates = s.duplicates,
        without_message_id = s.without_message_id,
        source_bytes = s.source_bytes,
        files = s.files,
        parquet_bytes = s.parquet_bytes,
        seconds = format!("{:.1}", s.seconds),
        events_per_s = format!("{:.0}", s.events as f64 / s.seconds.max(0.001)),
        "pipeline finished"
    );
}

fn print_summary(s: &RunSummary) {
    if s.duplicates > 0 || s.without_message_id > 0 {
        println!(
            "{}: {} redelivered duplicates dropped by message_id, {} messages without message_id (at-least-once)",
            s.pipeline, s.duplicates, s.without_message_id
        );
    }
    println!(
        "{}: {} events ({} rejected), {:.1} MB read, {} files ({:.1} MB Parquet), {:.1} s, {:.0} events/s",
        s.pipeline,
        s.events,
        s.rejected,
        s.source_bytes as f64 / 1e6,
        s.files,
        s.parquet_bytes as f64 / 1e6,
        s.seconds,
        s.events as f64 / s.seconds.max(0.001)
    );
}
