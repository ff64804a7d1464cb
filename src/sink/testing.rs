//! Test harness shared by the store conformance suite and the Parquet tests: a fresh,
//! uniquely named directory in each store, removed again afterwards.
//!
//! The HDFS variant talks to the lab NameNode (`LANDFALL_TEST_HDFS_URL`, default
//! `hdfs://127.0.0.1:9000`). When it is unreachable the test fails under `CI=true` (CI must
//! never silently skip the HDFS half) and otherwise prints a notice and passes, so a laptop
//! without the lab can still run `cargo test`.

use std::path::PathBuf;
use std::time::Duration;

use super::{FileStore, HdfsStore, LocalStore};

/// A store plus a private directory in it.
pub(crate) struct TestDir {
    pub store: Box<dyn FileStore>,
    /// Absolute store path of this test's directory, e.g. `/landfall-test/<uuid>`.
    pub root: String,
    /// Keeps the local temp dir alive for the test's duration.
    _tmp: Option<tempfile::TempDir>,
}

impl TestDir {
    /// `root` joined with `rel`.
    pub fn path(&self, rel: &str) -> String {
        format!("{}/{}", self.root, rel.trim_start_matches('/'))
    }

    /// Best-effort removal of the HDFS test directory (a temp dir removes itself).
    pub async fn cleanup(self) {
        if self._tmp.is_none() {
            if let Err(e) = self.store.delete(&self.root).await {
                eprintln!("could not remove {}: {e}", self.root);
            }
        }
    }
}

pub(crate) fn local_dir() -> TestDir {
    let tmp = tempfile::tempdir().expect("create a temp dir for LocalStore");
    let store = LocalStore::new(PathBuf::from(tmp.path()));
    TestDir { store: Box::new(store), root: format!("/landfall-test/{}", uuid::Uuid::new_v4()), _tmp: Some(tmp) }
}

pub(crate) fn hdfs_url() -> String {
    std::env::var("LANDFALL_TEST_HDFS_URL").unwrap_or_else(|_| "hdfs://127.0.0.1:9000".to_string())
}

/// The lab HDFS, or `None` (after a notice) when it is down outside CI.
pub(crate) async fn hdfs_dir() -> Option<TestDir> {
    let url = hdfs_url();
    let addr = url.trim_start_matches("hdfs://").split('/').next().unwrap_or_default().to_string();
    let reachable = matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr.as_str())).await,
        Ok(Ok(_))
    );
    if !reachable {
        let message = format!(
            "HDFS NameNode at {url} is not reachable: start the lab with `./bootstrap.sh` \
             (check with `./bootstrap.sh status`), or point LANDFALL_TEST_HDFS_URL at a NameNode"
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message} (CI=true: HDFS tests may not be skipped)");
        }
        eprintln!("NOTICE: skipping HDFS test. {message}");
        return None;
    }
    let store = HdfsStore::new(&url, None).expect("build the HDFS client").with_timeout(Duration::from_secs(20));
    Some(TestDir { store: Box::new(store), root: format!("/landfall-test/{}", uuid::Uuid::new_v4()), _tmp: None })
}
