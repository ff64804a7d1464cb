//! RabbitMQ → HDFS end to end, on the real lab services, checked through Spark: a quorum queue
//! acknowledged only after publish with redeliveries deduplicated by `message_id` (kill -9,
//! broker restart), a stream read by offset (kill -9), and poison messages quarantined.
//! The test that restarts the broker, and the one that kills the NameNode, have the lab alone
//! (`lab_alone`); the others share it.

mod common;

use std::time::Duration;

use common::*;

fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

struct Setup {
    queue: String,
    table_url: String,
    _dir: tempfile::TempDir,
    pipeline: std::path::PathBuf,
    _lab: LabTurn,
}

/// A fresh queue and table, and the clicks pipeline on them as `customise` adjusts it.
async fn setup(name: &str, queue_type: &str, customise: impl FnOnce(PipelineYaml) -> PipelineYaml) -> Setup {
    let lab = require_rabbitmq();
    let _hdfs = require_hdfs();
    let queue = unique(name);
    declare_queue(&queue, queue_type).await;
    let table_path = format!("/landing-test/{queue}");
    let yaml = customise(PipelineYaml::rabbitmq(&queue.replace('-', "_"), &queue, queue_type).sink_hdfs(&table_path));
    let (dir, pipeline) = yaml.file();
    Setup { table_url: format!("{HDFS_URL}{table_path}"), queue, _dir: dir, pipeline, _lab: lab }
}

fn messages(range: std::ops::Range<u64>, n: u64) -> Vec<(Option<String>, Vec<u8>)> {
    range.map(|i| (Some(format!("evt-{i:09}")), event(i, n).into_bytes())).collect()
}

/// Publishes `n` events in `chunks` chunks with a pause after each, so kills land mid-ingest.
fn publish_slowly(queue: String, n: u64, chunks: u64, pause: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for c in 0..chunks {
            publish_confirmed(&queue, messages(c * n / chunks..(c + 1) * n / chunks, n)).await;
            tokio::time::sleep(pause).await;
        }
    })
}

/// Starts and kill -9s the daemon `rounds` times while `producer` runs; returns kills that
/// landed while messages were still arriving.
async fn kill_rounds(
    pipeline: &std::path::Path,
    log: &std::path::Path,
    rounds: u32,
    producer: &tokio::task::JoinHandle<()>,
) -> u32 {
    let mut rng = 0x9E3779B97F4A7C15u64;
    let mut mid_ingest = 0;
    for round in 0..rounds {
        let mut child = spawn_daemon(pipeline, log);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = Duration::from_millis(2500 + rng % 3000);
        tokio::time::sleep(wait).await;
        child.kill().expect("kill -9");
        child.wait().unwrap();
        if !producer.is_finished() {
            mid_ingest += 1;
        }
        eprintln!("round {round}: killed after {wait:?}");
    }
    mid_ingest
}

#[tokio::test(flavor = "multi_thread")]
async fn quorum_queue_kill_9_lands_every_order_once() {
    let n = 100_000;
    let s = setup("rmq-kill", "quorum", |p| p.roll_max_age("2s")).await;
    let producer = publish_slowly(s.queue.clone(), n, 40, Duration::from_millis(900));
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("landfall.log");
    let mid_ingest = kill_rounds(&s.pipeline, &log, 6, &producer).await;
    producer.await.unwrap();
    assert!(mid_ingest >= 5, "only {mid_ingest} kills landed while messages were arriving");
    let before = spark_verify(&s.table_url, &[])["count"].as_u64().unwrap();
    eprintln!("published before the final run: {before} of {n}");
    assert!(before > 0, "the killed instances published something");
    let summary = run_until_caught_up(&s.pipeline);
    eprintln!("final run: {summary}");
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n, "exact count after 6 kill -9 (log tail:\n{})", tail(&log));
    assert_eq!(v["distinct_ids"], n);
    assert_eq!(queue_ready(&s.queue).await, 0, "every message acknowledged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_publish_and_ack_drops_the_redelivered_duplicates() {
    let n = 30_000;
    // Commits of 5,000 messages: the crash leaves every published message unacknowledged.
    let s = setup("rmq-dedup", "quorum", |p| p.roll_max_age("60s").prefetch(10_000)).await;
    publish_confirmed(&s.queue, messages(0..n, n)).await;
    let crashed = landfall()
        .args(["run", "--until-caught-up"])
        .arg(&s.pipeline)
        .env("LF_TEST_CRASH_POINT", "before_ack")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&crashed.stderr);
    assert!(
        stderr.contains("LF_TEST_CRASH_POINT=before_ack"),
        "the crash point aborts the process after a publish: {stderr}"
    );
    let published = spark_verify(&s.table_url, &[])["count"].as_u64().unwrap();
    assert!(published >= 5_000, "at least one commit was published before the crash: {published}");
    assert_eq!(queue_ready(&s.queue).await as u64, n, "nothing was acknowledged: all {n} are back in the queue");
    let summary = run_until_caught_up(&s.pipeline);
    assert!(
        summary.contains(&format!(
            "{published} redelivered duplicates dropped by message_id, 0 messages without message_id"
        )),
        "every published message came back redelivered and was dropped: {summary}"
    );
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
    assert_eq!(queue_ready(&s.queue).await, 0);
}

/// A backlog of ten unacknowledged windows through a line that holds the broker's bytes for
/// 600 ms: when the queue's ready count reaches 0 the last window is still on the wire, and a
/// backfill that believed the count ended before landing it (issue 10, item 14).
#[tokio::test(flavor = "multi_thread")]
async fn until_caught_up_lands_the_tail_still_on_the_wire() {
    let n = 4_000;
    let line = DelayLine::start("127.0.0.1:5672", Duration::from_millis(600)).await;
    let uri = format!("amqp://guest:guest@{}/%2f", line.addr);
    let s = setup("rmq-wire", "quorum", |p| p.prefetch(200).rabbitmq_uri(&uri).roll_max_age("60s")).await;
    publish_confirmed(&s.queue, messages(0..n, n)).await;
    let pipeline = s.pipeline.clone();
    let summary = tokio::task::spawn_blocking(move || run_until_caught_up(&pipeline)).await.unwrap();
    eprintln!("{summary}");
    let left = queue_ready(&s.queue).await;
    assert_eq!(left, 0, "--until-caught-up exited 0 with {left} of {n} messages still in the queue: {summary}");
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_mid_run_reconnects_and_lands_exactly() {
    let _lab = lab_alone(); // restarts the broker
    let n = 60_000;
    let s = setup("rmq-restart", "quorum", |p| p.roll_max_age("2s")).await;
    publish_confirmed(&s.queue, messages(0..n / 2, n)).await;
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("landfall.log");
    let mut child = spawn_daemon(&s.pipeline, &log);
    tokio::time::sleep(Duration::from_secs(3)).await;
    lab(&["restart", "rabbitmq"]);
    publish_confirmed(&s.queue, messages(n / 2..n, n)).await;
    // The daemon reconnects by itself and drains the queue; SIGTERM then publishes the rest.
    let mut drained = false;
    let mut empty_checks = 0;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        empty_checks = if queue_ready(&s.queue).await == 0 { empty_checks + 1 } else { 0 };
        if empty_checks >= 3 {
            drained = true;
            break;
        }
    }
    signal(&child, SIGTERM);
    let status = child.wait().unwrap();
    assert!(drained, "the daemon did not land everything after the restart (log tail:\n{})", tail(&log));
    assert!(status.success(), "clean exit after SIGTERM");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("RabbitMQ session ended; reconnecting"),
        "one clear line about the lost connection:\n{}",
        tail(&log)
    );
    assert!(text.contains("RabbitMQ session restored"), "and one when it is back:\n{}", tail(&log));
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
    assert_eq!(queue_ready(&s.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_kill_9_lands_exactly_by_offset() {
    let n = 100_000;
    let s = setup("rmq-stream", "stream", |p| p.roll_max_age("2s")).await;
    let producer = publish_slowly(s.queue.clone(), n, 40, Duration::from_millis(900));
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("landfall.log");
    let mid_ingest = kill_rounds(&s.pipeline, &log, 6, &producer).await;
    producer.await.unwrap();
    assert!(mid_ingest >= 5, "only {mid_ingest} kills landed while messages were arriving");
    let summary = run_until_caught_up(&s.pipeline);
    eprintln!("final run: {summary}");
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n, "exact count after 6 kill -9 (log tail:\n{})", tail(&log));
    assert_eq!(v["distinct_ids"], n);
    // Stream offsets tile 0..n: every offset landed in exactly one file.
    let table_path = s.table_url.trim_start_matches(HDFS_URL).to_string();
    let ranges = published_ranges(&table_path).await;
    assert_tiles(&ranges, &[(0, n as i64)].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_are_quarantined_acknowledged_and_never_redelivered() {
    let s = setup("rmq-poison", "quorum", |p| p.roll_max_age("60s")).await;
    let n_good = 5_000u64;
    let mut msgs = messages(0..n_good, n_good);
    let bad: [(&str, Vec<u8>); 4] = [
        ("invalid_json", b"{\"id\":".to_vec()),
        ("missing_required", br#"{"id":"b"}"#.to_vec()),
        ("bad_timestamp", br#"{"id":"b","ts":"yesterday"}"#.to_vec()),
        ("invalid_utf8", b"{\"id\":\"\xff\"}".to_vec()),
    ];
    for k in 0..50 {
        for (j, (_, payload)) in bad.iter().enumerate() {
            msgs.insert((k * 97 + j * 13) % msgs.len(), (Some(format!("bad-{k}-{j}")), payload.clone()));
        }
    }
    publish_confirmed(&s.queue, msgs).await;
    let summary = run_until_caught_up(&s.pipeline);
    assert!(summary.contains(&format!("{n_good} events (200 rejected)")), "summary: {summary}");
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n_good);
    assert_eq!(v["rejected_count"], 200);
    for (reason, _) in &bad {
        assert_eq!(v["rejected_reasons"][reason], 50, "reason {reason}: {v}");
    }
    assert_eq!(queue_ready(&s.queue).await, 0, "poison messages are acknowledged, not requeued");
    // A second run finds nothing: nothing was left to be redelivered.
    let again = run_until_caught_up(&s.pipeline);
    assert!(again.contains("0 events (0 rejected)"), "second run: {again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_custom_ca_and_a_client_certificate_logs_in_by_external_auth() {
    require("RabbitMQ TLS listener", "127.0.0.1:5671");
    let _hdfs = require_hdfs();
    let queue = unique("rmq-tls");
    declare_queue(&queue, "quorum").await;
    let n = 5_000;
    publish_confirmed(&queue, messages(0..n, n)).await;
    let tls = lab_dir().join("rabbitmq/tls");
    let file = |name: &str| tls.join(name).display().to_string();
    let table_path = format!("/landing-test/{queue}");
    // No credentials in the URI: the client certificate (CN=landfall-client) is the login.
    let tls_pipeline = |ca: &str| {
        PipelineYaml::rabbitmq(&queue.replace('-', "_"), &queue, "quorum")
            .rabbitmq_tls_external("amqps://127.0.0.1:5671/%2f", &file(ca), &file("client.pem"), &file("client.key"))
            .sink_hdfs(&table_path)
            .file()
    };
    let (_dir, pipeline) = tls_pipeline("ca.pem");
    let summary = run_until_caught_up(&pipeline);
    assert!(summary.contains(&format!("{n} events (0 rejected)")), "summary: {summary}");
    let v = spark_verify(&format!("{HDFS_URL}{table_path}"), &[]);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
    assert_eq!(queue_ready(&queue).await, 0);

    // A broker certificate that does not chain to the configured CA is refused, and the error
    // says where to look.
    let (_dir2, pipeline2) = tls_pipeline("client.pem");
    let out = landfall().args(["validate", "--connect"]).arg(&pipeline2).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong CA must not validate");
    assert!(
        err.contains("cannot connect to RabbitMQ at 127.0.0.1:5671/%2f") && err.contains("source.rabbitmq"),
        "{err}"
    );
}

// ---- roll.max_open_files and roll.max_buffered_bytes on a queue ---------------------------------

/// `len` characters of hex that differ from row to row (no dictionary or codec shrinks them,
/// so a row's Arrow size is its text size).
fn noise(i: u64, len: usize) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdef"[(x & 15) as usize])
        })
        .collect()
}

/// An order of `shop`, with a `pad`-character tag.
fn shop_event(i: u64, shop: u64, pad: usize) -> (Option<String>, Vec<u8>) {
    let json = format!(
        r#"{{"id":"evt-{i:09}","ts":"2026-11-25T14:00:00Z","shop":"s{shop:02}","tags":["{}"]}}"#,
        noise(i, pad)
    );
    (Some(format!("evt-{i:09}")), json.into_bytes())
}

/// The shop pipeline: commits can only come from the caps under test (max_rows and max_bytes
/// out of reach, max_age 10m, a prefetch whose half is above the message count).
fn shop_pipeline(p: PipelineYaml, partition: &str) -> PipelineYaml {
    p.schema(&[
        ("id", "string", true),
        ("ts", "timestamp", true),
        ("shop", "string", true),
        ("tags", "list<string>", false),
    ])
    .partition(partition)
    .prefetch(60_000)
    .roll_max_rows(30_000)
    .roll_max_bytes("1GiB")
    .roll_max_age("10m")
}

/// Publishes the bursts over one connection, each confirmed, pausing `pause` after each, so the
/// consumer sees them arrive one by one.
fn publish_paced(
    queue: String,
    bursts: Vec<Vec<(Option<String>, Vec<u8>)>>,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (conn, ch) = amqp_channel().await;
        ch.confirm_select(lapin::options::ConfirmSelectOptions::default()).await.expect("confirm.select");
        for burst in bursts {
            let mut confirms = Vec::new();
            for (id, payload) in burst {
                let mut props = lapin::BasicProperties::default().with_delivery_mode(2);
                if let Some(id) = id {
                    props = props.with_message_id(id.into());
                }
                let c = ch
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        lapin::options::BasicPublishOptions::default(),
                        &payload,
                        props,
                    )
                    .await
                    .expect("publish");
                confirms.push(c);
            }
            for c in confirms {
                assert!(
                    matches!(c.await.expect("publisher confirm"), lapin::Confirmation::Ack(None)),
                    "the broker confirms every message"
                );
            }
            tokio::time::sleep(pause).await;
        }
        let _ = conn.close(200, "done".into()).await;
    })
}

/// Waits until `queue` has had no ready message for three checks in a row (at most 60 s).
async fn wait_drained(queue: &str) -> bool {
    let mut empty = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        empty = if queue_ready(queue).await == 0 { empty + 1 } else { 0 };
        if empty >= 3 {
            return true;
        }
    }
    false
}

/// Runs the daemon while `bursts` arrive paced, waits until the queue is drained, then
/// SIGTERMs it (which publishes what is open). Returns the log text.
async fn land_paced(s: &Setup, bursts: Vec<Vec<(Option<String>, Vec<u8>)>>, pause: Duration) -> String {
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("landfall.log");
    let mut child = spawn_daemon(&s.pipeline, &log);
    publish_paced(s.queue.clone(), bursts, pause).await.unwrap();
    let drained = wait_drained(&s.queue).await;
    signal(&child, SIGTERM);
    let status = child.wait().unwrap();
    assert!(drained, "the daemon did not drain the queue (log tail:\n{})", tail(&log));
    assert!(status.success(), "clean exit after SIGTERM (log tail:\n{})", tail(&log));
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn quorum_queue_commits_are_capped_by_max_open_files() {
    const SHOPS: u64 = 40;
    const PER_SHOP: u64 = 250;
    const CAP: usize = 4;
    let n = SHOPS * PER_SHOP;
    let s = setup("rmq-openfiles", "quorum", |p| shop_pipeline(p, "shop={shop}").roll_max_open_files(CAP)).await;
    // One shop after another, 300 ms apart: at least one of the driver's roll checks (every
    // 100 ms) falls between two new partition values, so the bound below is exact whether the
    // cap is checked per message or per tick (as the Kafka driver does).
    let bursts: Vec<_> = (0..SHOPS)
        .map(|shop| (shop * PER_SHOP..(shop + 1) * PER_SHOP).map(|i| shop_event(i, shop, 16)).collect())
        .collect();
    let _log = land_paced(&s, bursts, Duration::from_millis(300)).await;

    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
    // One directory per shop, each with every order of that shop (rows from the footers; the
    // partition column is also a data column here, so Spark reports no partition counts).
    let table_path = s.table_url.trim_start_matches(HDFS_URL).to_string();
    let files = published_files(&table_path).await;
    let mut per_shop: std::collections::BTreeMap<String, i64> = Default::default();
    for f in &files {
        let dir = f.rsplit('/').nth(1).unwrap().to_string();
        *per_shop.entry(dir).or_default() += row_group_rows(f).await.iter().sum::<i64>();
    }
    assert_eq!(per_shop.len(), SHOPS as usize, "one directory per shop: {per_shop:?}");
    assert!(per_shop.iter().all(|(d, c)| d.starts_with("shop=s") && *c == PER_SHOP as i64), "{per_shop:?}");

    // Files published by one commit share its position range (in their names). Past the cap
    // the partition is committed, so a commit holds the cap plus the one file that crossed it.
    let mut commits: std::collections::BTreeMap<(i64, i64), Vec<String>> = Default::default();
    for f in files {
        commits.entry(file_range(&f)).or_default().push(f);
    }
    let (range, worst) = commits.iter().max_by_key(|(_, f)| f.len()).unwrap();
    assert!(
        worst.len() <= CAP + 1,
        "commit of positions {range:?} published {} files at once; roll.max_open_files: {CAP} allows at most {} ({} commits for {SHOPS} shops)",
        worst.len(),
        CAP + 1,
        commits.len()
    );
    // The commit log says the same for the manifests it still holds.
    for m in commit_manifests(&table_path, &s.queue, 0).await {
        let data = m["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| !f["final"].as_str().unwrap().contains("/_rejected/"))
            .count();
        assert!(data <= CAP + 1, "manifest #{} lists {data} data files: {m}", m["seq"]);
    }
    assert_tiles(&published_ranges(&table_path).await, &[(0, n as i64)].into_iter().collect());
    assert_eq!(queue_ready(&s.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn quorum_queue_row_groups_stay_within_the_memory_budget() {
    const ROWS: u64 = 3000;
    const BURST: u64 = 50;
    const PAD: usize = 4000;
    let s = setup("rmq-membudget", "quorum", |p| {
        shop_pipeline(p, "dt={ts:%Y-%m-%d}").compression("none").roll_max_buffered_bytes("1MiB")
    })
    .await;
    // 50 rows (~200 KB) every 150 ms into one file, for 9 s.
    let bursts: Vec<_> =
        (0..ROWS / BURST).map(|b| (b * BURST..(b + 1) * BURST).map(|i| shop_event(i, i % 7, PAD)).collect()).collect();
    let _log = land_paced(&s, bursts, Duration::from_millis(150)).await;

    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], ROWS);
    assert_eq!(v["distinct_ids"], ROWS);
    // A row is ~4.1 KB of Arrow data. With roll.max_buffered_bytes 1MiB the consumer side
    // ships a file's rows once it holds half the budget (512 KiB ≈ 125 rows, plus at most one
    // 50-row burst between two checks), and the writer closes the row group once the open row
    // groups pass the budget (1 MiB counting 256 KiB overhead: ≈ 187 rows) — so a row group
    // holds at most ≈ 187 + 175 = 362 rows. Without the consumer-side half, rows are shipped
    // in 4 MiB chunks (≈ 1000 rows) and every row group holds about 1000.
    const LIMIT: i64 = 512;
    let table_path = s.table_url.trim_start_matches(HDFS_URL).to_string();
    let files = published_files(&table_path).await;
    assert!(!files.is_empty());
    let mut total = 0;
    for f in &files {
        let groups = row_group_rows(f).await;
        total += groups.iter().sum::<i64>();
        let worst = groups.iter().max().copied().unwrap_or(0);
        assert!(
            worst <= LIMIT,
            "{f}: a row group of {worst} rows (~{} KiB) with a 1 MiB memory budget; row groups {groups:?}",
            worst * 4100 / 1024
        );
    }
    assert_eq!(total, ROWS as i64, "the footers count every row");
    assert_eq!(queue_ready(&s.queue).await, 0);
}

/// Two instances on one queue and a stalled commit (issue 10, item 10). Instance X puts its
/// first commit in the log and stalls before its zombie check, holding its deliveries
/// unacknowledged; instance Y starts, recovers X's commit as the newest (re-drives its publish,
/// so its rows are in the table), lands the rest of the queue and stops. X wakes, finds Y's
/// newer commits and is fenced; its session ends and the broker redelivers what X held. X's
/// fence used to retract its commit, so X's next session rebuilt the dedup window with a hole
/// where that commit's ids were and landed their redeliveries twice. Must: exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_adopted_by_another_instance_still_deduplicates_its_redeliveries() {
    let n = 3_000;
    let s = setup("rmq-adopted", "quorum", |p| p.roll_max_age("1s").prefetch(200)).await;
    publish_confirmed(&s.queue, messages(0..n, n)).await;
    let logdir = tempfile::tempdir().unwrap();
    let (x_log, y_log) = (logdir.path().join("x.log"), logdir.path().join("y.log"));
    let mut x = landfall()
        .arg("run")
        .arg(&s.pipeline)
        .env("LANDFALL_LOG_LEVEL", "info")
        .env("LF_TEST_STALL_POINT", "after_commit_point")
        .env("LF_TEST_STALL_SECS", "25")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&x_log).unwrap())
        .spawn()
        .unwrap();
    let log_has = |path: &std::path::Path, text: &str| std::fs::read_to_string(path).unwrap_or_default().contains(text);
    let stalled_at = std::time::Instant::now();
    while !log_has(&x_log, "LF_TEST_STALL_POINT=after_commit_point: stalling") {
        assert!(stalled_at.elapsed() < Duration::from_secs(30), "X never reached the stall:\n{}", tail(&x_log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut y = spawn_daemon(&s.pipeline, &y_log);
    let drained = std::time::Instant::now();
    while queue_ready(&s.queue).await > 0 || !log_has(&y_log, "recovered: resuming after commit #0") {
        assert!(drained.elapsed() < Duration::from_secs(15), "Y did not take the rest:\n{}", tail(&y_log));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // Y's last commit
    signal(&y, SIGTERM);
    assert!(y.wait().unwrap().success(), "{}", tail(&y_log));
    assert!(!log_has(&x_log, "going on"), "X woke before Y finished: raise LF_TEST_STALL_SECS");

    // X wakes, is fenced, and lands what the broker gives back.
    let settled = std::time::Instant::now();
    while !log_has(&x_log, "session restored") || queue_ready(&s.queue).await > 0 {
        assert!(settled.elapsed() < Duration::from_secs(60), "X did not go on:\n{}", tail(&x_log));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal(&x, SIGTERM);
    assert!(x.wait().unwrap().success(), "{}", tail(&x_log));
    assert!(log_has(&x_log, "(fenced"), "X was fenced:\n{}", tail(&x_log));
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["distinct_ids"], n, "every message landed:\n{}", tail(&x_log));
    assert_eq!(v["count"], n, "no redelivery of the adopted commit landed twice:\n{}", tail(&x_log));
    assert_eq!(queue_ready(&s.queue).await, 0);
}

/// A stream deleted and recreated under a committed log: consuming at the committed offset
/// 1000 attached at the new stream's end, and every offset below 1000 would have been dropped
/// as already landed. By default the pipeline stops, naming the committed position and the
/// stream's end; with `on_position_lost: earliest` the new stream lands from its start, in
/// files of a new generation, and the old rows stay.
#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_stream_is_not_skipped_silently() {
    let s = setup("rmq-recreated", "stream", |p| p.roll_max_age("2s")).await;
    publish_confirmed(&s.queue, messages(0..1000, 1600)).await;
    assert!(run_until_caught_up(&s.pipeline).contains(": 1000 events ("));

    let (conn, ch) = amqp_channel().await;
    ch.queue_delete(s.queue.as_str().into(), lapin::options::QueueDeleteOptions::default()).await.unwrap();
    let _ = conn.close(200, "done".into()).await;
    declare_queue(&s.queue, "stream").await;
    publish_confirmed(&s.queue, messages(1000..1500, 1600)).await;

    let out = until_caught_up_within(&s.pipeline, Duration::from_secs(90)).0;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must fail, not report success:\n{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr.contains("resumes at offset 1000, but the stream ends at offset 500")
            && stderr.contains("on_position_lost"),
        "the error names the committed position, the stream's end and the setting:\n{stderr}"
    );
    assert_eq!(spark_verify(&s.table_url, &[])["count"], 1000, "nothing lands before a person decides");

    let table_path = s.table_url.trim_start_matches(HDFS_URL);
    let (_dir, earliest) = PipelineYaml::rabbitmq(&s.queue.replace('-', "_"), &s.queue, "stream")
        .roll_max_age("2s")
        .on_position_lost("earliest")
        .sink_hdfs(table_path)
        .file();
    let out = until_caught_up_within(&earliest, Duration::from_secs(90)).0;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains(": 500 events ("), "{stdout}\n{stderr}");
    assert!(stderr.contains("on_position_lost: earliest moved landing to offset 0"), "{stderr}");
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], 1500, "{v}");
    assert_eq!(v["distinct_ids"], 1500, "{v}");
    let files = published_files(table_path).await;
    assert!(files.iter().any(|f| f.contains(&format!("/part-{}-0-g1-", s.queue))), "{files:?}");
}

// ---- Memory in bytes on the queue path (issue 10, item 7) ---------------------------------------

/// `(VmRSS, VmHWM)` of a running process, in KiB: resident now and the peak so far.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Issue 10, item 7. A queue fills with 6,000 messages of 64 KiB (375 MiB) while the NameNode
/// is down: the writer waits for the store, the driver waits for the writer, and the broker
/// goes on sending up to `prefetch` unacknowledged deliveries per consumer into the client.
/// The daemon's resident memory must stay within a bound derived from `roll.max_buffered_bytes`
/// (8 MiB here), not grow with the queue; once the NameNode is back every message lands once.
#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_store_holds_a_queue_of_large_messages_within_the_memory_budget() {
    let _lab = lab_alone(); // kills the NameNode
    const N: u64 = 6000;
    const PAD: usize = 64 * 1024 - 96;
    const BUDGET_MIB: u64 = 8;
    // The budget's parts (rows being decoded 1/2, rows on their way to the writer 1/4, open row
    // groups 1, deliveries received and not yet decoded 1/4) sum to 2 x `roll.max_buffered_bytes`;
    // real memory runs about 2.5 times the counted bytes (see the default of max_buffered_bytes),
    // and the broker sends a little more before it reads a cancel. Without a bound in bytes the
    // daemon takes in the whole queue (402 MiB more was seen).
    const BOUND_MIB: u64 = 8 * BUDGET_MIB;
    let s = setup("rmq-rss", "quorum", |p| {
        shop_pipeline(p, "dt={ts:%Y-%m-%d}").roll_max_buffered_bytes(&format!("{BUDGET_MIB}MiB")).roll_max_age("5s")
    })
    .await;
    let table_path = s.table_url.trim_start_matches(HDFS_URL).to_string();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("landfall.log");
    let mut child = spawn_daemon(&s.pipeline, &log);
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("consuming from RabbitMQ") {
        assert!(started.elapsed() < Duration::from_secs(30), "the daemon did not start:\n{}", tail(&log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (baseline, _) = rss_kib(child.id()).expect("the daemon runs");

    let outage = Killed::kill("namenode");
    let pid = child.id();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(rss_kib(pid).map_or(0, |(rss, _)| rss));
                std::thread::sleep(Duration::from_millis(100));
            }
            most
        })
    };
    let published = std::time::Instant::now();
    publish_paced(s.queue.clone(), vec![(0..N).map(|i| shop_event(i, 0, PAD)).collect()], Duration::ZERO)
        .await
        .unwrap();
    eprintln!("published {N} messages of 64 KiB in {:.1} s", published.elapsed().as_secs_f64());
    // Long enough for the broker to push whatever the prefetch lets it.
    tokio::time::sleep(Duration::from_secs(10)).await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let most_rss = sampler.join().unwrap();
    let (_, peak) = rss_kib(pid).expect("the daemon survives the outage");
    let ready = queue_ready(&s.queue).await;
    eprintln!(
        "NameNode down: RSS {} MiB before, at most {} MiB sampled, VmHWM {} MiB; {ready} of {N} still ready in the queue",
        baseline / 1024,
        most_rss / 1024,
        peak / 1024
    );
    drop(outage);

    let landing = std::time::Instant::now();
    loop {
        let rows: i64 = published_ranges(&table_path).await.values().flatten().map(|(a, b)| b - a + 1).sum();
        if rows == N as i64 {
            break;
        }
        assert!(landing.elapsed() < Duration::from_secs(120), "{rows} of {N} landed:\n{}", tail(&log));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("landed {N} within {:.1} s of the NameNode's start", landing.elapsed().as_secs_f64());
    signal(&child, SIGTERM);
    assert!(child.wait().unwrap().success(), "clean exit after SIGTERM:\n{}", tail(&log));
    assert!(
        peak.saturating_sub(baseline) <= BOUND_MIB * 1024,
        "with roll.max_buffered_bytes {BUDGET_MIB} MiB the daemon grew from {} MiB to a peak of {} MiB (at most \
         {BOUND_MIB} MiB more allowed) while the store was down; {ready} of {N} messages were left in the queue",
        baseline / 1024,
        peak / 1024
    );
    assert!(ready > 0, "the daemon took in all {N} messages while the store was down");
    // A session may end because the store refused a file (a safe mode that outlasts the in-place
    // retries after the NameNode's start rewinds the queue); it must never end because of a pause.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let ended_by_pause: Vec<&str> =
        text.lines().filter(|l| l.contains("session ended") && !l.contains("reason=publishing failed")).collect();
    assert!(ended_by_pause.is_empty(), "pausing the consumers cost the session: {ended_by_pause:?}\n{}", tail(&log));
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], N, "exact after the outage:\n{}", tail(&log));
    assert_eq!(v["distinct_ids"], N);
    assert_eq!(queue_ready(&s.queue).await, 0);
}
