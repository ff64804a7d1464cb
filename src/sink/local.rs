//! [`FileStore`] on a local directory: development, tests, and single-host deployments
//! whose "lake" is a mounted filesystem.
//!
//! Store paths (`/landing/clicks/x`) map under the root directory. The publish step must be
//! atomic and must never overwrite, which `std::fs::rename` cannot promise (it replaces an
//! existing target). Files are therefore published with `hard_link(src, dst)` — which fails
//! atomically with `EEXIST` when `dst` exists — followed by removing `src`. A crash between the
//! two leaves both names on one inode; a later rename of the same pair sees that, removes the
//! staged name and succeeds, so re-driving a publish after such a crash completes it.
//! Directories cannot be hard-linked; they are renamed after an existence check, which is not
//! a fence (Landfall only publishes files).
//!
//! Durability mirrors HDFS's "durable once `close` returns": `close` fsyncs the file and its
//! directory, `rename` fsyncs the directories whose entries it changed.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::store::{FileStatus, FileStore, StoreError, StoreWriter};

/// A directory acting as the root (`/`) of a store.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// The directory need not exist yet: it is created by the first write.
    pub fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    /// Maps a store path under the root; `..` is refused so a path can never leave it.
    fn local(&self, op: &'static str, path: &str) -> Result<PathBuf, StoreError> {
        let mut out = self.root.clone();
        for component in Path::new(path).components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => out.push(part),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(StoreError::Fatal {
                        op,
                        path: path.to_string(),
                        message: "path leaves the store root".to_string(),
                        hint: "store paths are absolute and may not contain `..`".to_string(),
                    })
                }
            }
        }
        Ok(out)
    }
}

/// Maps an I/O error to the store's retry classes, naming the local path to check.
fn classify(op: &'static str, path: &str, local: &Path, err: io::Error) -> StoreError {
    let fail = |hint: String| (err.to_string(), hint);
    let (message, hint) = match err.kind() {
        io::ErrorKind::AlreadyExists => return StoreError::AlreadyExists { path: path.to_string() },
        io::ErrorKind::NotFound => return StoreError::NotFound { path: path.to_string() },
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            let (message, hint) = fail(format!("free space on the filesystem holding {}", local.display()));
            return StoreError::Transient { op, path: path.to_string(), message, hint };
        }
        io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            let (message, hint) = fail(format!("retrying; check the filesystem holding {}", local.display()));
            return StoreError::Transient { op, path: path.to_string(), message, hint };
        }
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            fail(format!("check permissions on {} for the daemon's user", local.display()))
        }
        io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory | io::ErrorKind::DirectoryNotEmpty => {
            fail(format!("{} or one of its parents has the wrong type (file vs directory)", local.display()))
        }
        _ => fail(format!("check {} and the filesystem it is on", local.display())),
    };
    StoreError::Fatal { op, path: path.to_string(), message, hint }
}

/// Runs blocking filesystem calls on tokio's blocking pool, off the I/O threads.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    path: &str,
    local: PathBuf,
    f: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || f(&local).map_err(|e| classify(op, &path, &local, e))).await.map_err(
        |join| StoreError::Fatal {
            op,
            path: String::new(),
            message: join.to_string(),
            hint: "a filesystem task panicked; this is a bug".to_string(),
        },
    )?
}

/// True when `a` and `b` are names of one inode.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn to_status(path: String, meta: &fs::Metadata) -> FileStatus {
    let modified_ms =
        meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64).unwrap_or(0);
    FileStatus { path, is_dir: meta.is_dir(), len: if meta.is_dir() { 0 } else { meta.len() }, modified_ms }
}

#[async_trait]
impl FileStore for LocalStore {
    async fn create(&self, path: &str) -> Result<Box<dyn StoreWriter>, StoreError> {
        let local = self.local("create", path)?;
        let file = blocking("create", path, local.clone(), |local| {
            if let Some(parent) = local.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::OpenOptions::new().write(true).create_new(true).open(local)
        })
        .await?;
        Ok(Box::new(LocalWriter { file: tokio::fs::File::from_std(file), path: path.to_string(), local }))
    }

    async fn rename(&self, src: &str, dst: &str) -> Result<(), StoreError> {
        let local_src = self.local("rename", src)?;
        let local_dst = self.local("rename", dst)?;
        let (src_owned, dst_owned) = (src.to_string(), dst.to_string());
        let dst_for_error = dst_owned.clone();
        blocking("rename", src, local_src.clone(), move |local_src| {
            let meta = fs::symlink_metadata(local_src)?;
            let dst_parent = local_dst.parent().unwrap_or(Path::new("/")).to_path_buf();
            fs::create_dir_all(&dst_parent)?;
            if meta.is_dir() {
                if fs::symlink_metadata(&local_dst).is_ok() {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, dst_for_error));
                }
                fs::rename(local_src, &local_dst)?;
            } else {
                match fs::hard_link(local_src, &local_dst) {
                    Ok(()) if !dst_for_error.contains("/_landfall/") => {
                        crate::crash::point("local_publish_linked", "between the link and the unlink of a publish")
                    }
                    Ok(()) => {}
                    // A crash between link and unlink left both names on one inode: the
                    // publish happened; finish it. Any other file at `dst` is a real conflict.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && same_file(local_src, &local_dst) => {}
                    Err(e) => return Err(e),
                }
                fs::remove_file(local_src)?;
            }
            sync_dir(&dst_parent)?;
            if let Some(src_parent) = local_src.parent().filter(|p| *p != dst_parent) {
                sync_dir(src_parent)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| match e {
            // Only the destination can "already exist"; only the source can be missing
            // (the destination's parents were just created).
            StoreError::AlreadyExists { .. } => StoreError::AlreadyExists { path: dst_owned },
            StoreError::NotFound { .. } => StoreError::NotFound { path: src_owned },
            other => other,
        })
    }

    async fn stat(&self, path: &str) -> Result<Option<FileStatus>, StoreError> {
        let local = self.local("stat", path)?;
        let store_path = path.to_string();
        match blocking("stat", path, local, |local| fs::metadata(local)).await {
            Ok(meta) => Ok(Some(to_status(store_path, &meta))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, dir: &str) -> Result<Vec<FileStatus>, StoreError> {
        let local = self.local("list", dir)?;
        let prefix = dir.trim_end_matches('/').to_string();
        let listed = blocking("list", dir, local, move |local| {
            let mut out = Vec::new();
            for entry in fs::read_dir(local)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                let name = entry.file_name().to_string_lossy().into_owned();
                out.push(to_status(format!("{prefix}/{name}"), &meta));
            }
            out.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(out)
        })
        .await;
        match listed {
            Err(StoreError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    async fn read(&self, path: &str) -> Result<Bytes, StoreError> {
        let local = self.local("read", path)?;
        blocking("read", path, local, |local| fs::read(local).map(Bytes::from)).await
    }

    async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let local = self.local("read", path)?;
        blocking("read", path, local, move |local| {
            let mut file = fs::File::open(local)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut out = Vec::new();
            file.take(len).read_to_end(&mut out)?;
            Ok(Bytes::from(out))
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        let local = self.local("delete", path)?;
        if local == self.root {
            return Err(StoreError::Fatal {
                op: "delete",
                path: path.to_string(),
                message: "refusing to delete the store root".to_string(),
                hint: "delete paths below the root".to_string(),
            });
        }
        let result = blocking("delete", path, local, |local| match fs::symlink_metadata(local)?.is_dir() {
            true => fs::remove_dir_all(local),
            false => fs::remove_file(local),
        })
        .await;
        match result {
            Err(StoreError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    async fn mkdirs(&self, path: &str) -> Result<(), StoreError> {
        let local = self.local("mkdirs", path)?;
        blocking("mkdirs", path, local, |local| fs::create_dir_all(local)).await
    }

    async fn set_permission(&self, path: &str, mode: u32) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let local = self.local("set permission", path)?;
        blocking("set permission", path, local, move |local| {
            fs::set_permissions(local, fs::Permissions::from_mode(mode))
        })
        .await
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// A file being written. `close` fsyncs file and directory so a create-if-absent fence and
/// the data survive a power loss, like HDFS after `close`.
struct LocalWriter {
    file: tokio::fs::File,
    path: String,
    local: PathBuf,
}

#[async_trait]
impl StoreWriter for LocalWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.file.write_all(&data).await.map_err(|e| classify("write", &self.path, &self.local, e))
    }

    async fn close(mut self: Box<Self>) -> Result<(), StoreError> {
        let LocalWriter { mut file, path, local } = *self;
        let err = |e| classify("close", &path, &local, e);
        file.flush().await.map_err(err)?;
        file.sync_all().await.map_err(err)?;
        drop(file);
        let parent = local.parent().unwrap_or(Path::new("/")).to_path_buf();
        blocking("close", &path, parent, sync_dir).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_under_the_root_and_cannot_escape_it() {
        let store = LocalStore::new(PathBuf::from("/srv/lake"));
        assert_eq!(store.local("stat", "/landing/a.parquet").unwrap(), PathBuf::from("/srv/lake/landing/a.parquet"));
        assert_eq!(store.local("stat", "/").unwrap(), PathBuf::from("/srv/lake"));
        let err = store.local("stat", "/landing/../../etc/passwd").unwrap_err();
        assert!(matches!(err, StoreError::Fatal { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_root_itself_cannot_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        assert!(matches!(store.delete("/").await, Err(StoreError::Fatal { .. })));
        assert!(dir.path().exists());
    }

    #[tokio::test]
    async fn permission_problems_are_fatal_and_name_the_local_path() {
        let err = classify("create", "/a", Path::new("/srv/lake/a"), io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(&err, StoreError::Fatal { hint, .. } if hint.contains("/srv/lake/a")), "{err}");
        let err = classify("write", "/a", Path::new("/srv/lake/a"), io::Error::from(io::ErrorKind::StorageFull));
        assert!(err.is_transient(), "{err}");
    }

    /// A crash between the link and the unlink of a publish leaves both names on one inode;
    /// renaming the pair again completes the publish, while a different file at the
    /// destination still refuses.
    #[tokio::test]
    async fn a_publish_interrupted_after_the_link_completes_when_redone() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        fs::create_dir_all(dir.path().join("t/dt=1")).unwrap();
        fs::write(dir.path().join("t/staged"), b"rows").unwrap();
        fs::hard_link(dir.path().join("t/staged"), dir.path().join("t/dt=1/part")).unwrap();
        store.rename("/t/staged", "/t/dt=1/part").await.unwrap();
        assert!(!dir.path().join("t/staged").exists());
        assert_eq!(fs::read(dir.path().join("t/dt=1/part")).unwrap(), b"rows");

        fs::write(dir.path().join("t/other"), b"rows").unwrap();
        let err = store.rename("/t/other", "/t/dt=1/part").await.unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
        assert!(dir.path().join("t/other").exists());
    }
}
