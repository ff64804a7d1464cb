//! The live status page in a real browser: a daemon lands Kafka events, headless Chromium
//! (Debian's `chromium`) loads `GET /`, and what it rendered after the page's first refreshes
//! must name the pipeline, draw its events/s chart and show its partition completion (the
//! watermark, the completed frontier, the partition holding the watermark, the idle ones) as
//! `/api/status` reports it. A screenshot is kept under
//! `target/test-artifacts/status-page.png` for people to look at. `landfall status` is checked
//! against the same daemon.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use landfall::observe::status::{CompletionStatus, DaemonStatus, PipelineStatus};

/// Events produced: enough for a visible rate, few enough to land in seconds.
const EVENTS: u64 = 3_000;

/// The watermark once every event landed, with 10 minutes of allowed lateness: partition 0
/// (the even events) reached 17:29:51.6 with event 2998, partition 1 17:29:55.8, so partition
/// 0 holds it at 17:19:51.6 (RFC 3339 to the second in `/api/status`).
const WATERMARK: &str = "2026-11-25T17:19:51Z";
/// Every hour ending at or before the watermark: 14:00 to 17:00.
const COMPLETED_UNTIL: &str = "2026-11-25T17:00:00Z";

/// The daemon under test, stopped with SIGTERM by [`Daemon::stop`] or killed if the test
/// fails before (so no daemon outlives a failed test).
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// `landfall run PIPELINE` with its HTTP server on a free port (the harness's `landfall()`
    /// sets `LANDFALL_HTTP_LISTEN=127.0.0.1:0`); text logs, so `http_addr` can read the port.
    fn start(pipeline: &Path, log: PathBuf) -> Daemon {
        let log_file = std::fs::File::create(&log).unwrap();
        let child = landfall()
            .arg("run")
            .arg(pipeline)
            .env("LANDFALL_LOG_LEVEL", "info")
            .env("LANDFALL_LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start landfall");
        Daemon { child: Some(child), log }
    }

    /// SIGTERM, then waits for the exit (a clean stop publishes and commits within the
    /// settings' shutdown deadline).
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        signal(&child, SIGTERM);
        let status = wait_with_deadline(&mut child, Duration::from_secs(45));
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.is_some_and(|s| s.success()), "landfall did not stop cleanly on SIGTERM ({status:?}):\n{log}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("daemon log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

/// `/api/status` as the page reads it.
fn status(addr: SocketAddr) -> DaemonStatus {
    let (code, body) = http_get(addr, "/api/status");
    assert_eq!(code, 200, "GET /api/status: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/status is not a DaemonStatus ({e}): {body}"))
}

/// Waits until `pipeline` landed every event and its history has two points (so a chart has
/// a line to draw); returns its status then.
fn wait_landed(addr: SocketAddr, pipeline: &str, events: u64) -> PipelineStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let doc = status(addr);
        let p = doc.pipelines.iter().find(|p| p.name == pipeline).unwrap_or_else(|| panic!("{pipeline} in {doc:?}"));
        if p.events_landed == events && p.history.events_per_second.len() >= 2 {
            return p.clone();
        }
        assert!(Instant::now() < deadline, "{pipeline} did not land {events} events with 2 history points: {p:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until the completion pass after the landing reported `want` (a pass runs at start,
/// before anything landed, then every 30 s); fails with the last status otherwise.
fn wait_completion(addr: SocketAddr, pipeline: &str, want: &CompletionStatus) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let doc = status(addr);
        let p = doc.pipelines.iter().find(|p| p.name == pipeline).unwrap_or_else(|| panic!("{pipeline} in {doc:?}"));
        if p.completion.as_ref() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{pipeline}'s completion never became {want:?}: {:?}", p.completion);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// An RFC 3339 instant as the page shows it: `2026-11-25 17:19:51 UTC`.
fn readable_utc(at: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at} is not RFC 3339: {e}"));
    t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The points of the line drawn in an SVG: every `M`/`L` of its `<path class="line">`, or
/// every `x,y` of a `<polyline>`.
fn drawn_points(svg: &str) -> usize {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let t = &svg[svg.find(tag)?..];
        let t = &t[..t.find('>')?];
        let v = &t[t.find(&format!(" {name}=\""))? + name.len() + 3..];
        Some(v[..v.find('"')?].to_string())
    };
    if let Some(d) = attr("<path class=\"line\"", "d") {
        return d.split(['M', 'L']).filter(|p| p.contains(',')).count();
    }
    attr("<polyline", "points").map_or(0, |pts| pts.split_whitespace().count())
}

/// Where the screenshot is kept: `<target dir>/test-artifacts/` (CARGO_TARGET_TMPDIR is
/// `<target dir>/tmp`, so this follows CARGO_TARGET_DIR).
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_shows_a_running_pipeline_with_its_chart_in_chromium() {
    let Some(browser) = chromium() else { return };
    let _kafka = require_kafka();
    let topic = unique("status-page");
    create_topic(&topic, 2).await;
    let name = topic.replace('-', "_");
    let table = tempfile::tempdir().unwrap();
    // An hour of idle timeout: no partition turns idle during the test, so the watermark stays
    // where the events put it.
    let (_pipeline_dir, pipeline) =
        PipelineYaml::kafka(&name, &topic).roll_max_age("2s").sink_local(table.path()).completion("10m", "1h").file();
    let work = tempfile::tempdir().unwrap();

    let daemon = Daemon::start(&pipeline, work.path().join("landfall.log"));
    let addr = http_addr(&daemon.log);
    produce(&topic, (0..EVENTS).map(|i| ((i % 2) as i32, event(i, EVENTS).into_bytes()))).await;
    let completion = CompletionStatus {
        completer: true,
        watermark: Some(WATERMARK.to_string()),
        completed_until: Some(COMPLETED_UNTIL.to_string()),
        held_by: Some(format!("{topic}[0]")),
        idle: vec![],
    };
    let want = completion.clone();
    let landed = tokio::task::spawn_blocking(move || {
        let landed = wait_landed(addr, &name, EVENTS);
        wait_completion(addr, &name, &want);
        landed
    })
    .await
    .unwrap();
    let name = landed.name.as_str();

    // What the page rendered after its refreshes.
    let url = format!("http://{addr}/");
    let dom = chromium_run(browser, work.path(), &url, &["--dump-dom"]);
    let card = element(&dom, "section", &format!("data-pipeline=\"{name}\""))
        .unwrap_or_else(|| panic!("no section.pipeline[data-pipeline={name}] in the page:\n{dom}"));
    assert!(card.starts_with("<section class=\"pipeline"), "the card is a section.pipeline: {card}");
    let chart = element(card, "svg", "data-series=\"events_per_second\"")
        .unwrap_or_else(|| panic!("no events/s chart in {name}'s card:\n{card}"));
    assert!(chart.starts_with("<svg class=\"chart\""), "the chart is an svg.chart: {chart}");
    let points = drawn_points(chart);
    assert!(points >= 2, "the events/s chart draws {points} points, expected at least 2:\n{chart}");
    assert!(element(card, "svg", "data-series=\"lag\"").is_some(), "no lag chart in {name}'s card:\n{card}");
    assert!(dom.contains("id=\"updated\"") && dom.contains("updated "), "the page says when it last updated:\n{dom}");

    // Partition completion as /api/status reported it: both instants in readable UTC, the
    // partition holding the watermark, how many partitions are idle.
    let done = element(card, "dl", "class=\"completion\"")
        .unwrap_or_else(|| panic!("no dl.completion (partition completion) in {name}'s card:\n{card}"));
    for (field, at) in [("watermark", WATERMARK), ("completed_until", COMPLETED_UNTIL)] {
        let shown = format!("data-field=\"{field}\"><time datetime=\"{at}\">{}</time>", readable_utc(at));
        assert!(done.contains(&shown), "{name}'s completion does not show {field} {at} as `{shown}`:\n{done}");
    }
    let held_by = completion.held_by.as_deref().unwrap();
    assert!(done.contains(&format!("data-field=\"held_by\"><code>{held_by}</code>")), "held by {held_by}:\n{done}");
    assert!(done.contains("data-field=\"idle\" data-count=\"0\">0<"), "no partition is idle:\n{done}");

    // A screenshot for people: kept, and more than an empty page.
    let png = artifacts_dir().join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    chromium_run(browser, work.path(), &url, &[&shot, "--window-size=1280,900"]);
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", png.display());
    assert!(bytes.len() > 20_000, "{} is {} bytes: an empty page?", png.display(), bytes.len());

    // The same facts in the terminal: one line naming the pipeline as running and ready.
    let out = landfall().args(["status", "--url", &format!("http://{addr}")]).output().expect("landfall status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"));
    assert!(line.contains("running") && line.contains("ready"), "{line}");
    assert_eq!(out.status.code(), Some(0), "landfall status exits 0 when all is ready:\n{stdout}");

    daemon.stop();
}
