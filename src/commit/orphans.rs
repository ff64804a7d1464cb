//! Deleting what crashed writers left behind: staged files no manifest references, and
//! manifest temp files, once they are older than the grace period.
//!
//! Age is the only safe signal that a file is abandoned: a stalled writer may still commit a
//! young staged file. Ages are measured on the store's clock (the modification time of a probe
//! file created for the pass), never the local one: a host whose clock runs ahead would
//! otherwise delete other instances' live files. The committer refuses staged files older
//! than grace/2 and stops retrying its commit rename there, so a file this cleaner deletes
//! (older than grace when listed) can no longer be committed unless one store call hung for
//! longer than that (see docs/exactly-once.md, "Limits").

use std::collections::HashSet;
use std::time::Duration;

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
    /// Manifests that could not be parsed and were skipped (each warned about). Their
    /// partition cannot be recovered until an operator repairs or removes them, and it is
    /// re-consumed from the previous commit, so the staged files they name are not needed.
    pub unreadable_manifests: usize,
}

/// The store's clock: the modification time of a file created just now (on HDFS, the
/// NameNode's clock). The probe lives in `_landfall/tmp/` and is deleted at once.
pub(crate) async fn store_now_ms(store: &dyn FileStore, root: &str) -> Result<u64, CommitError> {
    let probe = format!("{}/clock-{}.probe", paths::tmp_dir(root), uuid::Uuid::new_v4().simple());
    store.create(&probe).await?.close().await?;
    let status = store.stat(&probe).await?;
    if let Err(e) = store.delete(&probe).await {
        tracing::debug!(probe, error = %e, "could not delete the clock probe; the next cleaning pass will");
    }
    status.map(|s| s.modified_ms).ok_or(CommitError::Vanished { what: "clock probe", path: probe })
}

/// Cleans the table's `_landfall/staging/` and `_landfall/tmp/`.
///
/// Order matters: staged files are listed *before* the manifests are read, so a manifest
/// committed in between can only reference a file the committer found younger than grace/2,
/// which this pass does not consider. A manifest that cannot be parsed is skipped (counted in
/// the report). One attempt, no retries: the caller runs this
/// periodically (on assignment and, say, hourly) and logs a failure.
pub async fn clean_orphans(
    store: &dyn FileStore,
    table_root: &str,
    grace: Duration,
) -> Result<CleanReport, CommitError> {
    let root = paths::table_root(table_root)?;
    let grace_ms = grace.as_millis() as u64;
    let now = store_now_ms(store, &root).await?;
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
        let referenced = referenced_staged_files(store, &root, &mut report).await?;
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

async fn referenced_staged_files(
    store: &dyn FileStore,
    root: &str,
    report: &mut CleanReport,
) -> Result<HashSet<String>, CommitError> {
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
                match Manifest::parse(&bytes) {
                    Ok(m) => referenced.extend(m.files.into_iter().map(|f| f.staged)),
                    Err(e) => {
                        report.unreadable_manifests += 1;
                        if first_warning(&entry.path) {
                            tracing::warn!(path = %entry.path, error = %e, "orphan cleanup skips a manifest it cannot parse; repair or remove it (its partition cannot resume until then)");
                        }
                    }
                }
            }
        }
    }
    Ok(referenced)
}

/// True the first time a path is warned about in this process: a pass runs every ten minutes
/// and would repeat the same warning forever.
fn first_warning(path: &str) -> bool {
    static WARNED: std::sync::Mutex<Option<HashSet<String>>> = std::sync::Mutex::new(None);
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    warned.get_or_insert_with(HashSet::new).insert(path.to_string())
}
