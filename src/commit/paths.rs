//! Where everything lives under a table root. One function per kind of path, so the layout
//! can be read in one place:
//!
//! ```text
//! <table>/<hive dir>/part-<topic>-<partition>-<start:020>-<end:020>-<n:03>.<ext>   published data
//! <table>/<hive dir>/part-<topic>-<partition>-g<gen>-<start:020>-…               after a position jump
//! <table>/_rejected/<…>/part-…                                                  published quarantine
//! <table>/_landfall/staging/<run-id>/<uuid>.parquet                             written, not committed
//! <table>/_landfall/tmp/<topic>-<partition>-<seq:020>-<uuid>.json               manifest before commit
//! <table>/_landfall/commits/<topic>/<partition>/<seq:020>.json                  the commit log
//! ```
//!
//! Spark and Hive skip every name starting with `_`, so nothing under `_landfall/` or
//! `_rejected/` is ever read as table data.

use crate::commit::CommitError;

/// The directory (under the table root) holding Landfall's own state.
pub const STATE_DIR: &str = "_landfall";

/// Checks and normalises a table root: absolute, not the store root, no trailing `/`.
pub fn table_root(root: &str) -> Result<String, CommitError> {
    let trimmed = root.trim_end_matches('/');
    if !root.starts_with('/') || trimmed.is_empty() {
        return Err(CommitError::Invalid(format!(
            "table root {root:?} must be an absolute path below the store root, e.g. /landing/clicks"
        )));
    }
    check_segments(&trimmed[1..], "table root")?;
    Ok(trimmed.to_string())
}

/// Escapes a source name (topic) for use inside a file or directory name.
///
/// Kafka topics only use `[A-Za-z0-9._-]`, which pass through unchanged; anything else (future
/// sources, RabbitMQ stream names) becomes `%XX` per UTF-8 byte, the escaping Hive uses for
/// partition values. `.` and `..` are escaped entirely so a name can never climb directories.
pub fn escape_name(name: &str) -> String {
    if name == "." || name == ".." {
        return name.replace('.', "%2E");
    }
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// HDFS' limit on one path component, in bytes (`dfs.namenode.fs-limits.max-component-length`,
/// 255 by default; local file systems have the same).
pub const MAX_NAME_BYTES: usize = 255;

/// How much of a long source name a shortened name keeps, so a listing stays readable.
const KEPT_PREFIX_BYTES: usize = 64;

/// The escaped source name for a file or directory name that has `other_bytes` besides it.
///
/// Kafka topics reach 249 characters and RabbitMQ queue names 255 bytes (765 once escaped), so
/// a name built from one can pass HDFS' 255-byte limit. Such a name gets the first 64 bytes of
/// the escaped name, `~` (which escaping never produces) and 16 hex digits of a hash of the
/// whole name: still readable, still distinct. A name that fits keeps the exact form earlier
/// versions wrote, so an upgrade finds its commit log and file names unchanged.
fn fitted_name(name: &str, other_bytes: usize) -> String {
    let escaped = escape_name(name);
    if escaped.len() + other_bytes <= MAX_NAME_BYTES {
        return escaped;
    }
    let mut cut = KEPT_PREFIX_BYTES.min(escaped.len());
    // Never split a `%XX` escape.
    if let Some(at) = escaped[cut.saturating_sub(2)..cut].find('%') {
        cut = cut.saturating_sub(2) + at;
    }
    format!("{}~{:016x}", &escaped[..cut], fnv1a64(name.as_bytes()))
}

/// FNV-1a, 64 bit: stable across versions and platforms (file names depend on it).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A fresh run id: UTC start time plus 8 random hex digits, e.g. `20261125T170102Z-1a2b3c4d`.
/// Names this process's staging directory; sortable, so an operator sees which run is older.
pub fn new_run_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), &id[..8])
}

/// The staging directory of one run: `<table>/_landfall/staging/<run-id>`.
pub fn staging_dir(table_root: &str, run_id: &str) -> String {
    format!("{}/{STATE_DIR}/staging/{run_id}", table_root.trim_end_matches('/'))
}

/// A new, unique hidden path for a file about to be written:
/// `<table>/_landfall/staging/<run-id>/<uuid>.parquet`.
pub fn staged_path(table_root: &str, run_id: &str) -> String {
    format!("{}/{}.parquet", staging_dir(table_root, run_id), uuid::Uuid::new_v4().simple())
}

/// The deterministic published file name for the `n`-th file of a commit covering
/// `start..=end` of `topic`/`partition`, e.g.
/// `part-clicks-3-00000000000000000100-00000000000000000199-000.zstd.parquet`.
///
/// Zero-padded offsets sort lexically in offset order and make the source position of every
/// row visible in a listing; `n` keeps the names of one commit distinct. `ext` is the suffix
/// after the counter (`zstd.parquet`), lower-case letters, digits and inner dots only.
/// A `generation` above 0 (the partition's position jumped, see `on_position_lost`) follows
/// the partition as `-g<generation>`: `part-clicks-3-g1-…`, so offsets that a recreated topic
/// numbers again never take an old file's name.
pub fn final_file_name(
    topic: &str,
    partition: i32,
    generation: u64,
    start: i64,
    end: i64,
    n: usize,
    ext: &str,
) -> Result<String, CommitError> {
    let ext_ok = !ext.is_empty()
        && !ext.starts_with('.')
        && !ext.ends_with('.')
        && ext.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.');
    if !ext_ok {
        return Err(CommitError::Invalid(format!(
            "file extension {ext:?} must be lower-case letters, digits and inner dots, e.g. zstd.parquet"
        )));
    }
    let generation = if generation == 0 { String::new() } else { format!("-g{generation}") };
    let rest = format!("-{partition}{generation}-{start:020}-{end:020}-{n:03}.{ext}");
    Ok(format!("part-{}{rest}", fitted_name(topic, "part-".len() + rest.len())))
}

/// `<table>/<dir>/<file_name>`; `dir` is relative to the table (`dt=2026-11-25/hour=17`,
/// `_rejected/dt=2026-11-25`, or empty for the table root) and may not leave the table or
/// point into `_landfall/`.
pub fn final_path(table_root: &str, dir: &str, file_name: &str) -> Result<String, CommitError> {
    let root = table_root.trim_end_matches('/');
    if dir.is_empty() {
        return Ok(format!("{root}/{file_name}"));
    }
    check_segments(dir, "partition directory")?;
    if dir.split('/').next() == Some(STATE_DIR) {
        return Err(CommitError::Invalid(format!(
            "partition directory {dir:?} points into {STATE_DIR}/, which holds Landfall's own state"
        )));
    }
    Ok(format!("{root}/{dir}/{file_name}"))
}

/// The commit log directory of one partition: `<table>/_landfall/commits/<topic>/<partition>`.
pub fn commit_dir(table_root: &str, topic: &str, partition: i32) -> String {
    format!("{}/{STATE_DIR}/commits/{}/{partition}", table_root.trim_end_matches('/'), fitted_name(topic, 0))
}

/// The manifest for commit number `seq`: `<commit dir>/<seq:020>.json`.
pub fn manifest_path(commit_dir: &str, seq: u64) -> String {
    format!("{commit_dir}/{seq:020}.json")
}

/// The sequence number of a manifest file name, `None` for any other name.
pub fn parse_manifest_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where manifests are written before the commit rename: `<table>/_landfall/tmp`.
pub fn tmp_dir(table_root: &str) -> String {
    format!("{}/{STATE_DIR}/tmp", table_root.trim_end_matches('/'))
}

/// A fresh temp name for a manifest (unique per attempt, so a retried create never collides
/// with the remains of a lost one).
pub fn tmp_manifest_path(table_root: &str, topic: &str, partition: i32, seq: u64) -> String {
    let rest = format!("-{partition}-{seq:020}-{}.json", uuid::Uuid::new_v4().simple());
    format!("{}/{}{rest}", tmp_dir(table_root), fitted_name(topic, rest.len()))
}

/// The last component of a `/`-separated path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Run ids become directory names: letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn check_run_id(run_id: &str) -> Result<(), CommitError> {
    let ok = !run_id.is_empty()
        && !run_id.starts_with('.')
        && run_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CommitError::Invalid(format!(
            "run id {run_id:?} must be letters, digits, '.', '_' or '-' and not start with '.'"
        )))
    }
}

/// The publish-time rule, shared with routing ([`crate::partition::segment_problem`]), so a
/// value routing accepted can never make a commit fail.
fn check_segments(rel: &str, what: &str) -> Result<(), CommitError> {
    for seg in rel.split('/') {
        if let Some(why) = crate::partition::segment_problem(seg) {
            return Err(CommitError::Invalid(format!(
                "{what} {rel:?} has a path segment {seg:?} that is unsafe: {why}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_unsafe_bytes() {
        assert_eq!(escape_name("clicks.v2_raw-EU"), "clicks.v2_raw-EU");
        assert_eq!(escape_name("a/b c"), "a%2Fb%20c");
        assert_eq!(escape_name("é"), "%C3%A9");
        assert_eq!(escape_name(".."), "%2E%2E");
        assert_eq!(escape_name("50%"), "50%25");
    }

    #[test]
    fn names_from_long_sources_fit_hdfs_and_stay_distinct() {
        let topic = "t".repeat(249);
        let other = format!("{}u", "t".repeat(248));
        let file = final_file_name(&topic, 2_147_483_647, 0, i64::MAX, i64::MAX, 999, "snappy.parquet").unwrap();
        assert!(file.len() <= MAX_NAME_BYTES, "{} bytes: {file}", file.len());
        assert!(file.starts_with(&format!("part-{}~", "t".repeat(64))), "readable prefix: {file}");
        assert_ne!(file, final_file_name(&other, 2_147_483_647, 0, i64::MAX, i64::MAX, 999, "snappy.parquet").unwrap());
        let queue = "é".repeat(127); // 254 bytes, 762 escaped
        let dir = commit_dir("/t", &queue, 0);
        let component = dir.split('/').nth(4).unwrap();
        assert!(component.len() <= MAX_NAME_BYTES && component.contains('~'), "{component}");
        assert!(component.starts_with("%C3%A9") && !component.split('~').next().unwrap().ends_with('%'));
        let tmp = tmp_manifest_path("/t", &topic, 7, 42);
        assert!(file_name(&tmp).len() <= MAX_NAME_BYTES, "{tmp}");
    }

    #[test]
    fn names_that_fit_keep_the_form_earlier_versions_wrote() {
        let topic = "t".repeat(180);
        let file = final_file_name(&topic, 0, 0, 0, 9, 0, "zstd.parquet").unwrap();
        assert_eq!(file, format!("part-{topic}-0-{:020}-{:020}-000.zstd.parquet", 0, 9));
        assert_eq!(commit_dir("/t", &"q".repeat(249), 3), format!("/t/_landfall/commits/{}/3", "q".repeat(249)));
        assert_eq!(fnv1a64(b"clicks"), 0xb2f9_583e_6f8c_b8b4, "the hash is part of the file names: never change it");
    }

    #[test]
    fn final_name_is_deterministic_and_sortable() {
        assert_eq!(
            final_file_name("clicks", 3, 0, 100, 199, 7, "zstd.parquet").unwrap(),
            "part-clicks-3-00000000000000000100-00000000000000000199-007.zstd.parquet"
        );
        assert_eq!(
            final_file_name("a/b", 0, 0, 0, 0, 1000, "parquet").unwrap(),
            "part-a%2Fb-0-00000000000000000000-00000000000000000000-1000.parquet"
        );
        assert_eq!(
            final_file_name("clicks", 3, 2, 100, 199, 7, "zstd.parquet").unwrap(),
            "part-clicks-3-g2-00000000000000000100-00000000000000000199-007.zstd.parquet",
            "a later generation never takes an earlier one's name"
        );
        assert!(final_file_name("t", 0, 0, 0, 0, 0, "../x").is_err());
        assert!(final_file_name("t", 0, 0, 0, 0, 0, "").is_err());
        assert!(final_file_name("t", 0, 0, 0, 0, 0, "Parquet").is_err());
    }

    #[test]
    fn final_path_stays_inside_the_table() {
        assert_eq!(final_path("/t/", "dt=1/h=2", "f").unwrap(), "/t/dt=1/h=2/f");
        assert_eq!(final_path("/t", "", "f").unwrap(), "/t/f");
        assert_eq!(final_path("/t", "_rejected/dt=1", "f").unwrap(), "/t/_rejected/dt=1/f");
        for bad in ["../x", "a//b", "/abs", "a/./b", "_landfall/commits", "a\nb"] {
            assert!(final_path("/t", bad, "f").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn layout() {
        assert_eq!(table_root("/landing/clicks/").unwrap(), "/landing/clicks");
        assert!(table_root("/").is_err());
        assert!(table_root("landing").is_err());
        assert!(table_root("/a/../b").is_err());
        assert_eq!(commit_dir("/t", "a b", 4), "/t/_landfall/commits/a%20b/4");
        assert_eq!(manifest_path("/t/c", 12), "/t/c/00000000000000000012.json");
        assert_eq!(parse_manifest_name("00000000000000000012.json"), Some(12));
        assert_eq!(parse_manifest_name("12.json"), None);
        assert_eq!(parse_manifest_name("0000000000000000001x.json"), None);
        let staged = staged_path("/t", "run-1");
        assert!(staged.starts_with("/t/_landfall/staging/run-1/") && staged.ends_with(".parquet"));
        assert_ne!(staged, staged_path("/t", "run-1"));
        let tmp = tmp_manifest_path("/t", "c", 2, 5);
        assert!(tmp.starts_with("/t/_landfall/tmp/c-2-00000000000000000005-"), "{tmp}");
        let run = new_run_id();
        assert!(check_run_id(&run).is_ok(), "{run}");
        assert!(check_run_id("a/b").is_err());
        assert!(check_run_id(".hidden").is_err());
        assert_eq!(file_name("/a/b/c.json"), "c.json");
    }
}
