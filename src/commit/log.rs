//! [`CommitLog`]: the commit log of one (topic, partition), and the two operations the
//! pipeline needs from it: `recover` on assignment and `commit` per batch.
//! See `docs/exactly-once.md` for the protocol and its crash-point analysis.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::commit::manifest::{digest, EventTime, Fence, Jump, Manifest, ManifestFile, MANIFEST_VERSION};
use crate::commit::paths;
use crate::commit::{CommitError, RunContext};
use crate::retry::{with_backoff, Backoff};
use crate::sink::{FileStore, StoreError};

/// A file the writer has closed under `_landfall/staging/` and wants committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// Its path, as returned by [`paths::staged_path`].
    pub staged: String,
    /// Directory relative to the table root where it is published: the Hive path
    /// (`dt=2026-11-25/hour=17`), `_rejected/…` for quarantine, or empty for the table root.
    pub dir: String,
    /// Suffix of the published name after the counter, e.g. `zstd.parquet`.
    pub ext: String,
    /// Rows (or quarantined records) in the file; recorded for operators and verifiers.
    pub rows: u64,
    /// Its exact size as written (footer included): the commit point requires the store to
    /// hold exactly this many bytes, and publishing compares the published file with it.
    pub bytes: u64,
}

/// Where the log stands, as far as this writer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Not recovered yet, or a commit failed half-way: only `recover` is allowed.
    Unknown,
    /// The log was empty at recovery: the next commit is #0 and may start anywhere.
    Empty,
    /// The last commit is #`seq`; the next one is #`seq+1` and starts at offset `next`.
    After { seq: u64, next: i64 },
}

/// The commit log of one (topic, partition) in one table.
///
/// One instance per assigned partition; methods take `&mut self` because a partition has
/// exactly one committer at a time (the borrow checker enforces it inside the process, the
/// store's create-if-absent fence across processes).
pub struct CommitLog {
    pub(super) store: Arc<dyn FileStore>,
    pub(super) run: RunContext,
    pub(super) root: String,
    topic: String,
    partition: i32,
    dir: String,
    position: Position,
    /// With `keep_ids`: (seq, messages) of the newest manifests that together cover the
    /// window, oldest first; pruning keeps these.
    recent: VecDeque<(u64, usize)>,
    /// With `keep_ids`: the ids those manifests hold, read by `recover` (taken once).
    recovered_ids: Vec<String>,
    /// Digest of the newest manifest as stored (recovered or written by this log): the next
    /// commit's [`Manifest::previous`].
    last_digest: Option<String>,
    /// The newest manifest's [`Manifest::generation`]: the next commit's, and part of its
    /// file names.
    generation: u64,
    /// The partition's published event time ([`Manifest::event_time`]) as of the newest
    /// commit, read through fences; `None` while unknown.
    reached: Option<i64>,
    /// Whether [`recover`](Self::recover) reports where it resumes at info level (the
    /// consumer's recovery) or at debug (the writer's re-read of a log the consumer announced).
    announce: bool,
}

impl CommitLog {
    /// A log for `topic`/`partition` of the table at `table_root`. No I/O: call
    /// [`recover`](Self::recover) before the first commit.
    pub fn new(
        store: Arc<dyn FileStore>,
        table_root: &str,
        topic: &str,
        partition: i32,
        run: RunContext,
    ) -> Result<Self, CommitError> {
        let root = paths::table_root(table_root)?;
        paths::check_run_id(&run.run_id)?;
        if topic.is_empty() || partition < 0 {
            return Err(CommitError::Invalid(format!(
                "topic {topic:?} partition {partition}: need a non-empty topic and a partition >= 0"
            )));
        }
        if run.config.keep == 0 {
            return Err(CommitError::Invalid(
                "keep must be at least 1 (the latest manifest is the resume point)".into(),
            ));
        }
        let dir = paths::commit_dir(&root, topic, partition);
        Ok(CommitLog {
            store,
            run,
            root,
            topic: topic.to_string(),
            partition,
            dir,
            position: Position::Unknown,
            recent: VecDeque::new(),
            recovered_ids: Vec::new(),
            last_digest: None,
            generation: 0,
            reached: None,
            announce: true,
        })
    }

    /// This log's [`recover`](Self::recover) logs where it resumes at debug level only.
    pub fn quiet(mut self) -> Self {
        self.announce = false;
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// This partition's commit directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The offset the next commit must start at; `None` before recovery, after a failed
    /// commit, or when the log is empty.
    pub fn next_offset(&self) -> Option<i64> {
        match self.position {
            Position::After { next, .. } => Some(next),
            _ => None,
        }
    }

    /// Brings the table up to date with the log and says where to resume.
    ///
    /// Lists only this partition's commit directory (a few files, thanks to pruning), reads
    /// the newest manifest, re-drives its publish (idempotent) and prunes. Returns the offset
    /// after the last commit, or `None` for an empty log (the caller applies its `start:
    /// earliest|latest` policy). Never lists the table, so resuming does not slow down as the
    /// table grows.
    pub async fn recover(&mut self) -> Result<Option<i64>, CommitError> {
        self.position = Position::Unknown;
        let latest =
            with_backoff("read the commit log", &self.run.config.backoff, &self.run.stop, || self.load_latest())
                .await?;
        let Some((seqs, manifest, latest_digest)) = latest else {
            self.position = Position::Empty;
            self.last_digest = None;
            self.generation = 0;
            self.reached = None;
            if self.announce {
                tracing::info!(topic = %self.topic, partition = self.partition, "commit log is empty");
            } else {
                tracing::debug!(topic = %self.topic, partition = self.partition, "commit log is empty");
            }
            return Ok(None);
        };
        let path = paths::manifest_path(&self.dir, manifest.seq);
        if self.published_before(&manifest).await? {
            tracing::debug!(topic = %self.topic, partition = self.partition, seq = manifest.seq, "newest commit was published before");
        } else {
            self.publish(&manifest, &path).await?;
        }
        // A fence records no event time; the commit under it holds the partition's.
        let reached = match manifest.fence {
            Some(_) => self.publish_below_fences(&seqs, &manifest).await?,
            None => manifest.event_time.map(|t| t.reached),
        };
        if self.run.config.keep_ids > 0 {
            self.load_window(&seqs, manifest.seq, manifest.count(), manifest.message_ids.clone()).await?;
        }
        self.prune(manifest.seq, &seqs).await;
        let next = manifest.next();
        self.position = Position::After { seq: manifest.seq, next };
        self.last_digest = Some(latest_digest);
        self.generation = manifest.generation;
        self.reached = reached;
        if self.announce {
            tracing::info!(
                topic = %self.topic, partition = self.partition, seq = manifest.seq, next,
                "recovered: resuming after commit #{} (offsets {}..={})", manifest.seq, manifest.start, manifest.end
            );
        } else {
            tracing::debug!(topic = %self.topic, partition = self.partition, seq = manifest.seq, next, "commit log re-read");
        }
        Ok(Some(next))
    }

    /// True when no file of `manifest` is left at its staged name: only the publish rename
    /// removes a referenced staged file (orphan cleanup keeps them), so the publish completed,
    /// and the published files need not exist any more (retention may delete old partitions
    /// of an idle stream; recovery must not depend on them). One `stat` per file.
    async fn published_before(&self, manifest: &Manifest) -> Result<bool, CommitError> {
        for f in &manifest.files {
            let staged = with_backoff("read the commit log", &self.run.config.backoff, &self.run.stop, || async {
                self.store.stat(&f.staged).await.map_err(CommitError::from)
            })
            .await?;
            if staged.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Commits offsets `start..=end`, which live in exactly `files` (data and quarantine),
    /// and publishes them. Returns the manifest written.
    ///
    /// Steps: check the staged files (exist, younger than grace/2); write the manifest to a
    /// temp name; rename it to `<seq>.json` without overwrite (the commit point and the
    /// fence); read it back; check no newer commit exists (the zombie check); publish each
    /// file; prune old manifests. `NotRecovered`, `OutOfOrder` and reversed offsets leave the
    /// log untouched; after any other error the position is unknown and `recover` must run
    /// before the next commit. [`CommitError::Fenced`] means another writer owns the partition.
    pub async fn commit(&mut self, start: i64, end: i64, files: Vec<StagedFile>) -> Result<Manifest, CommitError> {
        self.commit_ids(start, end, files, Vec::new()).await
    }

    /// [`commit`](Self::commit) for queue sources: also records the `message_id`s published.
    pub async fn commit_ids(
        &mut self,
        start: i64,
        end: i64,
        files: Vec<StagedFile>,
        message_ids: Vec<String>,
    ) -> Result<Manifest, CommitError> {
        self.commit_while_closing(start, end, files, message_ids, None, async { Ok(()) }).await
    }

    /// The partition's published event time as of the newest commit (µs since the epoch), as
    /// recorded in the commit log; `None` while unknown.
    pub fn reached(&self) -> Option<i64> {
        self.reached
    }

    /// [`commit_ids`](Self::commit_ids) for files whose store files are still closing
    /// (`closing` ends when all are, or says why one failed). The manifest is written to its
    /// temp name meanwhile: on HDFS each close waits for the DataNode's block report (often
    /// 500 ms), so a commit that closed first and wrote after waited twice. The commit point
    /// still comes last, once every file is closed and the store holds each with the size
    /// the writer recorded; a failed close deletes the temp manifest and the staged files and
    /// returns [`CommitError::NotClosed`]. A crash before the commit point leaves a temp manifest
    /// and staged files that no commit names: orphans, as before.
    ///
    /// `event_max` is the greatest clock value among the range's rows; with
    /// [`CommitConfig::record_event_time`](crate::commit::CommitConfig::record_event_time) the
    /// manifest records the partition's cumulative maximum ([`Manifest::event_time`]).
    pub async fn commit_while_closing(
        &mut self,
        start: i64,
        end: i64,
        files: Vec<StagedFile>,
        message_ids: Vec<String>,
        event_max: Option<i64>,
        closing: impl std::future::Future<Output = Result<(), String>>,
    ) -> Result<Manifest, CommitError> {
        let seq = match self.position {
            Position::Unknown => {
                return Err(CommitError::NotRecovered { topic: self.topic.clone(), partition: self.partition })
            }
            Position::Empty => 0,
            Position::After { seq, next } => {
                if start != next {
                    return Err(CommitError::OutOfOrder {
                        topic: self.topic.clone(),
                        partition: self.partition,
                        expected: next,
                        got: start,
                    });
                }
                seq + 1
            }
        };
        if start < 0 || end < start {
            return Err(CommitError::Invalid(format!("offsets {start}..={end}: need 0 <= start <= end")));
        }
        self.position = Position::Unknown;
        let began = Instant::now();
        crate::crash::point("before_manifest", "with the commit's files staged, before its manifest");
        let mut manifest = self.draft(seq, start, end, &files)?;
        manifest.message_ids = message_ids;
        if self.run.config.record_event_time {
            // `None` orders below every value: the maximum of what is known.
            let reached = self.reached.max(event_max);
            manifest.event_time = reached.map(|reached| EventTime { reached });
        }
        let bytes = manifest.to_json();
        let slot = paths::manifest_path(&self.dir, seq);
        let write = with_backoff("write the manifest", &self.run.config.backoff, &self.run.stop, || {
            self.write_tmp(seq, &bytes)
        });
        let (tmp, closed) = tokio::join!(write, closing);
        let tmp = tmp?;
        if let Err(reason) = closed {
            // Never committed: the temp manifest and every staged file go (best effort).
            self.discard_tmp(&tmp).await;
            for f in &manifest.files {
                let _ = self.store.delete(&f.staged).await;
            }
            return Err(CommitError::NotClosed { reason });
        }
        let written = began.elapsed();
        let oldest = self.check_staged(&manifest.files).await?;
        // The commit point must come before orphan cleanup may take the staged files: within
        // grace/2 of the oldest one's creation, on the store's clock; retries stop there.
        crate::crash::point("before_commit_point", "with the manifest written to tmp, before the commit point");
        let budget = self.staged_age_budget(&tmp, oldest).await?;
        let backoff = Backoff { give_up_after: Some(budget), ..self.run.config.backoff.clone() };
        with_backoff("commit the manifest", &backoff, &self.run.stop, || {
            self.commit_point(&manifest, &tmp, &slot, &bytes)
        })
        .await?;
        crate::crash::point("after_commit_point", "after the commit point, before publishing");
        crate::crash::stall("after_commit_point", "after the commit point, before the zombie check").await;
        let seqs = self.check_not_superseded(&manifest, &slot, &bytes).await?;
        self.publish(&manifest, &slot).await?;
        crate::crash::point("after_publish", "after publishing, before pruning and the offset mirror");
        if self.run.config.keep_ids > 0 {
            self.remember(seq, (end - start + 1) as usize);
        }
        self.prune(seq, &seqs).await;
        self.position = Position::After { seq, next: end + 1 };
        self.last_digest = Some(digest(&bytes));
        if let Some(t) = manifest.event_time {
            self.reached = Some(t.reached);
        }
        tracing::debug!(
            topic = %self.topic, partition = self.partition, seq, start, end, files = manifest.files.len(),
            manifest_bytes = bytes.len(), written_ms = written.as_millis() as u64,
            total_ms = began.elapsed().as_millis() as u64, "committed"
        );
        Ok(manifest)
    }

    /// Records that the partition's committed position is gone from the source and landing
    /// goes on at `to` (`on_position_lost: earliest | latest`): a commit that lands nothing,
    /// opens the next generation (so re-used offsets get new file names) and moves the resume
    /// point. Fenced like any commit; nothing published before is touched. `earliest` and
    /// `latest` are the source's bounds when the loss was found, `policy` the setting that
    /// chose `to`. Returns the manifest written.
    pub async fn jump(&mut self, to: i64, earliest: i64, latest: i64, policy: &str) -> Result<Manifest, CommitError> {
        let (seq, from) = match self.position {
            Position::After { seq, next } => (seq, next),
            _ => {
                return Err(CommitError::Invalid(format!(
                    "{}[{}]: a position jump needs a recovered, non-empty commit log",
                    self.topic, self.partition
                )))
            }
        };
        if to < 0 || from < 1 {
            return Err(CommitError::Invalid(format!(
                "a position jump from offset {from} to {to}: need offsets >= 0 and at least one offset landed before"
            )));
        }
        self.position = Position::Unknown;
        let seq = seq + 1;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            topic: self.topic.clone(),
            partition: self.partition,
            seq,
            start: from - 1,
            end: from - 1,
            files: Vec::new(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            run_id: self.run.run_id.clone(),
            message_ids: Vec::new(),
            previous: self.last_digest.clone(),
            generation: self.generation + 1,
            jump: Some(Jump { from, to, earliest, latest, policy: policy.to_string() }),
            fence: None,
            // Lands nothing, so the partition's event time stays where the tip had it.
            event_time: self.reached.filter(|_| self.run.config.record_event_time).map(|reached| EventTime { reached }),
        };
        let bytes = manifest.to_json();
        let slot = paths::manifest_path(&self.dir, seq);
        let tmp = with_backoff("write the manifest", &self.run.config.backoff, &self.run.stop, || {
            self.write_tmp(seq, &bytes)
        })
        .await?;
        with_backoff("commit the manifest", &self.run.config.backoff, &self.run.stop, || {
            self.commit_point(&manifest, &tmp, &slot, &bytes)
        })
        .await?;
        let seqs = self.check_not_superseded(&manifest, &slot, &bytes).await?;
        self.prune(seq, &seqs).await;
        self.position = Position::After { seq, next: to };
        self.last_digest = Some(digest(&bytes));
        self.generation = manifest.generation;
        tracing::debug!(topic = %self.topic, partition = self.partition, seq, from, to, generation = self.generation, "position jump committed");
        Ok(manifest)
    }

    /// Fences this log against a commit its owner has in flight (docs/design/queue-lanes.md):
    /// writes a manifest that lands nothing into the slot after the newest one, so that the
    /// owner's commit point finds that slot taken (`Fenced`), while a commit that passed its
    /// commit point first stays (its zombie check finds the fence continuing from it). Run by
    /// the instance of lane `by` before it lands redelivered messages this log's owner may
    /// hold. A slot taken meanwhile (the owner, or another fence) is read as the new tip and
    /// the next one tried. Then recovers, so the ids of the newest commits are in
    /// [`take_recovered_ids`](Self::take_recovered_ids) and the newest commit under the fence
    /// is published (its owner may have stopped between its commit point and its publish).
    /// Returns the fence written.
    pub async fn fence(&mut self, by: i32) -> Result<Manifest, CommitError> {
        const ATTEMPTS: usize = 16;
        for _ in 0..ATTEMPTS {
            self.position = Position::Unknown;
            let latest =
                with_backoff("read the commit log", &self.run.config.backoff, &self.run.stop, || self.load_latest())
                    .await?;
            let (seq, last, previous, generation) = match &latest {
                None => (0, -1, None, 0),
                Some((_, m, d)) => (m.seq + 1, m.next() - 1, Some(d.clone()), m.generation),
            };
            let manifest = Manifest {
                version: MANIFEST_VERSION,
                topic: self.topic.clone(),
                partition: self.partition,
                seq,
                start: last,
                end: last,
                files: Vec::new(),
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                run_id: self.run.run_id.clone(),
                message_ids: Vec::new(),
                previous,
                generation,
                jump: None,
                fence: Some(Fence { by }),
                event_time: None,
            };
            let bytes = manifest.to_json();
            let slot = paths::manifest_path(&self.dir, seq);
            let tmp = with_backoff("write the manifest", &self.run.config.backoff, &self.run.stop, || {
                self.write_tmp(seq, &bytes)
            })
            .await?;
            match with_backoff("write a fence", &self.run.config.backoff, &self.run.stop, || {
                self.commit_point(&manifest, &tmp, &slot, &bytes)
            })
            .await
            .map_err(CommitError::from)
            {
                Ok(()) => {}
                Err(CommitError::Fenced { .. }) => continue,
                Err(e) => return Err(e),
            }
            // A fence works only as the tip. It lands below a newer manifest only in a slot
            // pruning had emptied; unless that newer one continues from it, take it back.
            let seqs =
                with_backoff("list the commit log", &self.run.config.backoff, &self.run.stop, || self.list_seqs())
                    .await?;
            if seqs.iter().any(|s| *s > seq) && !self.adopted(&manifest, &bytes).await? {
                if let Ok(Some(found)) = self.read_opt(&slot).await {
                    if found == bytes {
                        let _ = self.store.delete(&slot).await;
                    }
                }
                continue;
            }
            tracing::info!(topic = %self.topic, partition = self.partition, seq, by, "fenced the log of another lane");
            self.recover().await?;
            return Ok(manifest);
        }
        Err(CommitError::Store(StoreError::Transient {
            op: "fence",
            path: self.dir.clone(),
            message: format!("the log moved on {ATTEMPTS} times while a fence was being written"),
            hint: "its owner commits faster than a fence can be placed; fencing again".to_string(),
        }))
    }

    /// A fence lands nothing, and the newest commit under it may be unpublished: its owner
    /// stopped between its commit point and its publish, and another lane fenced the log on
    /// top. Publishes that commit (idempotent). It is found through the chain of `previous`
    /// digests down from the tip, never by position: a manifest below the tip that is not in
    /// the chain (a stale writer's, in a slot pruning had emptied, not yet retracted) is never
    /// published. Manifests pruned away were published before. Returns the event time that
    /// commit recorded (`None` when it recorded none or is pruned away).
    async fn publish_below_fences(&self, seqs: &[u64], top: &Manifest) -> Result<Option<i64>, CommitError> {
        let Some(mut wanted) = top.previous.clone() else { return Ok(None) };
        let mut below: Vec<u64> = seqs.iter().copied().filter(|s| *s < top.seq).collect();
        below.sort_unstable_by(|a, b| b.cmp(a));
        for seq in below {
            let path = paths::manifest_path(&self.dir, seq);
            let bytes =
                with_backoff("read the commit log", &self.run.config.backoff, &self.run.stop, || self.read_opt(&path))
                    .await?;
            let Some(bytes) = bytes else { continue };
            if digest(&bytes) != wanted {
                continue;
            }
            let bad = |source| CommitError::BadManifest { path: path.clone(), source };
            let m = Manifest::parse(&bytes).map_err(bad)?;
            m.check_belongs(&self.root, &self.topic, self.partition, seq).map_err(bad)?;
            if m.fence.is_some() {
                match m.previous {
                    Some(p) => wanted = p,
                    None => return Ok(None),
                }
                continue;
            }
            if !self.published_before(&m).await? {
                self.publish(&m, &path).await?;
            }
            return Ok(m.event_time.map(|t| t.reached));
        }
        Ok(None)
    }

    /// How long the commit point may still take: grace/2 minus the age of the oldest staged
    /// file, both read on the store's clock (the temp manifest was just written, so its
    /// modification time is the store's now). A host clock that is off changes nothing.
    /// Refuses with `StaleStaged` (deleting the temp manifest) when nothing is left.
    async fn staged_age_budget(&self, tmp: &str, oldest: Option<(String, u64)>) -> Result<Duration, CommitError> {
        let Some((path, created_ms)) = oldest else { return Ok(self.run.config.grace / 2) };
        let limit_ms = self.run.config.grace.as_millis() as u64 / 2;
        let now_ms = with_backoff("check the manifest", &self.run.config.backoff, &self.run.stop, || async {
            let status = self.store.stat(tmp).await?;
            status
                .map(|s| s.modified_ms)
                .ok_or_else(|| CommitError::Vanished { what: "manifest temp file", path: tmp.to_string() })
        })
        .await?;
        let age_ms = now_ms.saturating_sub(created_ms);
        if age_ms > limit_ms {
            self.discard_tmp(tmp).await;
            return Err(CommitError::StaleStaged { path, age_s: age_ms / 1000, limit_s: limit_ms / 1000 });
        }
        Ok(Duration::from_millis(limit_ms - age_ms))
    }

    /// Builds the manifest of `files` (their sizes as the writer recorded them).
    fn draft(&self, seq: u64, start: i64, end: i64, files: &[StagedFile]) -> Result<Manifest, CommitError> {
        let staging = format!("{}/{}/staging/", self.root, paths::STATE_DIR);
        let mut out = Vec::with_capacity(files.len());
        for (n, f) in files.iter().enumerate() {
            if !f.staged.starts_with(&staging) || files[..n].iter().any(|g| g.staged == f.staged) {
                return Err(CommitError::Invalid(format!(
                    "staged file {} is not under {staging} or is listed twice",
                    f.staged
                )));
            }
            let name = paths::final_file_name(&self.topic, self.partition, self.generation, start, end, n, &f.ext)?;
            let final_path = paths::final_path(&self.root, &f.dir, &name)?;
            out.push(ManifestFile { staged: f.staged.clone(), final_path, rows: f.rows, bytes: f.bytes });
        }
        Ok(Manifest {
            version: MANIFEST_VERSION,
            topic: self.topic.clone(),
            partition: self.partition,
            seq,
            start,
            end,
            files: out,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            run_id: self.run.run_id.clone(),
            message_ids: Vec::new(),
            previous: self.last_digest.clone(),
            generation: self.generation,
            jump: None,
            fence: None,
            event_time: None,
        })
    }

    /// Stats every staged file of a commit about to be made: each must exist with the size
    /// its manifest records. Returns the oldest one and its modification time.
    async fn check_staged(&self, files: &[ManifestFile]) -> Result<Option<(String, u64)>, CommitError> {
        let mut oldest: Option<(String, u64)> = None;
        for f in files {
            let status = with_backoff("check a staged file", &self.run.config.backoff, &self.run.stop, || async {
                self.store.stat(&f.staged).await.map_err(CommitError::from)
            })
            .await?
            .ok_or_else(|| CommitError::MissingStaged { path: f.staged.clone() })?;
            if status.len != f.bytes {
                return Err(CommitError::StagedSize { path: f.staged.clone(), found: status.len, written: f.bytes });
            }
            if oldest.as_ref().is_none_or(|(_, m)| status.modified_ms < *m) {
                oldest = Some((f.staged.clone(), status.modified_ms));
            }
        }
        Ok(oldest)
    }

    /// Deletes a temp manifest no commit will use (best effort: orphan cleanup also does).
    async fn discard_tmp(&self, tmp: &str) {
        if let Err(e) = self.store.delete(tmp).await {
            tracing::debug!(tmp, error = %e, "could not delete the unused manifest temp file; orphan cleanup will");
        }
    }

    /// The `message_id`s of the newest manifests (at least `keep_ids` of them when the log
    /// holds that many), read by the last `recover`. Taken: a second call returns nothing.
    pub fn take_recovered_ids(&mut self) -> Vec<String> {
        std::mem::take(&mut self.recovered_ids)
    }

    /// Reads manifests older than `latest` (newest first) until they cover the window. The
    /// window counts messages, not ids: what must be covered is the last `keep_ids` messages
    /// (the unacknowledged range), whether or not they carried an id.
    async fn load_window(
        &mut self,
        seqs: &[u64],
        latest: u64,
        latest_count: usize,
        latest_ids: Vec<String>,
    ) -> Result<(), CommitError> {
        let want = self.run.config.keep_ids;
        self.recent.clear();
        self.recent.push_front((latest, latest_count));
        let mut covered = latest_count;
        let mut ids = latest_ids;
        let mut older: Vec<u64> = seqs.iter().copied().filter(|s| *s < latest).collect();
        older.sort_unstable_by(|a, b| b.cmp(a));
        for seq in older {
            if covered >= want {
                break;
            }
            let path = paths::manifest_path(&self.dir, seq);
            let bytes =
                with_backoff("read the commit log", &self.run.config.backoff, &self.run.stop, || self.read_opt(&path))
                    .await?;
            let Some(bytes) = bytes else { continue };
            let bad = |source| CommitError::BadManifest { path: path.clone(), source };
            let m = Manifest::parse(&bytes).map_err(bad)?;
            m.check_belongs(&self.root, &self.topic, self.partition, seq).map_err(bad)?;
            let count = m.count();
            self.recent.push_front((seq, count));
            covered += count;
            ids.extend(m.message_ids);
        }
        self.recovered_ids = ids;
        Ok(())
    }

    /// Adds a commit (of `messages` messages) to the window and forgets the oldest ones it no
    /// longer needs.
    fn remember(&mut self, seq: u64, messages: usize) {
        self.recent.push_back((seq, messages));
        let mut total: usize = self.recent.iter().map(|(_, n)| n).sum();
        while let Some(&(_, oldest)) = self.recent.front() {
            if self.recent.len() == 1 || total - oldest < self.run.config.keep_ids {
                break;
            }
            total -= oldest;
            self.recent.pop_front();
        }
    }

    /// Writes the manifest under a fresh temp name (fresh per attempt, so the remains of a
    /// lost attempt never collide; orphan cleanup removes them).
    async fn write_tmp(&self, seq: u64, bytes: &[u8]) -> Result<String, CommitError> {
        let tmp = paths::tmp_manifest_path(&self.root, &self.topic, self.partition, seq);
        let mut w = self.store.create(&tmp).await?;
        w.write(bytes::Bytes::copy_from_slice(bytes)).await?;
        w.close().await?;
        Ok(tmp)
    }

    /// The commit point: rename without overwrite, then read back. Whatever the rename
    /// answered, the slot's content decides: our bytes → committed (possibly by an earlier
    /// attempt whose answer was lost); other bytes → fenced. Reading back also guards against
    /// a store that reports success by guessing (the HDFS store treats "src gone, dst
    /// present" as success, which is wrong if orphan cleanup removed our temp file and
    /// another writer took the slot).
    async fn commit_point(&self, m: &Manifest, tmp: &str, slot: &str, bytes: &[u8]) -> Result<(), CommitError> {
        match self.store.rename(tmp, slot).await {
            Ok(()) | Err(StoreError::AlreadyExists { .. } | StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        match self.read_opt(slot).await? {
            Some(found) if found == bytes => Ok(()),
            Some(_) => {
                self.discard_tmp(tmp).await;
                Err(self.fenced(m, format!("{slot} was committed by another writer")))
            }
            None => Err(CommitError::Vanished { what: "manifest temp file", path: tmp.to_string() }),
        }
    }

    /// The zombie check. Our create succeeded, but that alone does not prove ownership: the
    /// slot may have been free only because pruning removed an old manifest. Any newer
    /// manifest proves this writer stale: take ours back and report `Fenced`.
    /// Returns the sequence numbers listed, for pruning.
    async fn check_not_superseded(&self, m: &Manifest, slot: &str, bytes: &[u8]) -> Result<Vec<u64>, CommitError> {
        let seqs =
            with_backoff("list the commit log", &self.run.config.backoff, &self.run.stop, || self.list_seqs()).await?;
        let Some(newer) = seqs.iter().copied().filter(|s| *s > m.seq).max() else {
            return Ok(seqs);
        };
        if self.adopted(m, bytes).await? {
            // Another writer recovered this commit as the newest, re-drove its publish and
            // went on: it is part of the table. Retracting it would leave a hole that makes
            // the next dedup window forget its ids, and their redeliveries land twice.
            return Err(
                self.fenced(m, format!("commit #{} was adopted by another writer, which went on to #{newer}", m.seq))
            );
        }
        let retract = with_backoff("retract a stale manifest", &self.run.config.backoff, &self.run.stop, || async {
            match self.read_opt(slot).await? {
                Some(found) if found == bytes => self.store.delete(slot).await.map_err(CommitError::from),
                _ => Ok(()),
            }
        })
        .await;
        if let Err(e) = retract {
            // Harmless if left: it is not the newest, so recovery ignores it and pruning
            // removes it; its staged files become orphans once it is gone.
            tracing::warn!(slot, error = %e, "could not delete this stale writer's manifest; pruning will");
        }
        Err(self.fenced(m, format!("a newer commit #{newer} exists")))
    }

    /// Whether the commit after `m` continues from `m` itself ([`Manifest::previous`] is the
    /// digest of `m`'s bytes): then another writer recovered `m` and published it. A missing,
    /// unreadable or older-version successor proves nothing, and `m` is treated as stale.
    async fn adopted(&self, m: &Manifest, bytes: &[u8]) -> Result<bool, CommitError> {
        let path = paths::manifest_path(&self.dir, m.seq + 1);
        let next =
            with_backoff("read the commit log", &self.run.config.backoff, &self.run.stop, || self.read_opt(&path))
                .await?;
        let ours = digest(bytes);
        Ok(next.and_then(|b| Manifest::parse(&b).ok()).is_some_and(|n| n.previous.as_deref() == Some(ours.as_str())))
    }

    /// Deletes the manifests older than the `keep` newest (best effort: the next commit or
    /// recovery prunes again). Only manifests older than `latest` are touched, so the newest
    /// manifest, the resume point, is never deleted.
    pub(super) async fn prune(&self, latest: u64, seqs: &[u64]) {
        let keep = self.run.config.keep as u64;
        // The deduplication window's manifests stay, however many that is.
        let floor = if self.run.config.keep_ids > 0 { self.recent.front().map_or(0, |(s, _)| *s) } else { u64::MAX };
        for &s in seqs.iter().filter(|s| **s + keep <= latest && **s < floor) {
            let path = paths::manifest_path(&self.dir, s);
            if let Err(e) = self.store.delete(&path).await {
                tracing::debug!(path, error = %e, "could not prune an old manifest; will retry on the next commit");
            }
        }
    }

    /// Sequence numbers present in the commit directory (other names are ignored).
    async fn list_seqs(&self) -> Result<Vec<u64>, CommitError> {
        let entries = self.store.list(&self.dir).await?;
        Ok(entries
            .iter()
            .filter(|e| !e.is_dir)
            .filter_map(|e| paths::parse_manifest_name(paths::file_name(&e.path)))
            .collect())
    }

    /// Lists the log and reads its newest manifest; `None` if the log is empty.
    async fn load_latest(&self) -> Result<Option<(Vec<u64>, Manifest, String)>, CommitError> {
        let seqs = self.list_seqs().await?;
        let Some(max) = seqs.iter().copied().max() else { return Ok(None) };
        let path = paths::manifest_path(&self.dir, max);
        let Some(bytes) = self.read_opt(&path).await? else {
            // Pruned between list and read: newer manifests exist, look again.
            return Err(CommitError::Store(StoreError::Transient {
                op: "read",
                path,
                message: "the newest manifest disappeared after listing".to_string(),
                hint: "another writer is committing; listing again".to_string(),
            }));
        };
        let bad = |source| CommitError::BadManifest { path: path.clone(), source };
        let manifest = Manifest::parse(&bytes).map_err(bad)?;
        manifest.check_belongs(&self.root, &self.topic, self.partition, max).map_err(bad)?;
        Ok(Some((seqs, manifest, digest(&bytes))))
    }

    async fn read_opt(&self, path: &str) -> Result<Option<bytes::Bytes>, CommitError> {
        match self.store.read(path).await {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn fenced(&self, m: &Manifest, reason: String) -> CommitError {
        CommitError::Fenced {
            topic: self.topic.clone(),
            partition: self.partition,
            seq: m.seq,
            start: m.start,
            end: m.end,
            reason,
        }
    }
}
