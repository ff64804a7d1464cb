//! Reading every source partition's commit log for completion: how far its *published* event
//! time has reached, when it last committed, and where its next commit starts. Only reads: the
//! completer never re-drives a publish (the log's owner does).

use std::collections::{BTreeMap, HashMap};

use crate::commit::paths::{self, STATE_DIR};
use crate::commit::Manifest;
use crate::sink::{FileStore, StoreError};

/// What one commit log says, for completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    /// `topic[partition]` as the newest manifest names it.
    pub source: String,
    /// The published event time ([`Manifest::event_time`]) of the newest published commit.
    pub reached: Option<i64>,
    /// Modification time (ms, store clock) of the newest manifest: when the log last committed.
    pub newest_ms: u64,
    /// The offset the next commit starts at (the committed position).
    pub next: i64,
    /// Whether every commit of the log is published. A committed range still staged is not
    /// in the table yet: its partition must not count as idle, whatever the source says.
    pub published: bool,
}

/// Reads logs, remembering each log's newest *published* manifest so that a pass reads a
/// manifest only when its log moved on.
#[derive(Default)]
pub struct LogReader {
    /// Per commit directory: (newest seq, what it said) once published.
    seen: HashMap<String, (u64, LogView)>,
}

impl LogReader {
    /// The commit directories under `<root>/_landfall/commits/`: `commits/<topic>/<partition>`.
    pub async fn list_logs(store: &dyn FileStore, root: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for topic in store.list(&format!("{root}/{STATE_DIR}/commits")).await? {
            if !topic.is_dir {
                continue;
            }
            for part in store.list(&topic.path).await? {
                let name = paths::file_name(&part.path);
                if part.is_dir && name.parse::<i32>().is_ok_and(|p| p >= 0) {
                    out.push(part.path.trim_end_matches('/').to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// What the log in `dir` says; `None` for a log without a manifest.
    pub async fn read(&mut self, store: &dyn FileStore, dir: &str) -> Result<Option<LogView>, StoreError> {
        let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
        for e in store.list(dir).await? {
            if let Some(seq) = paths::parse_manifest_name(paths::file_name(&e.path)).filter(|_| !e.is_dir) {
                seqs.insert(seq, e.modified_ms);
            }
        }
        let Some((&newest, &newest_ms)) = seqs.last_key_value() else { return Ok(None) };
        if let Some((seq, view)) = self.seen.get_mut(dir) {
            if *seq == newest {
                view.newest_ms = newest_ms;
                return Ok(Some(view.clone()));
            }
        }
        let Some(tip) = read_manifest(store, dir, newest).await? else {
            // Pruned meanwhile, or unreadable: known nothing, the partition holds the watermark.
            let source = dir.rsplit('/').take(2).collect::<Vec<_>>();
            let source = format!("{}[{}]", source.get(1).unwrap_or(&"?"), source.first().unwrap_or(&"?"));
            return Ok(Some(LogView { source, reached: None, newest_ms, next: -1, published: false }));
        };
        let next = tip.next();
        let source = format!("{}[{}]", tip.topic, tip.partition);
        // The newest commit counts once published; every one below it was (invariant I3 of
        // docs/exactly-once.md). A fence records nothing: the commit below it counts.
        // `published` stays true unless the newest commit (the only one that can be
        // unpublished) is found still staged.
        let mut published = true;
        let mut reached = None;
        let mut current = Some(tip);
        while let Some(m) = current {
            if m.fence.is_none() {
                if !published || is_published(store, &m).await? {
                    reached = m.event_time.map(|t| t.reached);
                    break;
                }
                published = false;
            }
            let below = seqs.range(..m.seq).next_back().map(|(s, _)| *s);
            current = match below {
                Some(s) => read_manifest(store, dir, s).await?,
                None => None,
            };
        }
        let view = LogView { source, reached, newest_ms, next, published };
        if published {
            self.seen.insert(dir.to_string(), (newest, view.clone()));
        }
        Ok(Some(view))
    }
}

/// Whether the publish of `m` finished: the staged name of its last file is gone (the publish
/// renames in manifest order, so the last one goes last).
async fn is_published(store: &dyn FileStore, m: &Manifest) -> Result<bool, StoreError> {
    match m.files.last() {
        None => Ok(true),
        Some(f) => Ok(store.stat(&f.staged).await?.is_none()),
    }
}

/// The manifest `seq` of the log in `dir`, `None` if pruned meanwhile or unreadable (a log
/// this build cannot read holds completion back rather than stopping it).
async fn read_manifest(store: &dyn FileStore, dir: &str, seq: u64) -> Result<Option<Manifest>, StoreError> {
    let path = paths::manifest_path(dir, seq);
    match store.read(&path).await {
        Ok(bytes) => match Manifest::parse(&bytes) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                tracing::debug!(path, error = %e, "completion: unreadable manifest; its partition holds the watermark");
                Ok(None)
            }
        },
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
