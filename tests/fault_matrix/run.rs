//! One seeded run of a fault class: its source and table, the messages it sends, the daemons
//! it starts and stops, and the judging of what landed against what was sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::Outcome;

/// SplitMix64: small, seedable, the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// A duration in `lo..=hi` seconds, in steps of 100 ms.
    pub fn secs(&mut self, lo: f64, hi: f64) -> Duration {
        Duration::from_millis(self.between((lo * 1000.0) as u64 / 100, (hi * 1000.0) as u64 / 100) * 100)
    }
}

/// Where a run's events come from.
#[derive(Clone)]
pub enum Source {
    Topic { name: String, partitions: i32 },
    Queue { name: String },
}

/// A running daemon of a run.
pub struct Instance {
    pub child: Child,
    pub log: PathBuf,
}

/// One seeded run: its source, table, pipeline, messages and daemons.
pub struct Run {
    pub rng: Rng,
    pub source: Option<Source>,
    pub table: String,
    pub pipeline: Option<PathBuf>,
    pub _pipeline_dir: Option<tempfile::TempDir>,
    pub logs: tempfile::TempDir,
    pub instances: Vec<Option<Instance>>,
    pub spawned: usize,
    /// Every message, by index; `expected` the ids that must land, `refused` how many must
    /// be quarantined.
    pub messages: Vec<Vec<u8>>,
    pub expected: BTreeSet<String>,
    pub refused: u64,
    /// When the fault ended (recovery is measured from here).
    pub healed: Option<Instant>,
    /// How many lines of a daemon's log a finding quotes.
    pub log_tail_lines: usize,
    /// Takeovers being measured by [`Run::watch_takeover`]: each ends with the seconds until
    /// every partition published again, or `None` when one did not within a minute.
    pub takeovers: Vec<tokio::task::JoinHandle<Option<f64>>>,
    /// Set once [`Run::send_paced`] has sent its last slice.
    pub sent: Arc<AtomicBool>,
    /// With `partition.completion`: the hours (of 2026-11-25) that must end with a `_SUCCESS`
    /// marker, and those that must not.
    pub markers: Option<MarkedHours>,
}

/// Hours that must be marked complete once every event landed, and hours still open.
pub struct MarkedHours {
    pub complete: Vec<u32>,
    pub open: Vec<u32>,
}

impl Run {
    pub fn new(class: &'static str, seed: u64, events: u64) -> Run {
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
            takeovers: Vec::new(),
            sent: Arc::new(AtomicBool::new(false)),
            markers: None,
        }
    }

    pub fn name(&self) -> String {
        self.table.rsplit('/').next().unwrap().to_string()
    }

    /// A topic named after the table, and the pipeline on it (`customise` adjusts the YAML).
    pub async fn topic(&mut self, partitions: i32, customise: impl FnOnce(PipelineYaml) -> PipelineYaml) {
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
    pub async fn queue(&mut self, customise: impl FnOnce(PipelineYaml) -> PipelineYaml) {
        self.queue_with(customise, false).await
    }

    /// [`Run::queue`], declared with `x-single-active-consumer` when `single_active`.
    pub async fn queue_with(&mut self, customise: impl FnOnce(PipelineYaml) -> PipelineYaml, single_active: bool) {
        let name = self.name();
        let kind = if self.rng.between(0, 1) == 0 { "quorum" } else { "classic" };
        declare_queue_with(&name, kind, single_active).await;
        let mut yaml =
            PipelineYaml::rabbitmq(&name.replace('-', "_"), &name, kind).roll_max_age("1s").sink_hdfs(&self.table);
        if single_active {
            // Landfall declares it too, as a user would: a declaration that differs from the
            // queue's (no `x-single-active-consumer`) is refused by the broker, failing the run.
            yaml = yaml.declare_single_active();
        }
        let yaml = customise(yaml);
        self.pipeline_from(yaml);
        self.source = Some(Source::Queue { name });
    }

    pub fn pipeline_from(&mut self, yaml: PipelineYaml) {
        let (dir, path) = yaml.file();
        self._pipeline_dir = Some(dir);
        self.pipeline = Some(path);
    }

    /// Sends messages `range` (Kafka: round-robin over the partitions; RabbitMQ: with their
    /// ids as `message_id`, confirmed).
    pub async fn send(&self, range: std::ops::Range<usize>) {
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
    pub fn send_paced(&self, range: std::ops::Range<usize>, pause: Duration) -> tokio::task::JoinHandle<()> {
        let source = self.source.clone().expect("a source");
        let messages: Vec<Vec<u8>> = self.messages[range.clone()].to_vec();
        let offset = range.start;
        let sent = self.sent.clone();
        sent.store(false, Ordering::SeqCst);
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
            sent.store(true, Ordering::SeqCst);
        })
    }

    /// Starts a daemon on the pipeline (in slot `slot`), with extra environment.
    pub fn spawn(&mut self, slot: usize, env: &[(&str, &str)]) {
        self.spawn_with(slot, env, None)
    }

    pub fn spawn_with(&mut self, slot: usize, env: &[(&str, &str)], wrapper: Option<&[&str]>) {
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

    pub fn instance(&mut self, slot: usize) -> &mut Instance {
        self.instances[slot].as_mut().expect("a running instance")
    }

    /// `kill -9` the daemon in `slot`.
    pub fn kill9(&mut self, slot: usize) {
        let mut i = self.instances[slot].take().expect("a running instance");
        let _ = i.child.kill();
        let _ = i.child.wait();
    }

    /// SIGTERM the daemon in `slot` once it has started (a signal before its handlers are
    /// installed kills a process that consumed nothing yet: not the shutdown under test); it
    /// must exit 0 within 30 s.
    pub fn term(&mut self, slot: usize) -> Result<(), String> {
        let mut i = self.instances[slot].take().expect("a running instance");
        let started = Instant::now();
        while !std::fs::read_to_string(&i.log).unwrap_or_default().contains("status server listening") {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = i.child.kill();
                return Err(format!("not started 30 s after spawn:\n{}", tail(&i.log, self.log_tail_lines)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
    pub async fn aborted(&mut self, slot: usize, limit: Duration) -> Result<(), String> {
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

    pub fn heal(&mut self) {
        self.healed = Some(Instant::now());
    }

    /// Every message offset (or queue sequence number) covered by a published data or
    /// quarantine file.
    pub async fn covered(&self) -> u64 {
        covered_by(&published_ranges(&self.table).await)
    }

    /// Measures, in the background, how long from now until each of `partitions` partitions
    /// has published beyond what it had published now (a minute at most); [`Run::judge`]
    /// collects the result. Once [`Run::send_paced`] is done, a partition that has published
    /// everything sent to it has nothing left to take over and is not waited for (a topic
    /// gets message `i` in partition `i % partitions`, so offset `i / partitions`; a queue's
    /// one "partition" is done when every message is covered).
    pub async fn watch_takeover(&mut self, partitions: usize) {
        let table = self.table.clone();
        let started = Instant::now();
        let before = tips_by_partition(&published_ranges(&table).await);
        let sent = self.sent.clone();
        let n = self.messages.len() as i64;
        let last: Vec<i64> = match &self.source {
            Some(Source::Topic { partitions: p, .. }) => {
                let p = i64::from(*p);
                (0..p).map(|k| (n - k + p - 1) / p - 1).collect()
            }
            _ => vec![n - 1],
        };
        let queue = matches!(self.source, Some(Source::Queue { .. }));
        self.takeovers.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let ranges = published_ranges(&table).await;
                let now = tips_by_partition(&ranges);
                let all_sent = sent.load(Ordering::SeqCst);
                let all_covered = queue && all_sent && covered_by(&ranges) >= n as u64;
                let done = (0..partitions as i32)
                    .filter(|p| {
                        let tip = now.get(p).copied();
                        let moved = tip.is_some_and(|t| before.get(p).is_none_or(|b| t > *b));
                        let nothing_left =
                            all_sent && if queue { all_covered } else { tip.is_some_and(|t| t >= last[*p as usize]) };
                        moved || nothing_left
                    })
                    .count();
                if done >= partitions {
                    return Some(started.elapsed().as_secs_f64());
                }
                if started.elapsed() > Duration::from_secs(60) {
                    return None;
                }
            }
        }));
    }

    /// Waits until every message is covered; the seconds since the fault ended.
    pub async fn all_landed(&mut self, limit: Duration) -> Result<f64, String> {
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
    pub async fn judge(&mut self, o: &mut Outcome) {
        match self.all_landed(Duration::from_secs(180)).await {
            Ok(secs) => o.recovery_s = secs,
            Err(e) => o.findings.push(e),
        }
        for watch in std::mem::take(&mut self.takeovers) {
            match watch.await {
                Ok(Some(secs)) => o.takeover_s.push(secs),
                Ok(None) => o.takeover_missed += 1,
                Err(e) => o.findings.push(format!("a takeover watch failed: {e}")),
            }
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
        if let Some(hours) = &self.markers {
            let wrong = check_markers(&self.table, hours).await;
            if !wrong.is_empty() {
                o.findings.extend(wrong);
                // Logs are named `<slot>-<spawn number>.log`.
                let suffix = format!("-{}.log", self.spawned.saturating_sub(1));
                let entries = std::fs::read_dir(self.logs.path()).into_iter().flatten().flatten();
                if let Some(newest) = entries.map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(&suffix)) {
                    o.findings.push(format!("the newest daemon's log:\n{}", tail(&newest, self.log_tail_lines)));
                }
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

/// What is wrong with the table's `_SUCCESS` markers: a complete hour without one, an open hour
/// with one. Run after the daemons stopped (a stop makes one last completion pass).
pub async fn check_markers(table: &str, hours: &MarkedHours) -> Vec<String> {
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let mut findings = Vec::new();
    let wanted = hours.complete.iter().map(|h| (h, true)).chain(hours.open.iter().map(|h| (h, false)));
    for (hour, want) in wanted {
        let marker = format!("{table}/dt=2026-11-25/hour={hour}/_SUCCESS");
        let found = client.get_file_info(&marker).await.is_ok();
        if found != want {
            let state = if want { "complete, but has no _SUCCESS" } else { "open, but has a _SUCCESS" };
            findings.push(format!("hour {hour} is {state} ({marker})"));
        }
    }
    findings
}

/// The ranges of every published data and quarantine file of `table`, read from the names:
/// (`<topic>-<p>[-g<gen>]`, start, end) of `part-<topic>-<p>[-g<gen>]-<start>-<end>-<n>…`.
pub async fn published_ranges(table: &str) -> BTreeSet<(String, i64, i64)> {
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let mut ranges: BTreeSet<(String, i64, i64)> = BTreeSet::new();
    let mut stack = vec![table.to_string()];
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
    ranges
}

/// Every offset (or queue sequence number) the published `ranges` cover.
pub fn covered_by(ranges: &BTreeSet<(String, i64, i64)>) -> u64 {
    ranges.iter().map(|(_, s, e)| (e - s + 1) as u64).sum()
}

/// The last published offset of each source partition in `ranges`, whatever the generation.
pub fn tips_by_partition(ranges: &BTreeSet<(String, i64, i64)>) -> BTreeMap<i32, i64> {
    let mut out: BTreeMap<i32, i64> = BTreeMap::new();
    for (key, _, end) in ranges {
        let Some(p) = partition_of(key) else { continue };
        let tip = out.entry(p).or_insert(*end);
        *tip = (*tip).max(*end);
    }
    out
}

/// The partition of a `<topic>-<p>[-g<gen>]` key.
fn partition_of(key: &str) -> Option<i32> {
    let mut parts = key.rsplit('-');
    let last = parts.next()?;
    let p = if last.starts_with('g') && last[1..].chars().all(|c| c.is_ascii_digit()) { parts.next()? } else { last };
    p.parse().ok()
}

pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

pub fn tail(log: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a reader that follows Spark's hidden-file rule finds in a table.
pub struct TableRead {
    pub ids: Vec<String>,
    pub rejected: u64,
    pub unreadable: Vec<String>,
}

pub async fn read_table(table: &str) -> TableRead {
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
