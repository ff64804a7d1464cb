//! Deleting what crashed writers left behind: staged files no manifest references, and
//! manifest temp files, once they are older than the grace period.
//!
//! Age is the only safe signal that a file is abandoned: a stalled writer may still commit a
//! young staged file. The committer refuses staged files older than grace/2, so a file this
//! cleaner deletes (older than grace when listed) can no longer be committed unless the
//! committer stalled for more than grace/2 between its age check and its commit rename (see
//! docs/exactly-once.md, "Limits").

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::commit::manifest::Manifest;
use crate::commit::{paths, CommitError};
use crate::sink::FileStore;

/// What one cleaning pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanReport {
    /// Paths deleted (staged files, temp manifests, empty staging directories).
    pub deleted: Vec<String>,
    /// Staged or temp files kept because they are younger than the grace period.
    pub kept_young: usize,
    /// Old staged files kept because a manifest references them (recovery will publish them).
    pub kept_referenced: usize,
}

/// Cleans the table's `_landfall/staging/` and `_landfall/tmp/`.
///
/// Order matters: staged files are listed *before* the manifests are read, so a manifest
/// committed in between can only reference a file the committer found younger than grace/2,
/// which this pass does not consider. A manifest that cannot be parsed aborts the pass
/// (its references are unknown). One attempt, no retries: the caller runs this
/// periodically (on assignment and, say, hourly) and logs a failure.
pub async fn clean_orphans(
    store: &dyn FileStore,
    table_root: &str,
    grace: Duration,
) -> Result<CleanReport, CommitError> {
    let root = paths::table_root(table_root)?;
    let grace_ms = grace.as_millis() as u64;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let old = |modified_ms: u64| now.saturating_sub(modified_ms) > grace_ms;
    let mut report = CleanReport::default();

    // 1. Candidates: old files in every run's staging directory, and old, empty run dirs.
    let mut candidates = Vec::new();
    let mut empty_dirs = Vec::new();
    for run in store.list(&format!("{root}/{}/staging", paths::STATE_DIR)).await? {
        if !run.is_dir {
            continue;
        }
        let files = store.list(&run.path).await?;
        if files.is_empty() && old(run.modified_ms) {
            empty_dirs.push(run.path.clone());
        }
        for f in files.into_iter().filter(|f| !f.is_dir) {
            if old(f.modified_ms) {
                candidates.push(f.path);
            } else {
                report.kept_young += 1;
            }
        }
    }

    // 2. Temp manifests are never referenced: an old one belongs to a dead or hopelessly
    //    stalled committer (whose rename then fails, harmlessly).
    for tmp in store.list(&paths::tmp_dir(&root)).await? {
        if tmp.is_dir {
            continue;
        }
        if old(tmp.modified_ms) {
            store.delete(&tmp.path).await?;
            report.deleted.push(tmp.path);
        } else {
            report.kept_young += 1;
        }
    }

    // 3. References from every manifest of every partition (a few per partition).
    if !candidates.is_empty() {
        let referenced = referenced_staged_files(store, &root).await?;
        for path in candidates {
            if referenced.contains(&path) {
                report.kept_referenced += 1;
            } else {
                store.delete(&path).await?;
                report.deleted.push(path);
            }
        }
    }

    // 4. Empty run directories, re-checked right before deleting (delete is recursive).
    for dir in empty_dirs {
        if store.list(&dir).await?.is_empty() {
            store.delete(&dir).await?;
            report.deleted.push(dir);
        }
    }
    if !report.deleted.is_empty() {
        tracing::info!(
            table = %root, deleted = report.deleted.len(), kept_young = report.kept_young,
            kept_referenced = report.kept_referenced, "removed orphaned staging files"
        );
    }
    Ok(report)
}

async fn referenced_staged_files(store: &dyn FileStore, root: &str) -> Result<HashSet<String>, CommitError> {
    let mut referenced = HashSet::new();
    for topic in store.list(&format!("{root}/{}/commits", paths::STATE_DIR)).await? {
        if !topic.is_dir {
            continue;
        }
        for partition in store.list(&topic.path).await?.into_iter().filter(|p| p.is_dir) {
            for entry in store.list(&partition.path).await? {
                if entry.is_dir || paths::parse_manifest_name(paths::file_name(&entry.path)).is_none() {
                    continue;
                }
                let bytes = match store.read(&entry.path).await {
                    Ok(b) => b,
                    Err(crate::sink::StoreError::NotFound { .. }) => continue, // pruned meanwhile
                    Err(e) => return Err(e.into()),
                };
                let m = Manifest::parse(&bytes)
                    .map_err(|source| CommitError::BadManifest { path: entry.path.clone(), source })?;
                referenced.extend(m.files.into_iter().map(|f| f.staged));
            }
        }
    }
    Ok(referenced)
}
