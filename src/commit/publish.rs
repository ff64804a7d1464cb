//! Moving committed files to their published names, idempotently.
//!
//! Each step tries the rename first (one call on the happy path) and, on any ambiguous
//! answer, decides from the state it re-reads: `staged` gone and `final` present with the
//! committed size means "done" (by us earlier, by a lost answer, or by another recovery
//! running at the same time); both gone means the data is lost, which must be loud.

use crate::commit::log::CommitLog;
use crate::commit::manifest::{Manifest, ManifestFile};
use crate::commit::CommitError;
use crate::retry::with_backoff;
use crate::sink::StoreError;

impl CommitLog {
    /// Publishes every file of `manifest`; safe to run any number of times, concurrently too.
    pub(crate) async fn publish(&self, manifest: &Manifest, manifest_path: &str) -> Result<(), CommitError> {
        for (i, file) in manifest.files.iter().enumerate() {
            if i == 1 {
                crate::crash::point("mid_publish", "with the first file of a commit published, not the others");
            }
            let op = format!("publish {}", file.final_path);
            with_backoff(&op, &self.run.config.backoff, &self.run.stop, || {
                self.publish_file(manifest, manifest_path, file)
            })
            .await?;
            self.restrict_quarantine_dirs(&file.final_path).await?;
        }
        Ok(())
    }

    /// The directories of a published quarantine file (`_rejected/` and its day) get
    /// `quarantine.permissions` (plus `x`): the store created them with its defaults.
    async fn restrict_quarantine_dirs(&self, final_path: &str) -> Result<(), CommitError> {
        let Some(rel) = final_path.strip_prefix(&format!("{}/", self.root)) else { return Ok(()) };
        let Some((dir, _)) = rel.rsplit_once('/') else { return Ok(()) };
        if !crate::quarantine::is_rejected_dir(dir) {
            return Ok(());
        }
        let mode = crate::config::FileMode(self.run.config.quarantine_mode).for_directory();
        let mut dirs = vec![dir];
        dirs.extend(dir.match_indices('/').map(|(i, _)| &dir[..i]));
        for d in dirs {
            let path = format!("{}/{d}", self.root);
            with_backoff(&format!("set permissions of {path}"), &self.run.config.backoff, &self.run.stop, || async {
                self.store.set_permission(&path, mode).await.map_err(CommitError::from)
            })
            .await?;
        }
        Ok(())
    }

    async fn publish_file(&self, m: &Manifest, manifest_path: &str, f: &ManifestFile) -> Result<(), CommitError> {
        match self.store.rename(&f.staged, &f.final_path).await {
            Ok(()) => return Ok(()),
            Err(StoreError::AlreadyExists { .. } | StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let staged = self.store.stat(&f.staged).await?;
        let published = self.store.stat(&f.final_path).await?;
        match (staged, published) {
            (None, Some(p)) if p.len == f.bytes => Ok(()),
            (None, Some(p)) => Err(CommitError::Conflict {
                staged: f.staged.clone(),
                final_path: f.final_path.clone(),
                detail: format!("the published file has {} bytes, the commit recorded {}", p.len, f.bytes),
            }),
            (Some(_), Some(_)) => Err(CommitError::Conflict {
                staged: f.staged.clone(),
                final_path: f.final_path.clone(),
                detail: "both the staged and the published file exist".to_string(),
            }),
            (None, None) => Err(CommitError::Lost {
                topic: m.topic.clone(),
                partition: m.partition,
                seq: m.seq,
                start: m.start,
                end: m.end,
                staged: f.staged.clone(),
                final_path: f.final_path.clone(),
                manifest: manifest_path.to_string(),
            }),
            // The rename said "missing" or "exists" but the state says neither: a concurrent
            // change in between. Retry with a fresh look.
            (Some(_), None) => Err(CommitError::Store(StoreError::Transient {
                op: "rename",
                path: f.staged.clone(),
                message: "the store's answer contradicts a fresh stat".to_string(),
                hint: "another process is touching this file; retrying".to_string(),
            })),
        }
    }
}
