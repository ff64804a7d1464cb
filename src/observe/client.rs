//! `landfall status`: the facts of `GET /api/status` in the terminal, one line per pipeline,
//! for people (aligned columns, problems under their pipeline) and for scripts (the exit code,
//! or `--json` for the document itself).
//!
//! Exit codes: 0 when the daemon is healthy and every pipeline ready, 1 when not, 2 when the
//! daemon cannot be asked (so a script can tell "unhealthy" from "not running").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use super::status::{CompactionStatus, CompletionStatus, DaemonStatus, PipelineState, PipelineStatus};
use crate::config::HttpListen;

/// Where `landfall status` asks when neither `--url` nor a fixed-port `http_listen` says
/// otherwise: at the default `http_listen`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9464";

/// Longer than a healthy daemon ever takes to answer, short enough for a health-check script.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the status could not be read. Every variant means exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach landfall at {url}: {source}\n\
         Check that landfall is running (systemctl status landfall) and that its http_listen \
         setting (or LANDFALL_HTTP_LISTEN) is that address; otherwise pass --url."
    )]
    Unreachable { url: String, source: ureq::Error },
    #[error("{url} answered HTTP {status}; is that address landfall's http_listen? (pass --url)")]
    HttpStatus { url: String, status: u16 },
    #[error("{url} did not answer a landfall status document ({source}); is that address landfall's http_listen?")]
    NotStatus { url: String, source: serde_json::Error },
}

/// The URL `landfall status` asks by default for the daemon's `http_listen` setting: `None`
/// when the server is off or on a port picked at start (`:0`), which only the daemon's log
/// names. A wildcard address (`0.0.0.0`, `[::]`) is asked on loopback.
pub fn url_for_listen(http_listen: HttpListen) -> Option<String> {
    let HttpListen::At(addr) = http_listen else { return None };
    if addr.port() == 0 {
        return None;
    }
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    Some(format!("http://{}", SocketAddr::new(ip, addr.port())))
}

/// `landfall status`: asks the daemon at `base_url`, prints the lines (or the raw document
/// with `json`) and returns the exit code described in the module doc.
pub fn run(base_url: &str, json: bool) -> ExitCode {
    match fetch(base_url) {
        Ok((raw, status)) => {
            if json {
                println!("{}", raw.trim_end());
            } else {
                status_lines(&status).iter().for_each(|l| println!("{l}"));
            }
            ExitCode::from(exit_code(&status))
        }
        Err(e) => {
            eprintln!("landfall status: {e}");
            ExitCode::from(2)
        }
    }
}

/// `GET <base_url>/api/status`: the body as served and the document parsed from it.
pub fn fetch(base_url: &str) -> Result<(String, DaemonStatus), ClientError> {
    let url = format!("{}/api/status", base_url.trim_end_matches('/'));
    // Status codes are answers, not transport failures: report them as such.
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into();
    let unreachable = |source| ClientError::Unreachable { url: url.clone(), source };
    let mut response = agent.get(&url).call().map_err(unreachable)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(ClientError::HttpStatus { url, status });
    }
    let raw = response.body_mut().read_to_string().map_err(unreachable)?;
    let doc = serde_json::from_str(&raw).map_err(|source| ClientError::NotStatus { url: url.clone(), source })?;
    Ok((raw, doc))
}

/// 0 when the daemon is healthy and every pipeline is ready and not stuck, else 1.
pub fn exit_code(status: &DaemonStatus) -> u8 {
    let all_ready = status.pipelines.iter().all(|p| p.ready && !p.stuck);
    if status.ready && status.healthy && all_ready {
        0
    } else {
        1
    }
}

/// Column headings; numbers are right-aligned so their digits line up.
const HEADINGS: [&str; 7] = ["PIPELINE", "STATE", "READY", "EVENTS/S", "LAG", "LAST COMMIT", "REJECTED"];
const RIGHT_ALIGNED: [bool; 7] = [false, false, false, true, true, true, true];

/// What `landfall status` prints: a heading, one aligned line per pipeline with its problems
/// and, with `partition.completion`, where completion stands indented under it, and a line on
/// the daemon's health when it is not healthy.
pub fn status_lines(status: &DaemonStatus) -> Vec<String> {
    if status.pipelines.is_empty() {
        return vec![format!("landfall {}: no pipelines running", status.version)];
    }
    let rows: Vec<[String; 7]> = status.pipelines.iter().map(cells).collect();
    let widths: Vec<usize> = (0..HEADINGS.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([HEADINGS[c].len()]).max().unwrap_or(0))
        .collect();
    let mut lines = vec![aligned(&HEADINGS.map(String::from), &widths)];
    for (row, p) in rows.iter().zip(&status.pipelines) {
        lines.push(aligned(row, &widths));
        lines.extend(p.problems.iter().map(|problem| format!("    ! {problem}")));
        lines.extend(p.completion.as_ref().map(completion_line));
        lines.extend(p.compaction.as_ref().map(compaction_line));
    }
    if !status.healthy {
        lines.push("daemon unhealthy: a pipeline is stuck (GET /health answers 503)".to_string());
    }
    lines
}

/// One pipeline's cells, in [`HEADINGS`] order.
fn cells(p: &PipelineStatus) -> [String; 7] {
    [
        p.name.clone(),
        state_word(p.state).to_string(),
        readiness(p).to_string(),
        format!("{}/s", compact(p.events_per_second)),
        p.lag.map_or_else(|| "unknown".to_string(), |lag| compact(lag as f64)),
        p.last_commit_age_seconds.map_or_else(|| "never".to_string(), |s| format!("{} ago", age(s))),
        p.events_rejected.to_string(),
    ]
}

/// Idle partitions named on the completion line; the rest are counted.
const IDLE_NAMED: usize = 5;

/// Where partition completion stands, as the status page's completion box says it: the
/// completed frontier, the watermark and the partition holding it, the idle partitions. Only
/// the completer (the instance holding the first source partition) knows the watermark.
fn completion_line(c: &CompletionStatus) -> String {
    let until = c.completed_until.as_deref().map_or_else(|| "none yet".to_string(), utc);
    let mut line = format!("    completion: complete until {until}");
    if !c.completer {
        line.push_str("; the watermark is decided by the instance holding the first source partition");
        return line;
    }
    let watermark = c.watermark.as_deref().map_or_else(|| "unknown".to_string(), utc);
    line.push_str(&format!("; watermark {watermark}"));
    if let Some(held_by) = &c.held_by {
        line.push_str(&format!(", held by {held_by}"));
    }
    if !c.idle.is_empty() {
        let mut names = c.idle.iter().take(IDLE_NAMED).cloned().collect::<Vec<_>>().join(", ");
        if c.idle.len() > IDLE_NAMED {
            names.push_str(&format!(" +{} more", c.idle.len() - IDLE_NAMED));
        }
        line.push_str(&format!("; idle: {names}"));
    }
    line
}

/// What compaction did on this instance since it started, and what fails.
fn compaction_line(c: &CompactionStatus) -> String {
    let mut line = format!("    compaction: {} partitions compacted", c.partitions);
    if c.partitions > 0 {
        line.push_str(&format!(
            ", {} files into {} ({}B into {}B)",
            c.files_in,
            c.files_out,
            compact(c.bytes_in as f64),
            compact(c.bytes_out as f64)
        ));
    }
    if let Some(failing) = &c.failing {
        line.push_str(&format!("; FAILING: {failing}"));
    }
    if !c.deferred.is_empty() {
        let n = c.deferred.len();
        line.push_str(&if n == 1 {
            "; 1 partition waits to be tried again".to_string()
        } else {
            format!("; {n} partitions wait to be tried again")
        });
    }
    line
}

/// An RFC 3339 instant as "2026-11-25 17:00:00 UTC" (as the status page shows it), or as given
/// when it does not parse.
fn utc(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map_or_else(|_| at.to_string(), |t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn state_word(state: PipelineState) -> &'static str {
    match state {
        PipelineState::Starting => "starting",
        PipelineState::Running => "running",
        PipelineState::Restarting => "restarting",
        PipelineState::Stopped => "stopped",
    }
}

/// Capitals for the states that need someone, so they stand out in a column of "ready".
fn readiness(p: &PipelineStatus) -> &'static str {
    match (p.stuck, p.ready) {
        (true, _) => "STUCK",
        (false, true) => "ready",
        (false, false) => "NOT READY",
    }
}

/// Cells padded to `widths`, two spaces apart, without trailing blanks.
fn aligned(cells: &[String; 7], widths: &[usize]) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .zip(RIGHT_ALIGNED)
        .map(|((cell, &w), right)| if right { format!("{cell:>w$}") } else { format!("{cell:<w$}") })
        .collect();
    padded.join("  ").trim_end().to_string()
}

/// 12345.0 → "12.3k": three significant digits and a unit, like the status page.
pub fn compact(n: f64) -> String {
    let units = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    match units.iter().find(|(div, _)| n.abs() >= *div) {
        Some((div, unit)) => format!("{}{unit}", three_digits(n / div)),
        None => three_digits(n),
    }
}

/// Three significant digits (for 1 ≤ |x| < 1000) without trailing zeros: 12.30 → "12.3".
fn three_digits(x: f64) -> String {
    let decimals = match x.abs() {
        a if a >= 100.0 || a == 0.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Seconds as a person reads them: "8.4 s", "42 s", "4 min 11 s", "3 h 5 min", "2 d 4 h".
pub fn age(seconds: f64) -> String {
    if seconds < 10.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    match () {
        _ if s < 60 => format!("{s} s"),
        _ if h == 0 => format!("{m} min {} s", s % 60),
        _ if d == 0 => format!("{h} h {} min", m % 60),
        _ => format!("{d} d {} h", h % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document the status page is developed against; parsing it keeps it true to the contract.
    fn fixture() -> DaemonStatus {
        serde_json::from_str(include_str!("../../tests/fixtures/status.json")).expect("the fixture is a DaemonStatus")
    }

    #[test]
    fn lines_are_aligned_with_problems_under_their_pipeline() {
        let lines = status_lines(&fixture());
        let expected = [
            "PIPELINE  STATE       READY  EVENTS/S    LAG     LAST COMMIT  REJECTED",
            "clicks    running     ready   13.5k/s   1.6k       8.4 s ago      1235",
            "orders    restarting  STUCK       0/s  18.3k  4 min 11 s ago         0",
            "    ! store: the NameNode at hdfs://namenode:9000 refuses connections (Connection refused): check that HDFS is up (./bootstrap.sh status) and the sink url",
            "    ! stuck: no commit for 4 min 11 s while 18,650 messages wait (limit: 3 × roll.max_age = 3 min)",
            "daemon unhealthy: a pipeline is stuck (GET /health answers 503)",
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn completion_is_one_line_under_its_pipeline_in_utc() {
        let mut status = fixture();
        status.pipelines.truncate(1);
        status.pipelines[0].completion = Some(CompletionStatus {
            completer: true,
            watermark: Some("2026-11-25T19:48:12+01:00".to_string()),
            completed_until: Some("2026-11-25T17:00:00Z".to_string()),
            held_by: Some("clicks[3]".to_string()),
            idle: (0..7).map(|p| format!("clicks[{p}]")).collect(),
        });
        assert_eq!(
            status_lines(&status)[2],
            "    completion: complete until 2026-11-25 17:00:00 UTC; watermark 2026-11-25 18:48:12 UTC, \
             held by clicks[3]; idle: clicks[0], clicks[1], clicks[2], clicks[3], clicks[4] +2 more"
        );

        let c = status.pipelines[0].completion.as_mut().unwrap();
        (c.completer, c.watermark, c.completed_until, c.held_by, c.idle) = (false, None, None, None, vec![]);
        assert_eq!(
            status_lines(&status)[2],
            "    completion: complete until none yet; the watermark is decided by the instance holding \
             the first source partition"
        );
        let c = status.pipelines[0].completion.as_mut().unwrap();
        c.completer = true;
        assert_eq!(status_lines(&status)[2], "    completion: complete until none yet; watermark unknown");
    }

    #[test]
    fn compaction_is_one_line_under_completion_naming_what_fails() {
        let mut status = fixture();
        status.pipelines.truncate(1);
        status.pipelines[0].completion = Some(CompletionStatus::default());
        status.pipelines[0].compaction = Some(CompactionStatus::default());
        assert_eq!(status_lines(&status)[3], "    compaction: 0 partitions compacted");
        status.pipelines[0].compaction = Some(CompactionStatus {
            partitions: 4,
            files_in: 96,
            files_out: 4,
            bytes_in: 2_140_000,
            bytes_out: 1_870_000,
            failing: Some("compaction of dt=2026-11-25/hour=16: part-000.parquet is not Parquet".to_string()),
            deferred: vec!["dt=2026-11-25/hour=16".to_string()],
        });
        assert_eq!(
            status_lines(&status)[3],
            "    compaction: 4 partitions compacted, 96 files into 4 (2.14MB into 1.87MB); FAILING: compaction of \
             dt=2026-11-25/hour=16: part-000.parquet is not Parquet; 1 partition waits to be tried again"
        );
    }

    #[test]
    fn exit_code_is_zero_only_when_everything_is_ready() {
        let mut status = fixture();
        assert_eq!(exit_code(&status), 1);
        status.pipelines.truncate(1);
        status.ready = true;
        status.healthy = true;
        assert_eq!(exit_code(&status), 0);
        status.pipelines[0].ready = false;
        assert_eq!(exit_code(&status), 1, "a pipeline not ready fails even if the summary says ready");
    }

    #[test]
    fn not_ready_and_unknowns_are_spelled_out() {
        let mut status = fixture();
        status.pipelines.truncate(1);
        let p = &mut status.pipelines[0];
        (p.ready, p.lag, p.last_commit_age_seconds) = (false, None, None);
        let lines = status_lines(&status);
        assert!(
            lines[1].contains("NOT READY") && lines[1].contains("unknown") && lines[1].contains("never"),
            "{lines:?}"
        );
    }

    #[test]
    fn no_pipelines_is_one_line() {
        let mut status = fixture();
        status.pipelines.clear();
        assert_eq!(status_lines(&status), ["landfall 0.4.0: no pipelines running"]);
    }

    #[test]
    fn numbers_and_ages_read_at_a_glance() {
        let cases = [(0.0, "0"), (0.5, "0.5"), (999.0, "999"), (12_345.0, "12.3k"), (1_000.0, "1k"), (2.5e6, "2.5M")];
        for (n, text) in cases {
            assert_eq!(compact(n), text, "{n}");
        }
        let ages =
            [(8.42, "8.4 s"), (42.0, "42 s"), (251.3, "4 min 11 s"), (11_100.0, "3 h 5 min"), (187_200.0, "2 d 4 h")];
        for (s, text) in ages {
            assert_eq!(age(s), text, "{s}");
        }
    }

    #[test]
    fn default_url_follows_a_fixed_http_listen() {
        let at = |addr: &str| url_for_listen(HttpListen::At(addr.parse().unwrap()));
        assert_eq!(at("127.0.0.1:9464").as_deref(), Some(DEFAULT_URL));
        assert_eq!(at("0.0.0.0:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(at("[::]:9464").as_deref(), Some("http://[::1]:9464"));
        assert_eq!(at("127.0.0.1:0"), None, "a port picked at start is only in the log");
        assert_eq!(url_for_listen(HttpListen::Off), None);
    }

    #[test]
    fn an_address_nobody_listens_on_is_unreachable_and_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let err = fetch(&url).unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("{url}/api/status")) && text.contains("http_listen"), "{text}");
    }
}
