//! Where finished files land: the [`FileStore`] seam and its two implementations,
//! [`HdfsStore`] (`hdfs://…`, through the pure-Rust `hdfs-native` client) and [`LocalStore`]
//! (a directory on the local filesystem, for development and tests).
//!
//! The commit protocol only needs a handful of verbs (create-if-absent, no-overwrite rename,
//! stat, list, read, delete, mkdirs); both stores pass the same conformance suite
//! (`conformance.rs`), so a pipeline behaves the same whichever one it writes to.
//!
//! Errors that may be ambiguous (a timeout or dropped connection during `create` or `rename`
//! may hide a success at the NameNode) are reported as [`StoreError::Transient`]; callers
//! re-read the state before deciding ("target exists with our content and the source is gone"
//! means done; `docs/exactly-once.md`). `rename` already performs that check itself.

mod hdfs;
mod local;
mod store;

#[cfg(test)]
mod conformance;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(test)]
pub(crate) mod testing;

use std::path::PathBuf;
use std::sync::Arc;

pub use hdfs::HdfsStore;
pub use local::LocalStore;
pub use store::{FileStatus, FileStore, StoreError, StoreWriter};

/// Builds the HDFS store for `url` (e.g. `hdfs://127.0.0.1:9000`), acting as `user`
/// (`None`: hdfs-native falls back to `HADOOP_USER_NAME`, then the OS user).
/// Does not contact the NameNode: the first call does.
pub fn hdfs(url: &str, user: Option<&str>) -> Result<HdfsStore, StoreError> {
    HdfsStore::new(url, user)
}

/// [`hdfs`] with Hadoop client settings (`sink.hdfs.options`, e.g.
/// `config.options.iter()`) that override those from `HADOOP_CONF_DIR`.
pub fn hdfs_with_options<'a>(
    url: &str,
    user: Option<&str>,
    options: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HdfsStore, StoreError> {
    HdfsStore::with_config(url, user, options)
}

/// Builds a store from a location string, the form pipeline configs use:
/// `hdfs://host:port` → [`HdfsStore`]; `file:///dir` or an absolute path `/dir` →
/// [`LocalStore`] rooted at that directory. `user` only applies to HDFS.
pub fn open_store(location: &str, user: Option<&str>) -> Result<Arc<dyn FileStore>, StoreError> {
    if location.starts_with("hdfs://") || location.starts_with("viewfs://") {
        return Ok(Arc::new(hdfs(location, user)?));
    }
    let root = location.strip_prefix("file://").unwrap_or(location);
    if !root.starts_with('/') {
        return Err(StoreError::Fatal {
            op: "open",
            path: location.to_string(),
            message: "unsupported store location".to_string(),
            hint: "use hdfs://host:port, file:///absolute/dir or /absolute/dir".to_string(),
        });
    }
    Ok(Arc::new(LocalStore::new(PathBuf::from(root))))
}

/// The directories `depth` levels below the table root whose names start with neither `_`
/// nor `.` (Landfall's state, the quarantine, markers and other hidden names), relative to it:
/// a partitioned table's partition directories. One listing per directory above the leaves.
pub async fn partition_dirs(store: &dyn FileStore, root: &str, depth: usize) -> Result<Vec<String>, StoreError> {
    let mut level = vec![String::new()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for rel in &level {
            let path = if rel.is_empty() { root.to_string() } else { format!("{root}/{rel}") };
            for e in store.list(&path).await? {
                let name = e.path.rsplit('/').next().unwrap_or(&e.path);
                if e.is_dir && !name.starts_with('_') && !name.starts_with('.') {
                    next.push(if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") });
                }
            }
        }
        level = next;
    }
    level.sort();
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_store_picks_the_implementation_by_scheme() {
        assert_eq!(open_store("hdfs://127.0.0.1:9000", None).unwrap().describe(), "hdfs://127.0.0.1:9000");
        assert_eq!(open_store("file:///tmp/landing", None).unwrap().describe(), "file:///tmp/landing");
        assert_eq!(open_store("/tmp/landing", None).unwrap().describe(), "file:///tmp/landing");
        let err = open_store("s3://bucket/x", None).err().unwrap();
        assert!(!err.is_transient());
        assert!(err.to_string().contains("s3://bucket/x"), "{err}");
        assert!(open_store("relative/dir", None).is_err());
    }
}
