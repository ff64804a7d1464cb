//! The `landfall` command line: `run` the daemon (or a backfill), `validate` pipeline files,
//! ask a running daemon for its `status`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use landfall::daemon;
use landfall::observe::client;

/// Lands Kafka and RabbitMQ streams as Spark-ready Parquet in Hive-style HDFS partitions, exactly once.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Daemon settings file (log level and format, HTTP address, pipelines dir, shutdown deadline).
    /// Each setting can be overridden by a LANDFALL_… environment variable.
    #[arg(long, global = true, default_value = daemon::DEFAULT_SETTINGS)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run pipelines until SIGTERM/SIGINT (or, with --until-caught-up, until the backlog is landed).
    Run {
        /// Pipeline files or directories of them (default: the pipelines dir of the daemon settings).
        pipelines: Vec<PathBuf>,
        /// Backfill: consume until every assigned partition reaches the end offset it had at
        /// start, publish, commit, print a summary and exit 0.
        #[arg(long)]
        until_caught_up: bool,
    },
    /// Parse and check pipeline files, reporting every problem with file:line:column.
    Validate {
        /// Pipeline files or directories of them (default: the pipelines dir of the daemon settings).
        pipelines: Vec<PathBuf>,
        /// Also probe the broker (topic metadata) and the store (path writable).
        #[arg(long)]
        connect: bool,
    },
    /// Ask a running daemon how its pipelines are doing: one line per pipeline (state, events/s,
    /// lag, last commit, rejected) and their problems. Exit 0 when every pipeline is ready,
    /// 1 when not, 2 when the daemon cannot be reached.
    Status {
        /// The daemon's status server [default: from http_listen in the daemon settings when it
        /// names a fixed port, else http://127.0.0.1:9464].
        #[arg(long)]
        url: Option<String>,
        /// Print the status document (GET /api/status) as JSON instead.
        #[arg(long)]
        json: bool,
    },
}

/// Caps glibc's malloc arenas at two. glibc gives busy threads arenas of their own (up to 8 per
/// core) and rarely returns their freed pages; with tokio workers, the consumer thread and
/// spawned commits that was a third of peak RSS on the 200-partition benchmark (395 MB with
/// the default, 273 MB with two arenas, same speed). mimalloc and jemalloc were tried and held
/// more, not less (1.2 GB and 370-450 MB). Must run before other threads start.
fn limit_malloc_arenas() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_ARENA_MAX: i32 = -8;
    // SAFETY: mallopt only sets an allocator parameter; called once, before any thread exists.
    unsafe {
        mallopt(M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let settings = match daemon::load_settings(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run { pipelines, until_caught_up } => daemon::run(&settings, pipelines, until_caught_up),
        Command::Validate { pipelines, connect } => daemon::validate(&settings, pipelines, connect),
        Command::Status { url, json } => {
            let url = url.or_else(|| client::url_for_listen(settings.http_listen));
            Ok(client::run(url.as_deref().unwrap_or(client::DEFAULT_URL), json))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("landfall: {e:#}");
            ExitCode::FAILURE
        }
    }
}
