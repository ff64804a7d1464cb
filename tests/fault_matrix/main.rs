//! The seeded fault matrix (issue 11): each fault class a long-running daemon meets, run with a
//! seed that picks its timing, on the real lab services. Every run sends a known set of events
//! (0.5 % of them poison), injects its fault while they land, ends the fault, and then compares
//! the whole input with the whole output:
//! - **lost**: good events whose id no visible file holds;
//! - **duplicated**: rows beyond one per id (and ids that were never sent);
//! - **partial**: visible files (not `_`/`.`-prefixed, Spark's rule) that do not read back as
//!   Parquet;
//! - the quarantine holds exactly the poison (and refused) messages;
//! - every daemon still running answers `/ready` 200, and stops cleanly on SIGTERM;
//! - **recovery**: seconds from the end of the fault until every event is visible.
//!
//! Then one Spark session reads every table of the matrix and must count what our reader
//! counted. The test fails on any lost, duplicated or partial event, or any other finding.
//!
//! One command runs it: `./bootstrap.sh faults [SEEDS] [CLASS,…]` (docs/reliability.md).
//! Settings (environment; `LF_*`, because the daemon reads `LANDFALL_*` as its own settings):
//! - `LF_FAULT_SEEDS`: runs per class (default 1: what CI runs);
//! - `LF_FAULT_SEED`: the first seed (default: from the clock; printed, so a failing
//!   run can be repeated with the same timings);
//! - `LF_FAULT_EVENTS`: events per run (default 10,000);
//! - `LF_FAULT_CLASSES`: a comma-separated subset of the class names (`classes.rs`);
//! - `LF_FAULT_REPORT`: also write the table (Markdown) to this file.
//!
//! Every outcome is appended to `target/fault-matrix/outcomes.jsonl`.

mod classes;
#[path = "../common/mod.rs"]
mod common;
mod run;

use std::collections::BTreeSet;
use std::time::Instant;

use classes::{classes, Class};
use common::*;
use run::Run;

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_class_lands_every_event_exactly_once() {
    // Every service must be up; each class then takes its own turn on the lab: alone for the
    // classes that kill, freeze or restart a service, shared for the rest.
    drop((require_kafka(), require_rabbitmq(), require_hdfs()));
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let seeds: u64 = env("LF_FAULT_SEEDS").map_or(1, |v| v.parse().expect("LF_FAULT_SEEDS: a number"));
    let first: u64 = env("LF_FAULT_SEED").map_or_else(
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 100_000,
        |v| v.parse().expect("LF_FAULT_SEED: a number"),
    );
    let events: u64 = env("LF_FAULT_EVENTS").map_or(10_000, |v| v.parse().expect("LF_FAULT_EVENTS"));
    let wanted: Option<BTreeSet<String>> = env("LF_FAULT_CLASSES").map(|v| v.split(',').map(str::to_string).collect());
    let all = classes();
    if let Some(wanted) = &wanted {
        let known: BTreeSet<String> = all.iter().map(|c| c.name.to_string()).collect();
        let unknown: Vec<&String> = wanted.difference(&known).collect();
        assert!(unknown.is_empty(), "LF_FAULT_CLASSES: unknown {unknown:?}; known: {known:?}");
    }
    eprintln!("fault matrix: {seeds} seed(s) per class from seed {first}, {events} events per run");
    let outcomes_file = repo_root().join("target/fault-matrix/outcomes.jsonl");
    std::fs::create_dir_all(outcomes_file.parent().unwrap()).unwrap();
    let mut outcomes = Vec::new();
    for class in all.iter().filter(|c| wanted.as_ref().is_none_or(|w| w.contains(c.name))) {
        for seed in first..first + seeds {
            let _lab = if class.alone { lab_alone() } else { lab_shared() };
            let o = run_class(class, seed, events).await;
            eprintln!("{}", serde_json::to_string(&o).unwrap());
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&outcomes_file).unwrap();
            use std::io::Write;
            writeln!(f, "{}", serde_json::to_string(&o).unwrap()).unwrap();
            outcomes.push(o);
        }
    }
    spark_agrees(&mut outcomes, &lab_shared());
    let table = report(&all, &outcomes, seeds, first, events);
    eprintln!("\n{table}");
    if let Some(path) = env("LF_FAULT_REPORT") {
        write_report(&path, &table);
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.findings.is_empty())
        .map(|o| format!("{} seed {}: {}", o.class, o.seed, o.findings.join("; ")))
        .collect();
    assert!(failed.is_empty(), "{} of {} runs failed:\n{}", failed.len(), outcomes.len(), failed.join("\n"));
}

/// What one seeded run of a class found.
#[derive(serde::Serialize)]
struct Outcome {
    class: &'static str,
    seed: u64,
    events: u64,
    lost: u64,
    duplicated: u64,
    partial: u64,
    /// Seconds from the end of the fault until every event was visible.
    recovery_s: f64,
    /// Everything else that was wrong (empty when the run passed).
    findings: Vec<String>,
    /// Seconds from each kill or freeze of a group member until every partition published
    /// again (classes that measure it), and how many such waits found no new events to land.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    takeover_s: Vec<f64>,
    #[serde(skip_serializing_if = "is_zero")]
    takeover_missed: u64,
    table: String,
    /// What our reader counted, for Spark to agree with.
    rows: u64,
    distinct: u64,
    rejected: u64,
    secs: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

async fn run_class(class: &Class, seed: u64, events: u64) -> Outcome {
    let started = Instant::now();
    let events = events * class.scale;
    let run = Run::new(class.name, seed, events);
    let table = run.table.clone();
    // Each run in its own task: a panic (a lab command that failed) is a finding, not the end
    // of the matrix; the fault guards are dropped during the unwind.
    let result = tokio::spawn((class.run)(run)).await;
    let mut o = Outcome {
        class: class.name,
        seed,
        events,
        lost: 0,
        duplicated: 0,
        partial: 0,
        recovery_s: 0.0,
        findings: Vec::new(),
        takeover_s: Vec::new(),
        takeover_missed: 0,
        table,
        rows: 0,
        distinct: 0,
        rejected: 0,
        secs: 0.0,
    };
    match result {
        Err(e) => o.findings.push(format!("panicked: {}", panic_text(e))),
        Ok(Err(e)) => o.findings.push(e),
        Ok(Ok(mut run)) => run.judge(&mut o).await,
    }
    o.secs = started.elapsed().as_secs_f64();
    o
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

/// One Spark session reads every table; it must count what our reader counted.
fn spark_agrees(outcomes: &mut [Outcome], _lab: &LabTurn) {
    let urls: Vec<String> = outcomes.iter().map(|o| format!("{HDFS_URL}{}", o.table)).collect();
    let args: Vec<&str> = urls.iter().map(String::as_str).collect();
    let out = run_spark("count_tables.py", &args);
    let line = out.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no RESULT:\n{out}"));
    let seen: serde_json::Value = serde_json::from_str(line).unwrap();
    for (o, url) in outcomes.iter_mut().zip(&urls) {
        let v = &seen[url];
        if let Some(e) = v.get("error") {
            o.findings.push(format!("Spark cannot read the table: {e}"));
            continue;
        }
        let spark = (v["count"].as_u64(), v["distinct_ids"].as_u64(), v["rejected"].as_u64());
        if spark != (Some(o.rows), Some(o.distinct), Some(o.rejected)) {
            o.findings.push(format!(
                "Spark counts {spark:?} (rows, distinct ids, quarantined), our reader {:?}",
                (o.rows, o.distinct, o.rejected)
            ));
        }
    }
}

/// Puts `table` between the `<!-- fault-matrix:begin -->` and `<!-- fault-matrix:end -->`
/// lines of the page at `path` (the page's prose stays), or writes it alone where there are none.
fn write_report(path: &str, table: &str) {
    const BEGIN: &str = "<!-- fault-matrix:begin -->";
    const END: &str = "<!-- fault-matrix:end -->";
    let page = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (page.find(BEGIN), page.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{BEGIN}\n{table}{}", &page[..b], &page[e..]),
        _ => table.to_string(),
    };
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// The Markdown table of the matrix: per class, runs and the sums and worst case over them.
fn report(all: &[Class], outcomes: &[Outcome], seeds: u64, first: u64, events: u64) -> String {
    let mut s = String::new();
    let scaled: Vec<String> =
        all.iter().filter(|c| c.scale > 1).map(|c| format!("{} for {}", events * c.scale, c.name)).collect();
    let scaled = if scaled.is_empty() { String::new() } else { format!(" ({})", scaled.join(", ")) };
    s.push_str(&format!(
        "Seeds {first}..{} ({seeds} per class), {events} events per run{scaled} (0.5 % poison). Each run \
         compares the whole input with the whole output; Spark reads every table.\n\n",
        first + seeds - 1
    ));
    s.push_str(
        "| Class | Fault | Runs | Failed | Lost | Duplicated | Partial | Max recovery (s) | Takeover p50 / max (s) |\n",
    );
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for class in all {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.class == class.name).collect();
        if mine.is_empty() {
            continue;
        }
        let sum = |f: fn(&Outcome) -> u64| mine.iter().map(|o| f(o)).sum::<u64>();
        let worst = mine.iter().map(|o| o.recovery_s).fold(0.0, f64::max);
        let mut takeovers: Vec<f64> = mine.iter().flat_map(|o| o.takeover_s.iter().copied()).collect();
        takeovers.sort_by(f64::total_cmp);
        let missed = sum(|o| o.takeover_missed);
        let missed = if missed > 0 { format!(", {missed} not within 60 s") } else { String::new() };
        let takeover = match takeovers.len() {
            0 if missed.is_empty() => "–".to_string(),
            0 => format!("none{missed}"),
            k => format!("{:.1} / {:.1} ({k} takeovers{missed})", takeovers[k / 2], takeovers[k - 1]),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            class.name,
            class.what,
            mine.len(),
            mine.iter().filter(|o| !o.findings.is_empty()).count(),
            sum(|o| o.lost),
            sum(|o| o.duplicated),
            sum(|o| o.partial),
            worst,
            takeover
        ));
    }
    s
}
