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
//! One command runs it: `./bootstrap.sh faults [SEEDS] [CLASS,…]` (README, "Fault matrix").
//! Settings (environment; `LF_*`, because the daemon reads `LANDFALL_*` as its own settings):
//! - `LF_FAULT_SEEDS`: runs per class (default 1: what CI runs);
//! - `LF_FAULT_SEED`: the first seed (default: from the clock; printed, so a failing
//!   run can be repeated with the same timings);
//! - `LF_FAULT_EVENTS`: events per run (default 10,000);
//! - `LF_FAULT_CLASSES`: a comma-separated subset of the class names below;
//! - `LF_FAULT_REPORT`: also write the table (Markdown) to this file.
//!
//! Every outcome is appended to `target/fault-matrix/outcomes.jsonl`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A fault class: its name and the run it makes for a seed.
struct Class {
    name: &'static str,
    what: &'static str,
    run: fn(Run) -> futures::future::BoxFuture<'static, Result<Run, String>>,
}

/// Every class, in the order they run.
fn classes() -> Vec<Class> {
    macro_rules! class {
        ($name:literal, $what:literal, $f:ident) => {
            Class { name: $name, what: $what, run: |r| Box::pin($f(r)) }
        };
    }
    vec![
        class!("kill9", "daemon `kill -9` at a random moment, restarted", kill9),
        class!("commit-steps", "daemon aborted at each commit step in turn (seeded order and count)", commit_steps),
        class!("sigterm", "daemon stopped (SIGTERM) at a random moment, restarted", sigterm),
        class!("zombie", "daemon frozen (SIGSTOP) past its session, a second member takes over, then it wakes", zombie),
        class!("broker-kill", "Kafka broker killed, started again", broker_kill),
        class!("broker-hung", "Kafka broker frozen (SIGSTOP: sockets open, nothing answers)", broker_hung),
        class!("namenode-kill", "NameNode killed, started again", namenode_kill),
        class!("namenode-hung", "NameNode frozen (SIGSTOP)", namenode_hung),
        class!("datanode-kill", "DataNode killed, started again", datanode_kill),
        class!("safe-mode", "HDFS safe mode entered by hand, left later", safe_mode),
        class!("quota", "HDFS space quota of the table exhausted, then lifted", quota),
        class!("permission", "the table's `_landfall/` made read-only for the pipeline's user, then fixed", permission),
        class!("clock-skew", "host clock off the NameNode's (faketime), the sign flipped at a restart", clock_skew),
        class!("hostile-values", "hostile partition values mixed in, `kill -9` mid-run", hostile_values),
        class!(
            "position-lost",
            "topic recreated shorter than the committed position (`on_position_lost: earliest`)",
            position_lost
        ),
        class!("rabbitmq-restart", "RabbitMQ broker killed, started again", rabbitmq_restart),
        class!(
            "crash-before-ack",
            "RabbitMQ: daemon aborted between a publish and its acknowledgement",
            crash_before_ack
        ),
        class!(
            "storm-topic",
            "rebalance storm: 3 instances on a 6-partition topic, seeded restarts and kills",
            storm_topic
        ),
        class!("storm-queue", "rebalance storm: 3 instances on one queue, seeded restarts and kills", storm_queue),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_class_lands_every_event_exactly_once() {
    require_kafka();
    require_rabbitmq();
    require_hdfs();
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
            let o = run_class(class, seed, events).await;
            eprintln!("{}", serde_json::to_string(&o).unwrap());
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&outcomes_file).unwrap();
            use std::io::Write;
            writeln!(f, "{}", serde_json::to_string(&o).unwrap()).unwrap();
            outcomes.push(o);
        }
    }
    spark_agrees(&mut outcomes);
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
    table: String,
    /// What our reader counted, for Spark to agree with.
    rows: u64,
    distinct: u64,
    rejected: u64,
    secs: f64,
}

async fn run_class(class: &Class, seed: u64, events: u64) -> Outcome {
    let started = Instant::now();
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

/// SplitMix64: small, seedable, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// A duration in `lo..=hi` seconds, in steps of 100 ms.
    fn secs(&mut self, lo: f64, hi: f64) -> Duration {
        Duration::from_millis(self.between((lo * 1000.0) as u64 / 100, (hi * 1000.0) as u64 / 100) * 100)
    }
}

/// Where a run's events come from.
#[derive(Clone)]
enum Source {
    Topic { name: String, partitions: i32 },
    Queue { name: String },
}

/// A running daemon of a run.
struct Instance {
    child: Child,
    log: PathBuf,
}

/// One seeded run: its source, table, pipeline, messages and daemons.
struct Run {
    rng: Rng,
    source: Option<Source>,
    table: String,
    pipeline: Option<PathBuf>,
    _pipeline_dir: Option<tempfile::TempDir>,
    logs: tempfile::TempDir,
    instances: Vec<Option<Instance>>,
    spawned: usize,
    /// Every message, by index; `expected` the ids that must land, `refused` how many must
    /// be quarantined.
    messages: Vec<Vec<u8>>,
    expected: BTreeSet<String>,
    refused: u64,
    /// When the fault ended (recovery is measured from here).
    healed: Option<Instant>,
    /// How many lines of a daemon's log a finding quotes.
    log_tail_lines: usize,
}

impl Run {
    fn new(class: &'static str, seed: u64, events: u64) -> Run {
        let mut rng = Rng(seed ^ fnv(class));
        let mut messages = Vec::with_capacity(events as usize);
        let mut expected = BTreeSet::new();
        let mut refused = 0;
        for i in 0..events {
            if rng.between(0, 199) == 0 {
                // Poison: not JSON. Quarantined with its source position, never dropped.
                messages.push(format!("{{\"id\":\"evt-{i:09}\", not json").into_bytes());
                refused += 1;
            } else {
                messages.push(event(i, events).into_bytes());
                expected.insert(format!("evt-{i:09}"));
            }
        }
        let table = format!("/landing-test/{}", unique(&format!("fm-{class}")));
        Run {
            rng,
            source: None,
            table,
            pipeline: None,
            _pipeline_dir: None,
            logs: tempfile::tempdir().unwrap(),
            instances: Vec::new(),
            spawned: 0,
            messages,
            expected,
            refused,
            healed: None,
            log_tail_lines: 60,
        }
    }

    fn name(&self) -> String {
        self.table.rsplit('/').next().unwrap().to_string()
    }

    /// A topic named after the table, and the pipeline on it (`customise` adjusts the YAML).
    async fn topic(&mut self, partitions: i32, customise: impl FnOnce(PipelineYaml) -> PipelineYaml) {
        let name = self.name();
        create_topic(&name, partitions).await;
        // 10 s, not Kafka's 45 s: a member killed with `kill -9` holds its partitions until its
        // session times out (measured: 46 s of recovery with the default).
        let kafka = PipelineYaml::kafka(&name.replace('-', "_"), &name).session_timeout("10s");
        let yaml = customise(kafka.roll_max_age("1s").sink_hdfs(&self.table));
        self.pipeline_from(yaml);
        self.source = Some(Source::Topic { name, partitions });
    }

    /// A queue named after the table (quorum or classic, seeded), and the pipeline on it.
    async fn queue(&mut self, customise: impl FnOnce(PipelineYaml) -> PipelineYaml) {
        let name = self.name();
        let kind = if self.rng.between(0, 1) == 0 { "quorum" } else { "classic" };
        declare_queue(&name, kind).await;
        let yaml = customise(
            PipelineYaml::rabbitmq(&name.replace('-', "_"), &name, kind).roll_max_age("1s").sink_hdfs(&self.table),
        );
        self.pipeline_from(yaml);
        self.source = Some(Source::Queue { name });
    }

    fn pipeline_from(&mut self, yaml: PipelineYaml) {
        let (dir, path) = yaml.file();
        self._pipeline_dir = Some(dir);
        self.pipeline = Some(path);
    }

    /// Sends messages `range` (Kafka: round-robin over the partitions; RabbitMQ: with their
    /// ids as `message_id`, confirmed).
    async fn send(&self, range: std::ops::Range<usize>) {
        match self.source.clone().expect("a source") {
            Source::Topic { name, partitions } => {
                let msgs: Vec<(i32, Vec<u8>)> =
                    range.map(|i| ((i % partitions as usize) as i32, self.messages[i].clone())).collect();
                produce(&name, msgs).await;
            }
            Source::Queue { name } => {
                let msgs: Vec<(Option<String>, Vec<u8>)> =
                    range.map(|i| (Some(format!("evt-{i:09}")), self.messages[i].clone())).collect();
                publish_confirmed(&name, msgs).await;
            }
        }
    }

    /// Sends `range` in 10 slices, `pause` apart, in the background: the fault meets a daemon
    /// that is landing.
    fn send_paced(&self, range: std::ops::Range<usize>, pause: Duration) -> tokio::task::JoinHandle<()> {
        let source = self.source.clone().expect("a source");
        let messages: Vec<Vec<u8>> = self.messages[range.clone()].to_vec();
        let offset = range.start;
        tokio::spawn(async move {
            let slice = messages.len().div_ceil(10).max(1);
            for (k, chunk) in messages.chunks(slice).enumerate() {
                let first = offset + k * slice;
                match &source {
                    Source::Topic { name, partitions } => {
                        let msgs: Vec<(i32, Vec<u8>)> = chunk
                            .iter()
                            .enumerate()
                            .map(|(j, m)| (((first + j) % *partitions as usize) as i32, m.clone()))
                            .collect();
                        produce(name, msgs).await;
                    }
                    Source::Queue { name } => {
                        let msgs: Vec<(Option<String>, Vec<u8>)> = chunk
                            .iter()
                            .enumerate()
                            .map(|(j, m)| (Some(format!("evt-{:09}", first + j)), m.clone()))
                            .collect();
                        publish_confirmed(name, msgs).await;
                    }
                }
                tokio::time::sleep(pause).await;
            }
        })
    }

    /// Starts a daemon on the pipeline (in slot `slot`), with extra environment.
    fn spawn(&mut self, slot: usize, env: &[(&str, &str)]) {
        self.spawn_with(slot, env, None)
    }

    fn spawn_with(&mut self, slot: usize, env: &[(&str, &str)], wrapper: Option<&[&str]>) {
        let log = self.logs.path().join(format!("{slot}-{}.log", self.spawned));
        self.spawned += 1;
        let mut cmd = landfall();
        if let Some(wrapper) = wrapper {
            let program = cmd.get_program().to_owned();
            let mut wrapped = std::process::Command::new(wrapper[0]);
            wrapped.args(&wrapper[1..]).arg(program);
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => wrapped.env(k, v),
                    None => wrapped.env_remove(k),
                };
            }
            cmd = wrapped;
        }
        cmd.arg("run").arg(self.pipeline.as_ref().unwrap()).env("LANDFALL_LOG_LEVEL", "info");
        cmd.env("LANDFALL_SHUTDOWN_DEADLINE", "20s");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().expect("start landfall");
        if self.instances.len() <= slot {
            self.instances.resize_with(slot + 1, || None);
        }
        self.instances[slot] = Some(Instance { child, log });
    }

    fn instance(&mut self, slot: usize) -> &mut Instance {
        self.instances[slot].as_mut().expect("a running instance")
    }

    /// `kill -9` the daemon in `slot`.
    fn kill9(&mut self, slot: usize) {
        let mut i = self.instances[slot].take().expect("a running instance");
        let _ = i.child.kill();
        let _ = i.child.wait();
    }

    /// SIGTERM the daemon in `slot`; it must exit 0 within 30 s.
    fn term(&mut self, slot: usize) -> Result<(), String> {
        let mut i = self.instances[slot].take().expect("a running instance");
        signal(&i.child, SIGTERM);
        let asked = Instant::now();
        loop {
            if let Some(status) = i.child.try_wait().unwrap() {
                if status.success() {
                    return Ok(());
                }
                return Err(format!("exit {status} after SIGTERM:\n{}", tail(&i.log, self.log_tail_lines)));
            }
            if asked.elapsed() > Duration::from_secs(30) {
                let _ = i.child.kill();
                return Err(format!("no exit 30 s after SIGTERM:\n{}", tail(&i.log, self.log_tail_lines)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the daemon in `slot` exits on its own (an injected abort); `Err` if it
    /// runs on for `limit` or exits cleanly.
    async fn aborted(&mut self, slot: usize, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let i = self.instance(slot);
            if let Some(status) = i.child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                let log = i.log.clone();
                self.instances[slot] = None;
                return match status.signal() {
                    Some(6) => Ok(()),
                    _ => Err(format!("exited {status}, not at the crash point:\n{}", tail(&log, 40))),
                };
            }
            if started.elapsed() > limit {
                let log = i.log.clone();
                return Err(format!("the crash point was not reached in {limit:?}:\n{}", tail(&log, 40)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn heal(&mut self) {
        self.healed = Some(Instant::now());
    }

    /// Every message offset (or queue sequence number) covered by a published data or
    /// quarantine file, read from the names: `part-<topic>-<p>[-g<gen>]-<start>-<end>-<n>…`.
    async fn covered(&self) -> u64 {
        let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
        let mut ranges: BTreeSet<(String, i64, i64)> = BTreeSet::new();
        let mut stack = vec![self.table.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = client.list_status(&d, false).await else { continue };
            for st in entries {
                let name = st.path.rsplit('/').next().unwrap().to_string();
                if st.isdir {
                    if !name.starts_with('_') && !name.starts_with('.') || name == "_rejected" {
                        stack.push(st.path.clone());
                    }
                    continue;
                }
                if name.starts_with('_') || name.starts_with('.') || !name.starts_with("part-") {
                    continue;
                }
                let fields: Vec<&str> = name.rsplitn(4, '-').collect();
                if let (Some(end), Some(start), Some(rest)) = (fields.get(1), fields.get(2), fields.get(3)) {
                    if let (Ok(s), Ok(e)) = (start.parse(), end.parse()) {
                        ranges.insert((rest.to_string(), s, e));
                    }
                }
            }
        }
        ranges.iter().map(|(_, s, e)| (e - s + 1) as u64).sum()
    }

    /// Waits until every message is covered; the seconds since the fault ended.
    async fn all_landed(&mut self, limit: Duration) -> Result<f64, String> {
        let since = self.healed.unwrap_or_else(Instant::now);
        let want = self.messages.len() as u64;
        let started = Instant::now();
        loop {
            for i in self.instances.iter_mut().flatten() {
                if let Some(status) = i.child.try_wait().unwrap() {
                    return Err(format!("a daemon exited on its own ({status}):\n{}", tail(&i.log, 40)));
                }
            }
            let covered = self.covered().await;
            if covered >= want {
                return Ok(since.elapsed().as_secs_f64());
            }
            if started.elapsed() > limit {
                let logs: Vec<String> =
                    self.instances.iter().flatten().map(|i| tail(&i.log, self.log_tail_lines)).collect();
                return Err(format!(
                    "{covered} of {want} landed {limit:?} after the fault ended:\n{}",
                    logs.join("\n---\n")
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// After the run: every event landed in time, every daemon is ready and stops cleanly,
    /// and the table holds each good event once and each refused message in the quarantine.
    async fn judge(&mut self, o: &mut Outcome) {
        match self.all_landed(Duration::from_secs(180)).await {
            Ok(secs) => o.recovery_s = secs,
            Err(e) => o.findings.push(e),
        }
        for slot in 0..self.instances.len() {
            let Some(i) = self.instances[slot].as_mut() else { continue };
            if let Some(status) = i.child.try_wait().unwrap() {
                o.findings.push(format!("daemon {slot} exited on its own ({status}):\n{}", tail(&i.log, 40)));
                self.instances[slot] = None;
                continue;
            }
            let addr = http_addr(&i.log);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (code, body) = http_get(addr, "/ready");
                if code == 200 {
                    break;
                }
                if Instant::now() > deadline {
                    o.findings.push(format!("daemon {slot}: /ready {code} 30 s after landing everything: {body}"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if let Err(e) = self.term(slot) {
                o.findings.push(format!("daemon {slot}: {e}"));
            }
        }
        let read = read_table(&self.table).await;
        o.partial = read.unreadable.len() as u64;
        if !read.unreadable.is_empty() {
            o.findings.push(format!("visible files that do not read as Parquet: {:?}", read.unreadable));
        }
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        for id in &read.ids {
            *seen.entry(id.as_str()).or_default() += 1;
        }
        o.lost = self.expected.iter().filter(|id| !seen.contains_key(id.as_str())).count() as u64;
        o.duplicated = seen.values().map(|n| n - 1).sum::<u64>()
            + seen.keys().filter(|id| !self.expected.contains(**id)).count() as u64;
        o.rows = read.ids.len() as u64;
        o.distinct = seen.len() as u64;
        o.rejected = read.rejected;
        if o.lost > 0 || o.duplicated > 0 {
            o.findings.push(format!(
                "{} lost, {} duplicated of {} good events",
                o.lost,
                o.duplicated,
                self.expected.len()
            ));
        }
        if read.rejected != self.refused {
            o.findings.push(format!("{} quarantined, {} refused messages sent", read.rejected, self.refused));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for i in self.instances.iter_mut().flatten() {
            let _ = i.child.kill();
            let _ = i.child.wait();
        }
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn tail(log: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a reader that follows Spark's hidden-file rule finds in a table.
struct TableRead {
    ids: Vec<String>,
    rejected: u64,
    unreadable: Vec<String>,
}

async fn read_table(table: &str) -> TableRead {
    use arrow::array::{Array, AsArray};
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let mut out = TableRead { ids: Vec::new(), rejected: 0, unreadable: Vec::new() };
    let mut stack = vec![(table.to_string(), false)];
    while let Some((d, quarantine)) = stack.pop() {
        let Ok(entries) = client.list_status(&d, false).await else { continue };
        for st in entries {
            let name = st.path.rsplit('/').next().unwrap().to_string();
            let rejected_root = name == "_rejected" && d == table;
            if (name.starts_with('_') || name.starts_with('.')) && !rejected_root {
                continue;
            }
            if st.isdir {
                stack.push((st.path.clone(), quarantine || rejected_root));
                continue;
            }
            let bytes = match client.read(&st.path).await {
                Ok(r) => r.read_range(0, r.file_length()).await,
                Err(e) => Err(e),
            };
            let parsed = bytes.map_err(|e| e.to_string()).and_then(|b| {
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(b)
                    .map_err(|e| e.to_string())?
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut ids = Vec::new();
                let mut rows = 0u64;
                for batch in reader {
                    let batch = batch.map_err(|e| e.to_string())?;
                    rows += batch.num_rows() as u64;
                    if !quarantine {
                        let col = batch.column_by_name("id").ok_or("no id column")?;
                        let col =
                            arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).map_err(|e| e.to_string())?;
                        let col = col.as_string::<i32>();
                        ids.extend((0..col.len()).filter(|&k| col.is_valid(k)).map(|k| col.value(k).to_string()));
                    }
                }
                Ok((ids, rows))
            });
            match parsed {
                Ok((ids, rows)) if quarantine => {
                    let _ = ids;
                    out.rejected += rows;
                }
                Ok((ids, _)) => out.ids.extend(ids),
                Err(e) => out.unreadable.push(format!("{}: {e}", st.path)),
            }
        }
    }
    out
}

/// One Spark session reads every table; it must count what our reader counted.
fn spark_agrees(outcomes: &mut [Outcome]) {
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
    s.push_str(&format!(
        "Seeds {first}..{} ({seeds} per class), {events} events per run (0.5 % poison). Each run compares \
         the whole input with the whole output; Spark reads every table.\n\n",
        first + seeds - 1
    ));
    s.push_str("| Class | Fault | Runs | Failed | Lost | Duplicated | Partial | Max recovery (s) |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for class in all {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.class == class.name).collect();
        if mine.is_empty() {
            continue;
        }
        let sum = |f: fn(&Outcome) -> u64| mine.iter().map(|o| f(o)).sum::<u64>();
        let worst = mine.iter().map(|o| o.recovery_s).fold(0.0, f64::max);
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            class.name,
            class.what,
            mine.len(),
            mine.iter().filter(|o| !o.findings.is_empty()).count(),
            sum(|o| o.lost),
            sum(|o| o.duplicated),
            sum(|o| o.partial),
            worst
        ));
    }
    s
}

// ---- the classes ------------------------------------------------------------------------------

/// The shape most classes share: a 4-partition topic, one daemon, events sent in slices while
/// `fault` (given the run) strikes at a seeded moment and ends.
async fn while_landing<F>(
    mut r: Run,
    customise: impl FnOnce(PipelineYaml) -> PipelineYaml,
    fault: F,
) -> Result<Run, String>
where
    F: AsyncFnOnce(&mut Run) -> Result<(), String>,
{
    r.topic(4, customise).await;
    r.spawn(0, &[]);
    let n = r.messages.len();
    r.send(0..n / 4).await;
    let sender = r.send_paced(n / 4..n, Duration::from_millis(300));
    let wait = r.rng.secs(0.5, 2.5);
    tokio::time::sleep(wait).await;
    fault(&mut r).await?;
    if r.healed.is_none() {
        r.heal();
    }
    sender.await.map_err(|e| format!("sending: {e}"))?;
    Ok(r)
}

async fn kill9(r: Run) -> Result<Run, String> {
    while_landing(
        r,
        |p| p,
        async |r: &mut Run| {
            r.kill9(0);
            r.spawn(0, &[]);
            Ok(())
        },
    )
    .await
}

async fn sigterm(r: Run) -> Result<Run, String> {
    while_landing(
        r,
        |p| p,
        async |r: &mut Run| {
            r.term(0)?;
            r.spawn(0, &[]);
            Ok(())
        },
    )
    .await
}

/// The commit steps of docs/exactly-once.md, each a crash point (src/crash.rs).
const COMMIT_STEPS: [&str; 5] =
    ["before_manifest", "before_commit_point", "after_commit_point", "mid_publish", "after_publish"];

async fn commit_steps(mut r: Run) -> Result<Run, String> {
    // Small commits (and the poison's quarantine files) give each commit several files.
    r.topic(4, |p| p.roll_max_rows(400)).await;
    let n = r.messages.len();
    let mut steps = COMMIT_STEPS.to_vec();
    for i in (1..steps.len()).rev() {
        steps.swap(i, r.rng.between(0, i as u64) as usize);
    }
    let slice = n / (steps.len() + 1);
    for (k, step) in steps.iter().enumerate() {
        r.send(k * slice..(k + 1) * slice).await;
        let count = r.rng.between(1, 3).to_string();
        r.spawn(0, &[("LF_TEST_CRASH_POINT", step), ("LF_TEST_CRASH_COUNT", &count)]);
        r.aborted(0, Duration::from_secs(60)).await.map_err(|e| format!("{step} #{count}: {e}"))?;
    }
    r.send(steps.len() * slice..n).await;
    r.spawn(0, &[]);
    r.heal();
    Ok(r)
}

async fn zombie(r: Run) -> Result<Run, String> {
    while_landing(
        r,
        |p| p.session_timeout("6s"),
        async |r: &mut Run| {
            let pid = r.instance(0).child.id() as i32;
            let frozen = Frozen::process(pid);
            r.spawn(1, &[]);
            tokio::time::sleep(r.rng.secs(8.0, 14.0)).await;
            drop(frozen);
            Ok(())
        },
    )
    .await
}

async fn service_down(r: Run, service: &'static str, lo: f64, hi: f64) -> Result<Run, String> {
    while_landing(
        r,
        |p| p,
        async move |r: &mut Run| {
            let down = Killed::kill(service);
            tokio::time::sleep(r.rng.secs(lo, hi)).await;
            drop(down);
            Ok(())
        },
    )
    .await
}

async fn service_hung(r: Run, service: &'static str, lo: f64, hi: f64) -> Result<Run, String> {
    while_landing(
        r,
        |p| p,
        async move |r: &mut Run| {
            let frozen = Frozen::freeze(service);
            tokio::time::sleep(r.rng.secs(lo, hi)).await;
            drop(frozen);
            Ok(())
        },
    )
    .await
}

async fn broker_kill(r: Run) -> Result<Run, String> {
    service_down(r, "kafka", 2.0, 8.0).await
}

async fn broker_hung(r: Run) -> Result<Run, String> {
    service_hung(r, "kafka", 2.0, 8.0).await
}

async fn namenode_kill(r: Run) -> Result<Run, String> {
    service_down(r, "namenode", 1.0, 6.0).await
}

async fn namenode_hung(r: Run) -> Result<Run, String> {
    service_hung(r, "namenode", 2.0, 8.0).await
}

async fn datanode_kill(r: Run) -> Result<Run, String> {
    service_down(r, "datanode", 2.0, 8.0).await
}

async fn safe_mode(r: Run) -> Result<Run, String> {
    while_landing(
        r,
        |p| p,
        async |r: &mut Run| {
            let safe = SafeMode::enter();
            tokio::time::sleep(r.rng.secs(2.0, 15.0)).await;
            drop(safe);
            Ok(())
        },
    )
    .await
}

/// Waits until the first file of the run is visible (a fault on the table's directories needs
/// them to exist).
async fn first_landing(r: &Run) -> Result<(), String> {
    let started = Instant::now();
    while r.covered().await == 0 {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("nothing landed in 60 s before the fault".to_string());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn quota(r: Run) -> Result<Run, String> {
    while_landing(
        r,
        |p| p,
        async |r: &mut Run| {
            first_landing(r).await?;
            let quota = Quota::exhaust(&r.table);
            tokio::time::sleep(r.rng.secs(2.0, 10.0)).await;
            drop(quota);
            Ok(())
        },
    )
    .await
}

/// The pipeline acts as this HDFS user (the tests' own user is the lab's superuser, whom the
/// NameNode never checks).
const MATRIX_USER: &str = "landfall-matrix";

async fn permission(r: Run) -> Result<Run, String> {
    lab(&["hdfs", "dfs", "-mkdir", "-p", &r.table]);
    lab(&["hdfs", "dfs", "-chown", MATRIX_USER, &r.table]);
    while_landing(
        r,
        |p| p.sink_hdfs_user(MATRIX_USER),
        async |r: &mut Run| {
            first_landing(r).await?;
            let read_only = ReadOnly::make(&format!("{}/_landfall", r.table));
            tokio::time::sleep(r.rng.secs(2.0, 10.0)).await;
            drop(read_only);
            Ok(())
        },
    )
    .await
}

/// A queue (librdkafka under libfaketime waits on the faked clock; the age rule is the same
/// for every source): minutes ahead of or behind the NameNode, flipped at a `kill -9`.
async fn clock_skew(mut r: Run) -> Result<Run, String> {
    let lib = libfaketime();
    r.queue(|p| p).await;
    let minutes = r.rng.between(5, 59);
    let sign = if r.rng.between(0, 1) == 0 { 1 } else { -1 };
    let skew = |sign: i64| format!("{:+}m", sign * minutes as i64);
    let first = skew(sign);
    let env = |skew: &str| {
        [("LD_PRELOAD", lib.clone()), ("FAKETIME", skew.to_string()), ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into())]
    };
    let owned = env(&first);
    let borrowed: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    r.spawn(0, &borrowed);
    let n = r.messages.len();
    r.send(0..n / 2).await;
    tokio::time::sleep(r.rng.secs(0.5, 3.0)).await;
    r.kill9(0);
    let second = skew(-sign);
    let owned = env(&second);
    let borrowed: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    r.spawn(0, &borrowed);
    r.heal();
    r.send(n / 2..n).await;
    Ok(r)
}

/// Partition values a producer may send ([liveness] tests each one); the refused ones are
/// quarantined with `unsafe_partition_value`.
const ACCEPTED_VALUES: [&str; 10] =
    ["plain", "a/b", "k=v", "50%", "%2F", "a b", "_leading", "x..y", "日本語", "quote'\"*?#[]^{}\\:"];
const REFUSED_VALUES: [&str; 6] = ["", ".", "..", ".hidden", "line\nfeed", "del\u{7f}"];

async fn hostile_values(mut r: Run) -> Result<Run, String> {
    // The messages: each gets a seeded country, hostile ones among them.
    let n = r.messages.len();
    r.expected.clear();
    r.refused = 0;
    for i in 0..n {
        let pick = r.rng.between(0, 39) as usize;
        let (value, ok) = match pick {
            k if k < ACCEPTED_VALUES.len() => (ACCEPTED_VALUES[k], true),
            k if k < ACCEPTED_VALUES.len() + REFUSED_VALUES.len() => (REFUSED_VALUES[k - ACCEPTED_VALUES.len()], false),
            _ => ("NL", true),
        };
        let id = format!("evt-{i:09}");
        let json = serde_json::json!({ "id": id, "ts": "2026-11-25T17:00:00Z", "country": value });
        r.messages[i] = json.to_string().into_bytes();
        if ok {
            r.expected.insert(id);
        } else {
            r.refused += 1;
        }
    }
    r.topic(2, |p| {
        p.schema(&[("id", "string", true), ("ts", "timestamp", true), ("country", "string", false)])
            .partition("country={country}")
    })
    .await;
    r.spawn(0, &[]);
    r.send(0..n / 2).await;
    tokio::time::sleep(r.rng.secs(0.5, 3.0)).await;
    r.kill9(0);
    r.spawn(0, &[]);
    r.heal();
    r.send(n / 2..n).await;
    Ok(r)
}

async fn position_lost(mut r: Run) -> Result<Run, String> {
    r.topic(4, |p| p.on_position_lost("earliest")).await;
    let n = r.messages.len();
    // The first life of the topic gets more than the second, so the committed positions lie
    // past the recreated topic's end.
    let cut = n * r.rng.between(55, 80) as usize / 100;
    r.spawn(0, &[]);
    r.send(0..cut).await;
    let started = Instant::now();
    while r.covered().await < cut as u64 {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("the first {cut} events did not land in 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    r.term(0)?;
    let Some(Source::Topic { name, partitions }) = r.source.clone() else { unreachable!() };
    recreate_topic(&name, partitions).await;
    r.send(cut..n).await;
    r.spawn(0, &[]);
    r.heal();
    Ok(r)
}

async fn rabbitmq_restart(mut r: Run) -> Result<Run, String> {
    r.queue(|p| p).await;
    r.spawn(0, &[]);
    let n = r.messages.len();
    r.send(0..n / 2).await;
    tokio::time::sleep(r.rng.secs(0.3, 2.0)).await;
    let down = Killed::kill("rabbitmq");
    tokio::time::sleep(r.rng.secs(1.0, 5.0)).await;
    drop(down);
    r.heal();
    r.send(n / 2..n).await;
    Ok(r)
}

async fn crash_before_ack(mut r: Run) -> Result<Run, String> {
    r.queue(|p| p).await;
    let n = r.messages.len();
    let count = r.rng.between(1, 3).to_string();
    r.spawn(0, &[("LF_TEST_CRASH_POINT", "before_ack"), ("LF_TEST_CRASH_COUNT", &count)]);
    r.send(0..n / 2).await;
    r.aborted(0, Duration::from_secs(60)).await.map_err(|e| format!("before_ack #{count}: {e}"))?;
    r.spawn(0, &[]);
    r.heal();
    r.send(n / 2..n).await;
    Ok(r)
}

/// Three instances; every 1–4 s one of them is stopped (SIGTERM) or killed (`kill -9`) and
/// started again, 4–7 times, while events arrive.
async fn storm(mut r: Run) -> Result<Run, String> {
    for slot in 0..3 {
        r.spawn(slot, &[]);
    }
    let n = r.messages.len();
    r.send(0..n / 5).await;
    let sender = r.send_paced(n / 5..n, Duration::from_millis(800));
    for _ in 0..r.rng.between(4, 7) {
        tokio::time::sleep(r.rng.secs(1.0, 4.0)).await;
        let slot = r.rng.between(0, 2) as usize;
        if r.rng.between(0, 1) == 0 {
            r.term(slot)?;
        } else {
            r.kill9(slot);
        }
        r.spawn(slot, &[]);
    }
    r.heal();
    sender.await.map_err(|e| format!("sending: {e}"))?;
    Ok(r)
}

async fn storm_topic(mut r: Run) -> Result<Run, String> {
    r.topic(6, |p| p.session_timeout("6s")).await;
    storm(r).await
}

async fn storm_queue(mut r: Run) -> Result<Run, String> {
    r.queue(|p| p).await;
    storm(r).await
}
