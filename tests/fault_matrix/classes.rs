//! The fault classes of the matrix: each makes one seeded run of its fault on a fresh topic or
//! queue and hands it back for judging (see `run.rs`).

use std::time::{Duration, Instant};

use crate::common::*;
use crate::run::{check_markers, tail, MarkedHours, Run, Source};

/// A fault class: its name and the run it makes for a seed.
pub struct Class {
    pub name: &'static str,
    pub what: &'static str,
    pub run: fn(Run) -> futures::future::BoxFuture<'static, Result<Run, String>>,
    /// Events per run, as a multiple of `LF_FAULT_EVENTS`.
    pub scale: u64,
    /// Whether the class disturbs a lab service (kills, freezes or restarts it, or puts HDFS
    /// in safe mode), and so runs with the lab alone; the others share it with the rest of the
    /// suite (`common/turn.rs`).
    pub alone: bool,
}

/// Every class, in the order they run.
pub fn classes() -> Vec<Class> {
    macro_rules! class {
        ($name:literal, $what:literal, $f:ident) => {
            class!($name, $what, $f, 1)
        };
        ($name:literal, $what:literal, $f:ident, $scale:literal) => {
            Class { name: $name, what: $what, run: |r| Box::pin($f(r)), scale: $scale, alone: false }
        };
        (alone $name:literal, $what:literal, $f:ident) => {
            Class { alone: true, ..class!($name, $what, $f) }
        };
    }
    vec![
        class!("kill9", "daemon `kill -9` at a random moment, restarted", kill9),
        class!("commit-steps", "daemon aborted at each commit step in turn (seeded order and count)", commit_steps),
        class!("sigterm", "daemon stopped (SIGTERM) at a random moment, restarted", sigterm),
        class!("zombie", "daemon frozen (SIGSTOP) past its session, a second member takes over, then it wakes", zombie),
        class!(alone "broker-kill", "Kafka broker killed, started again", broker_kill),
        class!(alone "broker-hung", "Kafka broker frozen (SIGSTOP: sockets open, nothing answers)", broker_hung),
        class!(alone "namenode-kill", "NameNode killed, started again", namenode_kill),
        class!(alone "namenode-hung", "NameNode frozen (SIGSTOP)", namenode_hung),
        class!(alone "datanode-kill", "DataNode killed, started again", datanode_kill),
        class!(alone "safe-mode", "HDFS safe mode entered by hand, left later", safe_mode),
        class!("quota", "HDFS space quota of the table exhausted, then lifted", quota),
        class!("permission", "the table's `_landfall/` made read-only for the pipeline's user, then fixed", permission),
        class!("clock-skew", "host clock off the NameNode's (faketime), the sign flipped at a restart", clock_skew),
        class!("hostile-values", "hostile partition values mixed in, `kill -9` mid-run", hostile_values),
        class!(
            "position-lost",
            "topic recreated shorter than the committed position (`on_position_lost: earliest`)",
            position_lost
        ),
        class!(
            "completion-steps",
            "partition completion on; daemon aborted at a seeded step of a completion pass, restarted",
            completion_steps
        ),
        class!(alone "rabbitmq-restart", "RabbitMQ broker killed, started again", rabbitmq_restart),
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
        class!(
            "scale-topic",
            "3 instances on a 6-partition topic, 12x the events at a steady rate; one is killed, stopped or frozen past its session every 2–5 s",
            scale_topic,
            12
        ),
        class!(
            "standby-queue",
            "2 instances on a single-active-consumer queue; the active one is killed 5 times while events arrive",
            standby_queue
        ),
    ]
}

/// The shape most classes share: a 4-partition topic, one daemon, events sent in slices while
/// `fault` (given the run) strikes at a seeded moment and ends.
pub async fn while_landing<F>(
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

pub async fn kill9(r: Run) -> Result<Run, String> {
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

pub async fn sigterm(r: Run) -> Result<Run, String> {
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

/// The steps of a completion pass (src/completion/task.rs), each a crash point; the metastore
/// step needs `sink.hive`, which the matrix's tables do not have.
pub const COMPLETION_STEPS: [&str; 3] = ["before_decision", "after_decision", "after_markers"];

/// Partition completion with 10 minutes of lateness: the events span 14:00–17:29, so once all
/// landed hours 14–16 are complete and 17 is open (`idle_timeout: 2m` is longer than a run, so
/// no partition's idleness completes it early). The daemon aborts at a seeded step of the
/// first pass that decides, with half the events sent; the next run must finish the pass.
/// A stop ends a pass without a last one (docs/design/partition-completion.md), so the run
/// waits for the markers (a pass every 30 s) before the judge stops the daemon.
pub async fn completion_steps(mut r: Run) -> Result<Run, String> {
    r.topic(4, |p| p.completion("10m", "2m")).await;
    r.markers = Some(MarkedHours { complete: vec![14, 15, 16], open: vec![17] });
    let point = COMPLETION_STEPS[r.rng.between(0, COMPLETION_STEPS.len() as u64 - 1) as usize];
    r.spawn(0, &[("LF_TEST_CRASH_POINT", point)]);
    let n = r.messages.len();
    r.send(0..n / 2).await;
    r.aborted(0, Duration::from_secs(90)).await.map_err(|e| format!("{point}: {e}"))?;
    r.spawn(0, &[]);
    r.heal();
    r.send(n / 2..n).await;
    let complete = MarkedHours { complete: vec![14, 15, 16], open: Vec::new() };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing = check_markers(&r.table, &complete).await;
        if missing.is_empty() {
            return Ok(r);
        }
        if Instant::now() > deadline {
            return Err(format!("{point}: markers still missing 120 s after the last event was sent: {missing:?}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The commit steps of docs/exactly-once.md, each a crash point (src/crash.rs).
pub const COMMIT_STEPS: [&str; 5] =
    ["before_manifest", "before_commit_point", "after_commit_point", "mid_publish", "after_publish"];

pub async fn commit_steps(mut r: Run) -> Result<Run, String> {
    // Small commits (and the poison's quarantine files) give each commit several files.
    r.topic(4, |p| p.roll_max_rows(400)).await;
    let n = r.messages.len();
    let mut steps = COMMIT_STEPS.to_vec();
    for i in (1..steps.len()).rev() {
        steps.swap(i, r.rng.between(0, i as u64) as usize);
    }
    let slice = n / (steps.len() + 1);
    for (k, step) in steps.iter().enumerate() {
        let count = r.rng.between(1, 3).to_string();
        r.spawn(0, &[("LF_TEST_CRASH_POINT", step), ("LF_TEST_CRASH_COUNT", &count)]);
        // Paced, so time-rolled commits come on top of the 400-row ones and the count is
        // reached whatever the seed (see crash_before_ack).
        let sender = r.send_paced(k * slice..(k + 1) * slice, Duration::from_millis(300));
        r.aborted(0, Duration::from_secs(60)).await.map_err(|e| format!("{step} #{count}: {e}"))?;
        sender.await.map_err(|e| format!("sending: {e}"))?;
    }
    r.send(steps.len() * slice..n).await;
    r.spawn(0, &[]);
    r.heal();
    Ok(r)
}

pub async fn zombie(r: Run) -> Result<Run, String> {
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

pub async fn service_down(r: Run, service: &'static str, lo: f64, hi: f64) -> Result<Run, String> {
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

pub async fn service_hung(r: Run, service: &'static str, lo: f64, hi: f64) -> Result<Run, String> {
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

pub async fn broker_kill(r: Run) -> Result<Run, String> {
    service_down(r, "kafka", 2.0, 8.0).await
}

pub async fn broker_hung(r: Run) -> Result<Run, String> {
    service_hung(r, "kafka", 2.0, 8.0).await
}

pub async fn namenode_kill(r: Run) -> Result<Run, String> {
    service_down(r, "namenode", 1.0, 6.0).await
}

pub async fn namenode_hung(r: Run) -> Result<Run, String> {
    service_hung(r, "namenode", 2.0, 8.0).await
}

pub async fn datanode_kill(r: Run) -> Result<Run, String> {
    service_down(r, "datanode", 2.0, 8.0).await
}

pub async fn safe_mode(r: Run) -> Result<Run, String> {
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
pub async fn first_landing(r: &Run) -> Result<(), String> {
    let started = Instant::now();
    while r.covered().await == 0 {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("nothing landed in 60 s before the fault".to_string());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

pub async fn quota(r: Run) -> Result<Run, String> {
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
pub const MATRIX_USER: &str = "landfall-matrix";

pub async fn permission(r: Run) -> Result<Run, String> {
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
pub async fn clock_skew(mut r: Run) -> Result<Run, String> {
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
pub const ACCEPTED_VALUES: [&str; 10] =
    ["plain", "a/b", "k=v", "50%", "%2F", "a b", "_leading", "x..y", "日本語", "quote'\"*?#[]^{}\\:"];
pub const REFUSED_VALUES: [&str; 6] = ["", ".", "..", ".hidden", "line\nfeed", "del\u{7f}"];

pub async fn hostile_values(mut r: Run) -> Result<Run, String> {
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

pub async fn position_lost(mut r: Run) -> Result<Run, String> {
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

pub async fn rabbitmq_restart(mut r: Run) -> Result<Run, String> {
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

pub async fn crash_before_ack(mut r: Run) -> Result<Run, String> {
    r.queue(|p| p).await;
    let n = r.messages.len();
    let count = r.rng.between(1, 3).to_string();
    r.spawn(0, &[("LF_TEST_CRASH_POINT", "before_ack"), ("LF_TEST_CRASH_COUNT", &count)]);
    // Paced over about 5 s, so a queue with `roll.max_age: 1s` commits several times before
    // the count is reached (sent at once, half the events made two commits: CI, seed 886).
    let sender = r.send_paced(0..n / 2, Duration::from_millis(500));
    r.aborted(0, Duration::from_secs(60)).await.map_err(|e| format!("before_ack #{count}: {e}"))?;
    r.spawn(0, &[]);
    r.heal();
    sender.await.map_err(|e| format!("sending: {e}"))?;
    r.send(n / 2..n).await;
    Ok(r)
}

/// Three instances; every 1–4 s one of them is stopped (SIGTERM) or killed (`kill -9`) and
/// started again, 4–7 times, while events arrive.
pub async fn storm(mut r: Run) -> Result<Run, String> {
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

pub async fn storm_topic(mut r: Run) -> Result<Run, String> {
    r.topic(6, |p| p.session_timeout("6s")).await;
    storm(r).await
}

pub async fn storm_queue(mut r: Run) -> Result<Run, String> {
    r.queue(|p| p).await;
    storm(r).await
}

/// Scale-out (issue 13): three instances in one group on a 6-partition topic while 12x the
/// run's events arrive at a steady rate (10 slices, 3 s apart). Every 2–5 s, 6–9 times, one
/// instance is killed (`kill -9`; it comes back at the next step), stopped (SIGTERM) and
/// restarted, or frozen past its 6 s session and thawed (it must be fenced). After each kill
/// and freeze the run measures how long until every partition publishes again: the other
/// members' takeover, from the broker's eviction through recovery to the next roll.
pub async fn scale_topic(mut r: Run) -> Result<Run, String> {
    const PARTITIONS: usize = 6;
    r.topic(PARTITIONS as i32, |p| p.session_timeout("6s")).await;
    for slot in 0..3 {
        r.spawn(slot, &[]);
    }
    let n = r.messages.len();
    let sender = r.send_paced(0..n, Duration::from_secs(3));
    let mut down: Option<usize> = None;
    for _ in 0..r.rng.between(6, 9) {
        tokio::time::sleep(r.rng.secs(2.0, 5.0)).await;
        if let Some(slot) = down.take() {
            r.spawn(slot, &[]);
        }
        let slot = r.rng.between(0, 2) as usize;
        match r.rng.between(0, 2) {
            0 => {
                if !sender.is_finished() {
                    r.watch_takeover(PARTITIONS).await;
                }
                r.kill9(slot);
                down = Some(slot);
            }
            1 => {
                r.term(slot)?;
                r.spawn(slot, &[]);
            }
            _ => {
                let pid = r.instance(slot).child.id() as i32;
                if !sender.is_finished() {
                    r.watch_takeover(PARTITIONS).await;
                }
                let frozen = Frozen::process(pid);
                tokio::time::sleep(r.rng.secs(7.0, 10.0)).await;
                drop(frozen);
            }
        }
    }
    if let Some(slot) = down {
        r.spawn(slot, &[]);
    }
    r.heal();
    sender.await.map_err(|e| format!("sending: {e}"))?;
    Ok(r)
}

/// Standby (issue 13): two instances on a queue declared with `x-single-active-consumer`, so
/// only the first receives; events arrive at a steady rate (10 slices, 3 s apart). Five
/// times, the active instance is killed (`kill -9`) and started again as the standby: the
/// broker activates the other, which gets what the dead one held unacknowledged redelivered.
/// Each takeover is timed (until the queue publishes again).
pub async fn standby_queue(mut r: Run) -> Result<Run, String> {
    r.queue_with(|p| p, true).await;
    r.spawn(0, &[]);
    // Slot 0 registers its consumer first, so it is the active one.
    let log = r.instance(0).log.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("consuming from RabbitMQ") {
        if Instant::now() > deadline {
            return Err(format!("the first instance did not start consuming in 60 s:\n{}", tail(&log, 40)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r.spawn(1, &[]);
    let n = r.messages.len();
    let sender = r.send_paced(0..n, Duration::from_secs(3));
    let mut active = 0;
    for _ in 0..5 {
        tokio::time::sleep(r.rng.secs(2.0, 5.0)).await;
        if !sender.is_finished() {
            r.watch_takeover(1).await;
        }
        r.kill9(active);
        r.spawn(active, &[]);
        active = 1 - active;
    }
    r.heal();
    sender.await.map_err(|e| format!("sending: {e}"))?;
    Ok(r)
}
