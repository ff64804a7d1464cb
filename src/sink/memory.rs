//! An in-memory [`FileStore`] for unit tests, with fault injection.
//!
//! It follows the store contract (create-if-absent, no-overwrite rename creating parents,
//! recursive delete, `list` of direct children, mtimes in ms) and the HDFS behaviours the
//! protocol depends on: a created file is visible (empty) before `close`, and its mtime is
//! set again on `close`. Faults are armed per verb ("fail the Nth rename whose src or dst
//! contains `part-`") and fire once; see [`Fault`] for the kinds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use crate::sink::{FileStatus, FileStore, StoreError, StoreWriter};

/// A store verb, for arming faults and counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Create,
    Write,
    Close,
    Rename,
    Stat,
    List,
    Read,
    ReadRange,
    Delete,
    Mkdirs,
}

/// What an armed fault does to the call it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Nothing happens; a transient error is returned.
    Transient,
    /// Nothing happens; a fatal error is returned (a "crash" at that point: the protocol
    /// stops there and does no cleanup).
    Fatal,
    /// The operation takes effect, then a transient error is returned (a lost answer).
    AppliedThenTransient,
    /// Nothing happens, but success is returned (a store whose retry heuristic guessed wrong).
    SkippedButOk,
}

struct Armed {
    verb: Verb,
    filter: Option<String>,
    remaining: u64,
    fault: Fault,
}

#[derive(Default)]
struct Inner {
    files: BTreeMap<String, (Vec<u8>, u64)>,
    dirs: BTreeMap<String, u64>,
    /// Permission bits set by `set_permission` (moved along by a rename).
    modes: BTreeMap<String, u32>,
    armed: Vec<Armed>,
    calls: Vec<(Verb, String)>,
    /// Closes of paths containing the filter wait until its sender says true.
    held_closes: Vec<(String, tokio::sync::watch::Receiver<bool>)>,
}

/// The fake store; clones share the same contents.
#[derive(Clone, Default)]
pub(crate) struct MemStore {
    inner: Arc<Mutex<Inner>>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

fn err(fault: Fault, op: &'static str, path: &str) -> StoreError {
    let (message, hint) = ("injected fault".to_string(), "test fault injection".to_string());
    match fault {
        Fault::Fatal => StoreError::Fatal { op, path: path.to_string(), message, hint },
        _ => StoreError::Transient { op, path: path.to_string(), message, hint },
    }
}

impl Inner {
    /// Records the call and returns the fault armed for it, if one fires now.
    fn hit(&mut self, verb: Verb, paths: &[&str]) -> Option<Fault> {
        self.calls.push((verb, paths.join(" -> ")));
        let idx = self.armed.iter_mut().position(|a| {
            let matches =
                a.verb == verb && a.filter.as_ref().is_none_or(|f| paths.iter().any(|p| p.contains(f.as_str())));
            if matches {
                a.remaining -= 1;
            }
            matches && a.remaining == 0
        })?;
        Some(self.armed.remove(idx).fault)
    }

    fn add_dirs(&mut self, path: &str, now: u64) {
        let mut p = parent(path);
        while let Some(dir) = p {
            self.dirs.entry(dir.to_string()).or_insert(now);
            p = parent(dir);
        }
    }

    fn touch_parent(&mut self, path: &str, now: u64) {
        if let Some(dir) = parent(path) {
            self.dirs.insert(dir.to_string(), now);
        }
    }

    fn exists(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.dirs.contains_key(path)
    }
}

impl MemStore {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("MemStore lock poisoned")
    }

    /// Arms `fault` for the `n`-th (1-based, counted from now) call of `verb`.
    pub(crate) fn fail_nth(&self, verb: Verb, n: u64, fault: Fault) {
        self.lock().armed.push(Armed { verb, filter: None, remaining: n, fault });
    }

    /// Like [`fail_nth`](Self::fail_nth), counting only calls with a path containing `filter`.
    pub(crate) fn fail_nth_matching(&self, verb: Verb, filter: &str, n: u64, fault: Fault) {
        self.lock().armed.push(Armed { verb, filter: Some(filter.to_string()), remaining: n, fault });
    }

    /// Makes every close of a path containing `filter` wait until `true` is sent on the
    /// returned sender (or it is dropped): a store call that hangs, for tests of what goes on
    /// meanwhile.
    pub(crate) fn hold_closes(&self, filter: &str) -> tokio::sync::watch::Sender<bool> {
        let (release, held) = tokio::sync::watch::channel(false);
        self.lock().held_closes.push((filter.to_string(), held));
        release
    }

    /// Faults armed but not fired yet (a test asserting its fault was hit checks this is 0).
    pub(crate) fn armed(&self) -> usize {
        self.lock().armed.len()
    }

    /// How many calls of `verb` were made.
    pub(crate) fn calls(&self, verb: Verb) -> usize {
        self.lock().calls.iter().filter(|(v, _)| *v == verb).count()
    }

    /// Writes a whole file directly (no faults), with mtime now.
    pub(crate) fn put(&self, path: &str, data: &[u8]) {
        let now = now_ms();
        let mut inner = self.lock();
        inner.add_dirs(path, now);
        inner.touch_parent(path, now);
        inner.files.insert(path.to_string(), (data.to_vec(), now));
    }

    /// Sets the mtime of a file or directory (to age it).
    pub(crate) fn set_modified(&self, path: &str, modified_ms: u64) {
        let mut inner = self.lock();
        if let Some(f) = inner.files.get_mut(path) {
            f.1 = modified_ms;
        } else if let Some(d) = inner.dirs.get_mut(path) {
            *d = modified_ms;
        } else {
            panic!("set_modified: {path} does not exist");
        }
    }

    /// Permission bits set on `path`, `None` if never set.
    pub(crate) fn mode(&self, path: &str) -> Option<u32> {
        self.lock().modes.get(path).copied()
    }

    pub(crate) fn exists(&self, path: &str) -> bool {
        self.lock().exists(path)
    }

    /// Content of a file, `None` if absent.
    pub(crate) fn get(&self, path: &str) -> Option<Vec<u8>> {
        self.lock().files.get(path).map(|f| f.0.clone())
    }

    /// All files (path → content) whose path starts with `prefix`.
    pub(crate) fn files_under(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        self.lock().files.iter().filter(|(p, _)| p.starts_with(prefix)).map(|(p, f)| (p.clone(), f.0.clone())).collect()
    }
}

struct MemWriter {
    store: MemStore,
    path: String,
}

#[async_trait]
impl StoreWriter for MemWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        let mut inner = self.store.lock();
        let fault = inner.hit(Verb::Write, &[&self.path]);
        if let Some(f @ (Fault::Transient | Fault::Fatal)) = fault {
            return Err(err(f, "write", &self.path));
        }
        if fault == Some(Fault::SkippedButOk) {
            return Ok(());
        }
        // Like an HDFS lease lost to a delete: writing to a removed file fails.
        let file = inner.files.get_mut(&self.path).ok_or_else(|| StoreError::NotFound { path: self.path.clone() })?;
        file.0.extend_from_slice(&data);
        match fault {
            Some(f) => Err(err(f, "write", &self.path)),
            None => Ok(()),
        }
    }

    async fn close(self: Box<Self>) -> Result<(), StoreError> {
        let held: Vec<_> = {
            let inner = self.store.lock();
            inner.held_closes.iter().filter(|(f, _)| self.path.contains(f.as_str())).map(|(_, rx)| rx.clone()).collect()
        };
        for mut rx in held {
            let _ = rx.wait_for(|released| *released).await;
        }
        let mut inner = self.store.lock();
        let fault = inner.hit(Verb::Close, &[&self.path]);
        if let Some(f @ (Fault::Transient | Fault::Fatal)) = fault {
            return Err(err(f, "close", &self.path));
        }
        let now = now_ms();
        let file = inner.files.get_mut(&self.path).ok_or_else(|| StoreError::NotFound { path: self.path.clone() })?;
        file.1 = now;
        match fault {
            Some(Fault::AppliedThenTransient) => Err(err(Fault::Transient, "close", &self.path)),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl FileStore for MemStore {
    async fn create(&self, path: &str) -> Result<Box<dyn StoreWriter>, StoreError> {
        let writer = Box::new(MemWriter { store: self.clone(), path: path.to_string() });
        let mut inner = self.lock();
        let fault = inner.hit(Verb::Create, &[path]);
        match fault {
            Some(f @ (Fault::Transient | Fault::Fatal)) => return Err(err(f, "create", path)),
            Some(Fault::SkippedButOk) => return Ok(writer),
            _ => {}
        }
        if inner.exists(path) {
            return Err(StoreError::AlreadyExists { path: path.to_string() });
        }
        let now = now_ms();
        inner.add_dirs(path, now);
        inner.touch_parent(path, now);
        inner.files.insert(path.to_string(), (Vec::new(), now));
        match fault {
            Some(f) => Err(err(f, "create", path)),
            None => Ok(writer),
        }
    }

    async fn rename(&self, src: &str, dst: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let fault = inner.hit(Verb::Rename, &[src, dst]);
        match fault {
            Some(f @ (Fault::Transient | Fault::Fatal)) => return Err(err(f, "rename", src)),
            Some(Fault::SkippedButOk) => return Ok(()),
            _ => {}
        }
        if inner.dirs.contains_key(src) {
            return Err(StoreError::Fatal {
                op: "rename",
                path: src.to_string(),
                message: "directory rename is not supported by MemStore".to_string(),
                hint: "rename files only".to_string(),
            });
        }
        if !inner.files.contains_key(src) {
            return Err(StoreError::NotFound { path: src.to_string() });
        }
        if inner.exists(dst) {
            return Err(StoreError::AlreadyExists { path: dst.to_string() });
        }
        let now = now_ms();
        let file = inner.files.remove(src).expect("checked above");
        inner.touch_parent(src, now);
        inner.add_dirs(dst, now);
        inner.touch_parent(dst, now);
        inner.files.insert(dst.to_string(), file);
        if let Some(mode) = inner.modes.remove(src) {
            inner.modes.insert(dst.to_string(), mode);
        }
        match fault {
            Some(f) => Err(err(f, "rename", src)),
            None => Ok(()),
        }
    }

    async fn stat(&self, path: &str) -> Result<Option<FileStatus>, StoreError> {
        let mut inner = self.lock();
        if let Some(f) = inner.hit(Verb::Stat, &[path]) {
            return Err(err(f, "stat", path));
        }
        if let Some((data, m)) = inner.files.get(path) {
            return Ok(Some(FileStatus {
                path: path.to_string(),
                is_dir: false,
                len: data.len() as u64,
                modified_ms: *m,
            }));
        }
        Ok(inner.dirs.get(path).map(|m| FileStatus { path: path.to_string(), is_dir: true, len: 0, modified_ms: *m }))
    }

    async fn list(&self, dir: &str) -> Result<Vec<FileStatus>, StoreError> {
        let mut inner = self.lock();
        if let Some(f) = inner.hit(Verb::List, &[dir]) {
            return Err(err(f, "list", dir));
        }
        let mut out: Vec<FileStatus> = inner
            .files
            .iter()
            .filter(|(p, _)| parent(p) == Some(dir))
            .map(|(p, (d, m))| FileStatus { path: p.clone(), is_dir: false, len: d.len() as u64, modified_ms: *m })
            .collect();
        out.extend(inner.dirs.iter().filter(|(p, _)| parent(p) == Some(dir)).map(|(p, m)| FileStatus {
            path: p.clone(),
            is_dir: true,
            len: 0,
            modified_ms: *m,
        }));
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn read(&self, path: &str) -> Result<Bytes, StoreError> {
        let mut inner = self.lock();
        if let Some(f) = inner.hit(Verb::Read, &[path]) {
            return Err(err(f, "read", path));
        }
        inner
            .files
            .get(path)
            .map(|(d, _)| Bytes::from(d.clone()))
            .ok_or_else(|| StoreError::NotFound { path: path.to_string() })
    }

    async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        let mut inner = self.lock();
        if let Some(f) = inner.hit(Verb::ReadRange, &[path]) {
            return Err(err(f, "read", path));
        }
        let (data, _) = inner.files.get(path).ok_or_else(|| StoreError::NotFound { path: path.to_string() })?;
        let end = offset.saturating_add(len).min(data.len() as u64) as usize;
        let start = (offset as usize).min(end);
        Ok(Bytes::copy_from_slice(&data[start..end]))
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let fault = inner.hit(Verb::Delete, &[path]);
        match fault {
            Some(f @ (Fault::Transient | Fault::Fatal)) => return Err(err(f, "delete", path)),
            Some(Fault::SkippedButOk) => return Ok(()),
            _ => {}
        }
        let existed = inner.exists(path);
        let prefix = format!("{path}/");
        inner.files.retain(|p, _| p != path && !p.starts_with(&prefix));
        inner.dirs.retain(|p, _| p != path && !p.starts_with(&prefix));
        if existed {
            inner.touch_parent(path, now_ms());
        }
        match fault {
            Some(f) => Err(err(f, "delete", path)),
            None => Ok(()),
        }
    }

    async fn mkdirs(&self, path: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(f) = inner.hit(Verb::Mkdirs, &[path]) {
            return Err(err(f, "mkdirs", path));
        }
        let now = now_ms();
        inner.add_dirs(path, now);
        inner.dirs.entry(path.to_string()).or_insert(now);
        Ok(())
    }

    async fn set_permission(&self, path: &str, mode: u32) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if !inner.exists(path) {
            return Err(StoreError::NotFound { path: path.to_string() });
        }
        inner.modes.insert(path.to_string(), mode);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory://".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn behaves_like_the_store_contract() {
        let s = MemStore::new();
        let mut w = s.create("/a/b/f").await.unwrap();
        assert_eq!(s.stat("/a/b/f").await.unwrap().unwrap().len, 0, "visible while being written");
        w.write(Bytes::from_static(b"xyz")).await.unwrap();
        w.close().await.unwrap();
        assert!(matches!(s.create("/a/b/f").await, Err(StoreError::AlreadyExists { .. })));
        assert_eq!(&s.read("/a/b/f").await.unwrap()[..], b"xyz");
        let names: Vec<_> = s.list("/a").await.unwrap().into_iter().map(|e| (e.path, e.is_dir)).collect();
        assert_eq!(names, vec![("/a/b".to_string(), true)]);
        assert!(s.list("/nope").await.unwrap().is_empty());
        s.put("/a/c/g", b"1");
        assert!(matches!(s.rename("/a/b/f", "/a/c/g").await, Err(StoreError::AlreadyExists { .. })));
        assert!(matches!(s.rename("/a/b/x", "/a/c/y").await, Err(StoreError::NotFound { .. })));
        s.rename("/a/b/f", "/z/f").await.unwrap();
        assert_eq!(s.get("/z/f").unwrap(), b"xyz");
        s.delete("/a").await.unwrap();
        assert!(!s.exists("/a/c/g") && !s.exists("/a"));
        s.delete("/a").await.unwrap();
    }

    #[tokio::test]
    async fn faults_fire_once_on_the_nth_matching_call() {
        let s = MemStore::new();
        s.put("/s1", b"1");
        s.put("/s2", b"2");
        s.fail_nth_matching(Verb::Rename, "/d", 2, Fault::AppliedThenTransient);
        s.rename("/s1", "/d1").await.unwrap();
        let e = s.rename("/s2", "/d2").await.unwrap_err();
        assert!(e.is_transient());
        assert!(s.exists("/d2") && !s.exists("/s2"), "applied despite the error");
        s.fail_nth(Verb::Stat, 1, Fault::Fatal);
        assert!(matches!(s.stat("/d1").await, Err(StoreError::Fatal { .. })));
        assert!(s.stat("/d1").await.unwrap().is_some());
        s.fail_nth(Verb::Rename, 1, Fault::SkippedButOk);
        s.rename("/d1", "/e1").await.unwrap();
        assert!(s.exists("/d1") && !s.exists("/e1"));
        s.fail_nth(Verb::Create, 1, Fault::AppliedThenTransient);
        assert!(s.create("/c").await.is_err());
        assert!(s.exists("/c"));
        assert_eq!(s.armed(), 0);
        assert_eq!(s.calls(Verb::Rename), 3);
    }
}
