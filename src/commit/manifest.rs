//! The manifest: one JSON file per commit, recording which offsets of one (topic, partition)
//! became which files. Its appearance at `commits/<topic>/<partition>/<seq:020>.json` *is* the
//! commit; recovery re-drives the publish it describes.
//!
//! ```json
//! {"version":1,"topic":"clicks","partition":3,"seq":12,"start":1200,"end":1299,
//!  "files":[{"staged":"/t/_landfall/staging/<run>/<uuid>.parquet",
//!            "final":"/t/dt=2026-11-25/part-clicks-3-…-000.zstd.parquet","rows":98,"bytes":5120}],
//!  "created_at":"2026-11-25T17:00:00.123Z","run_id":"20261125T165900Z-1a2b3c4d"}
//! ```
//!
//! `version` is read first and on its own, so a manifest written by a newer Landfall fails
//! with "unsupported version N" instead of a confusing field error; within version 1 unknown
//! fields are rejected, since silently ignoring a field the writer relied on could publish
//! the wrong thing.

use serde::{Deserialize, Serialize};

use crate::commit::paths::STATE_DIR;

/// The only manifest format this build reads and writes.
pub const MANIFEST_VERSION: u32 = 1;

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "unsupported manifest version {found} (this build reads version {supported}); it was \
         written by a newer Landfall: run that version, or move the table's commit log aside"
    )]
    UnknownVersion { found: u64, supported: u32 },
    #[error("not a Landfall manifest: {0}")]
    Syntax(String),
    #[error("inconsistent manifest: {0}")]
    Invalid(String),
}

/// One file of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Where the file was written (hidden, under `_landfall/staging/`).
    pub staged: String,
    /// Where it is published; deterministic, so re-driving the publish is idempotent.
    #[serde(rename = "final")]
    pub final_path: String,
    /// Rows in the file (data rows or quarantined records).
    pub rows: u64,
    /// Size in bytes at commit time; a published file of another size is a conflict.
    pub bytes: u64,
}

/// One commit: offsets `start..=end` of `topic`/`partition` live in exactly `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub topic: String,
    pub partition: i32,
    /// Position in this partition's commit log (0, 1, 2, …): the file name, and the fence.
    pub seq: u64,
    /// First source offset covered.
    pub start: i64,
    /// Last source offset covered (inclusive); the next commit starts at `end + 1`.
    pub end: i64,
    pub files: Vec<ManifestFile>,
    /// RFC 3339 UTC time of the commit, for operators.
    pub created_at: String,
    /// Which process run wrote it, for operators (matches the staging directory name).
    pub run_id: String,
    /// Queue sources only: the `message_id`s this commit published, so messages the broker
    /// redelivers after a crash between publishing and acknowledging are recognised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    /// The digest ([`digest`]) of the manifest this commit continues from, as stored; absent
    /// in a log's first commit and in manifests of earlier versions. A writer whose commit
    /// point succeeded but which then finds a newer commit tells by it whether another writer
    /// adopted its commit (re-drove its publish and went on: the commit stays, its rows are in
    /// the table and its `message_id`s must go on recognising redeliveries) or took its slot
    /// only because pruning had freed it (the commit is stale and is retracted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Which numbering of the source's positions this commit's offsets belong to: 0 until the
    /// partition's position is first lost (a topic recreated), then one more per [`Jump`].
    /// Published names of a later generation carry it (`-g1`), so re-landing offsets the old
    /// log also had never collides with the old files.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
    /// Present on a jump commit, which lands nothing: `files` is empty, `start` = `end` = the
    /// last offset landed before it, and the next commit starts at [`Jump::to`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<Jump>,
    /// Present on a fence, which lands nothing: another lane's instance wrote it into this
    /// log's next free slot, so that a commit the log's owner has in flight finds its slot
    /// taken (docs/design/queue-lanes.md). `files` is empty, `start` = `end` = the last
    /// offset landed before it (-1 in a log without commits), and the next commit starts at
    /// `end + 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<Fence>,
    /// How far the partition's event time has reached, once this commit is published; written
    /// only while `partition.completion` is configured (older Landfall versions refuse the
    /// field, so tables that never enable completion keep their downgrade path). Absent: not
    /// known, which holds the table's watermark back (the safe direction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<EventTime>,
}

/// The event time a partition has published, for partition completion
/// (docs/design/partition-completion.md): recorded at the commit point, so it is durable
/// atomically with the rows it describes and costs no extra store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTime {
    /// The greatest clock value (µs since the epoch, UTC) of any row this partition has
    /// published up to and including this commit: a cumulative maximum, so the newest
    /// manifest alone answers and pruning cannot lose it, and late rows never lower it.
    pub reached: i64,
}

/// Who fenced a log, for operators and for the fenced owner's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fence {
    /// The lane (partition number) of the instance that wrote the fence.
    pub by: i32,
}

/// Why and where a partition's position jumped (`on_position_lost: earliest | latest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jump {
    /// The position the log had promised: the offset after the last one landed.
    pub from: i64,
    /// Where landing goes on: the next commit starts here.
    pub to: i64,
    /// The source's first and next offsets when the loss was found, for operators.
    pub earliest: i64,
    pub latest: i64,
    /// The policy that chose `to` (`earliest` or `latest`).
    pub policy: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A manifest's identity for [`Manifest::previous`]: FNV-1a 64 of its bytes, in hex.
pub fn digest(bytes: &[u8]) -> String {
    format!("{:016x}", crate::commit::paths::fnv1a64(bytes))
}

#[derive(Deserialize)]
struct VersionOnly {
    version: Option<serde_json::Value>,
}

impl Manifest {
    /// Serialises to one JSON line (plus newline); the bytes are also what the committer
    /// compares against to recognise its own manifest after an ambiguous store answer.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("a manifest always serialises");
        out.push(b'\n');
        out
    }

    /// Parses and checks a manifest on its own (version, offsets, absolute paths).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let head: VersionOnly = serde_json::from_slice(bytes).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        match head.version {
            None => return Err(ManifestError::Syntax("no \"version\" field".to_string())),
            Some(v) => match v.as_u64() {
                Some(n) if n == u64::from(MANIFEST_VERSION) => {}
                Some(n) => return Err(ManifestError::UnknownVersion { found: n, supported: MANIFEST_VERSION }),
                None => return Err(ManifestError::Syntax(format!("\"version\" is {v}, not a number"))),
            },
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        let empty_fence = m.fence.is_some() && m.start == -1 && m.end == -1;
        if m.partition < 0 || (m.start < 0 && !empty_fence) || m.end < m.start {
            return Err(ManifestError::Invalid(format!(
                "partition {} offsets {}..={} (need partition >= 0 and 0 <= start <= end)",
                m.partition, m.start, m.end
            )));
        }
        if let Some(j) = &m.jump {
            if !m.files.is_empty() || j.to < 0 || j.from != m.end + 1 || m.generation == 0 {
                return Err(ManifestError::Invalid(format!(
                    "jump from {} to {} after offset {} in generation {} with {} files (a jump lands no files, \
                     starts from the offset after `end`, goes to an offset >= 0 and opens a generation >= 1)",
                    j.from,
                    j.to,
                    m.end,
                    m.generation,
                    m.files.len()
                )));
            }
        }
        if m.fence.is_some()
            && (!m.files.is_empty()
                || m.jump.is_some()
                || m.start != m.end
                || !m.message_ids.is_empty()
                || m.event_time.is_some())
        {
            return Err(ManifestError::Invalid(format!(
                "fence over offsets {}..={} with {} files{}{} (a fence lands nothing: no files, no ids, \
                 no jump, no event time, and start = end = the last offset landed)",
                m.start,
                m.end,
                m.files.len(),
                if m.jump.is_some() { " and a jump" } else { "" },
                if m.event_time.is_some() { " and an event time" } else { "" }
            )));
        }
        Ok(m)
    }

    /// The offset the commit after this one starts at.
    pub fn next(&self) -> i64 {
        self.jump.as_ref().map_or(self.end + 1, |j| j.to)
    }

    /// Messages this commit covers (a jump or a fence covers none).
    pub fn count(&self) -> usize {
        if self.jump.is_some() || self.fence.is_some() {
            0
        } else {
            (self.end - self.start + 1) as usize
        }
    }

    /// Checks that a parsed manifest belongs where it was found, and that every path stays in
    /// its place: staged files under `<table>/_landfall/staging/`, published files in the
    /// table but outside `_landfall/`. A corrupt or hand-edited manifest therefore cannot make
    /// recovery rename arbitrary files.
    pub fn check_belongs(&self, table_root: &str, topic: &str, partition: i32, seq: u64) -> Result<(), ManifestError> {
        if self.topic != topic || self.partition != partition || self.seq != seq {
            return Err(ManifestError::Invalid(format!(
                "it describes {}/{} #{}, but sits in the log of {topic}/{partition} as #{seq}",
                self.topic, self.partition, self.seq
            )));
        }
        let staging = format!("{table_root}/{STATE_DIR}/staging/");
        let state = format!("{table_root}/{STATE_DIR}/");
        let table = format!("{table_root}/");
        for f in &self.files {
            let bad = |p: &str| p.split('/').any(|s| s == ".." || s == ".");
            if !f.staged.starts_with(&staging) || bad(&f.staged) {
                return Err(ManifestError::Invalid(format!("staged path {} is not under {staging}", f.staged)));
            }
            if !f.final_path.starts_with(&table) || f.final_path.starts_with(&state) || bad(&f.final_path) {
                return Err(ManifestError::Invalid(format!(
                    "published path {} is not inside {table_root} (outside {STATE_DIR}/)",
                    f.final_path
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            message_ids: Vec::new(),
            previous: None,
            version: 1,
            topic: "clicks".into(),
            partition: 3,
            seq: 12,
            start: 1200,
            end: 1299,
            files: vec![ManifestFile {
                staged: "/t/_landfall/staging/r/a.parquet".into(),
                final_path: "/t/dt=1/part-x.parquet".into(),
                rows: 98,
                bytes: 5120,
            }],
            created_at: "2026-11-25T17:00:00.123Z".into(),
            run_id: "r".into(),
            generation: 0,
            jump: None,
            fence: None,
            event_time: None,
        }
    }

    #[test]
    fn round_trips_with_the_documented_field_names() {
        let m = sample();
        let json = m.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.starts_with(r#"{"version":1,"topic":"clicks","partition":3,"seq":12,"start":1200,"end":1299,"files":[{"staged":"/t/_landfall/staging/r/a.parquet","final":"/t/dt=1/part-x.parquet","rows":98,"bytes":5120}]"#), "{text}");
        assert_eq!(Manifest::parse(&json).unwrap(), m);
        m.check_belongs("/t", "clicks", 3, 12).unwrap();
    }

    #[test]
    fn rejects_unknown_versions_with_a_clear_error() {
        let json = br#"{"version":2,"whatever":"new layout"}"#;
        let err = Manifest::parse(json).unwrap_err();
        assert!(matches!(err, ManifestError::UnknownVersion { found: 2, supported: 1 }), "{err:?}");
        assert!(err.to_string().contains("unsupported manifest version 2"), "{err}");
        let err = Manifest::parse(br#"{"topic":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("no \"version\" field"), "{err}");
        let err = Manifest::parse(br#"{"version":"1"}"#).unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
        assert!(matches!(Manifest::parse(b"garbage"), Err(ManifestError::Syntax(_))));
    }

    #[test]
    fn rejects_unknown_fields_and_bad_ranges() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["extra"] = serde_json::json!(1);
        let err = Manifest::parse(v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
        let mut m = sample();
        m.end = m.start - 1;
        assert!(matches!(Manifest::parse(&m.to_json()), Err(ManifestError::Invalid(_))));
    }

    #[test]
    fn a_jump_lands_nothing_and_says_where_the_next_commit_starts() {
        let mut m = sample();
        assert_eq!(m.next(), 1300);
        m.files.clear();
        m.start = 1299;
        m.generation = 1;
        m.jump = Some(Jump { from: 1300, to: 0, earliest: 0, latest: 500, policy: "earliest".into() });
        let json = m.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(
            text.contains(
                r#""generation":1,"jump":{"from":1300,"to":0,"earliest":0,"latest":500,"policy":"earliest"}"#
            ),
            "{text}"
        );
        let parsed = Manifest::parse(&json).unwrap();
        assert_eq!((parsed.next(), parsed.count()), (0, 0));
        assert!(
            !std::str::from_utf8(&sample().to_json()).unwrap().contains("generation"),
            "generation 0 is not written"
        );
        for bad in [
            |m: &mut Manifest| m.files = sample().files,
            |m: &mut Manifest| m.generation = 0,
            |m: &mut Manifest| m.jump.as_mut().unwrap().from = 7,
            |m: &mut Manifest| m.jump.as_mut().unwrap().to = -1,
        ] {
            let mut b = parsed.clone();
            bad(&mut b);
            assert!(matches!(Manifest::parse(&b.to_json()), Err(ManifestError::Invalid(_))), "{b:?}");
        }
    }

    #[test]
    fn event_time_round_trips_is_absent_when_unknown_and_never_on_a_fence() {
        assert!(!std::str::from_utf8(&sample().to_json()).unwrap().contains("event_time"), "absent when unknown");
        let mut m = sample();
        m.event_time = Some(EventTime { reached: 1_764_090_000_000_000 });
        let json = m.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.contains(r#""event_time":{"reached":1764090000000000}"#), "{text}");
        assert_eq!(Manifest::parse(&json).unwrap(), m);
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v["event_time"]["low"] = serde_json::json!(1);
        assert!(Manifest::parse(v.to_string().as_bytes()).is_err(), "unknown fields inside event_time are refused");
        let mut fence = m.clone();
        fence.files.clear();
        fence.start = fence.end;
        fence.fence = Some(Fence { by: 1 });
        let err = Manifest::parse(&fence.to_json()).unwrap_err();
        assert!(err.to_string().contains("an event time"), "{err}");
    }

    #[test]
    fn check_belongs_confines_paths() {
        let m = sample();
        assert!(m.check_belongs("/t", "clicks", 3, 13).is_err());
        assert!(m.check_belongs("/t", "other", 3, 12).is_err());
        for (staged, fin) in [
            ("/elsewhere/a.parquet", "/t/dt=1/x"),
            ("/t/_landfall/staging/../../etc/x", "/t/dt=1/x"),
            ("/t/_landfall/staging/r/a", "/u/x"),
            ("/t/_landfall/staging/r/a", "/t/_landfall/commits/x"),
            ("/t/_landfall/staging/r/a", "/t/../u/x"),
        ] {
            let mut bad = sample();
            bad.files[0].staged = staged.into();
            bad.files[0].final_path = fin.into();
            assert!(bad.check_belongs("/t", "clicks", 3, 12).is_err(), "{staged} {fin}");
        }
    }
}
