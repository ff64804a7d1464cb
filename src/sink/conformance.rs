//! The conformance suite every [`FileStore`] passes: the same assertions, run once per
//! implementation (`local::…` on a temp dir, `hdfs::…` on the lab NameNode), so the commit
//! protocol can rely on identical semantics whichever store a pipeline uses.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::testing::TestDir;
use super::{FileStore, StoreError};

async fn write_file(store: &dyn FileStore, path: &str, chunks: &[&'static [u8]]) {
    let mut writer = store.create(path).await.unwrap_or_else(|e| panic!("create {path}: {e}"));
    for chunk in chunks {
        writer.write(Bytes::from_static(chunk)).await.unwrap();
    }
    writer.close().await.unwrap();
}

fn names(entries: &[super::FileStatus]) -> Vec<String> {
    let mut names: Vec<String> = entries.iter().map(|e| e.path.rsplit('/').next().unwrap().to_string()).collect();
    names.sort();
    names
}

async fn create_write_close_read(t: &TestDir) {
    let path = t.path("a/b/data.bin");
    write_file(&*t.store, &path, &[b"hello ", b"world"]).await;
    assert_eq!(t.store.read(&path).await.unwrap(), Bytes::from_static(b"hello world"));
    let status = t.store.stat(&path).await.unwrap().expect("file exists after close");
    assert_eq!(status.path, path);
    assert!(!status.is_dir);
    assert_eq!(status.len, 11);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(now_ms.abs_diff(status.modified_ms) < 10 * 60 * 1000, "modified_ms {} vs now {now_ms}", status.modified_ms);
    assert!(t.store.stat(&t.path("a/b")).await.unwrap().unwrap().is_dir, "parents were created");
}

async fn empty_file_reads_back_empty(t: &TestDir) {
    let path = t.path("empty");
    write_file(&*t.store, &path, &[]).await;
    assert_eq!(t.store.read(&path).await.unwrap().len(), 0);
    assert_eq!(t.store.stat(&path).await.unwrap().unwrap().len, 0);
}

async fn create_on_existing_is_already_exists(t: &TestDir) {
    let path = t.path("fence");
    write_file(&*t.store, &path, &[b"first"]).await;
    match t.store.create(&path).await {
        Err(StoreError::AlreadyExists { path: p }) => assert_eq!(p, path),
        Err(other) => panic!("expected AlreadyExists, got {other}"),
        Ok(_) => panic!("expected AlreadyExists, create succeeded"),
    }
    assert_eq!(t.store.read(&path).await.unwrap(), Bytes::from_static(b"first"), "content untouched");
}

async fn rename_publishes_without_overwriting(t: &TestDir) {
    let src = t.path("_staging/part-0.tmp");
    let dst = t.path("table/dt=2026-11-25/part-0.parquet");
    write_file(&*t.store, &src, &[b"payload"]).await;
    t.store.rename(&src, &dst).await.unwrap();
    assert_eq!(t.store.stat(&src).await.unwrap(), None, "source is gone");
    assert_eq!(t.store.read(&dst).await.unwrap(), Bytes::from_static(b"payload"));

    let other = t.path("_staging/part-1.tmp");
    write_file(&*t.store, &other, &[b"other"]).await;
    match t.store.rename(&other, &dst).await {
        Err(StoreError::AlreadyExists { path }) => assert_eq!(path, dst),
        other => panic!("expected AlreadyExists for {dst}, got {other:?}"),
    }
    assert_eq!(t.store.read(&dst).await.unwrap(), Bytes::from_static(b"payload"), "destination not overwritten");
    assert_eq!(t.store.read(&other).await.unwrap(), Bytes::from_static(b"other"), "source left in place");

    let missing = t.path("_staging/missing.tmp");
    match t.store.rename(&missing, &t.path("table/x.parquet")).await {
        Err(StoreError::NotFound { path }) => assert_eq!(path, missing),
        other => panic!("expected NotFound for {missing}, got {other:?}"),
    }
    assert_eq!(t.store.stat(&t.path("table/x.parquet")).await.unwrap(), None);
}

async fn stat_list_delete_mkdirs(t: &TestDir) {
    let dir = t.path("d/e");
    t.store.mkdirs(&dir).await.unwrap();
    t.store.mkdirs(&dir).await.unwrap(); // Ok if present
    let status = t.store.stat(&dir).await.unwrap().unwrap();
    assert!(status.is_dir);
    assert_eq!(status.path, dir);

    write_file(&*t.store, &t.path("d/one"), &[b"1"]).await;
    write_file(&*t.store, &t.path("d/two"), &[b"22"]).await;
    write_file(&*t.store, &t.path("d/e/deep"), &[b"333"]).await;
    let listed = t.store.list(&t.path("d")).await.unwrap();
    assert_eq!(names(&listed), ["e", "one", "two"], "only direct children");
    let two = listed.iter().find(|e| e.path == t.path("d/two")).expect("full paths in listing");
    assert_eq!((two.is_dir, two.len), (false, 2));
    assert!(listed.iter().find(|e| e.path == t.path("d/e")).unwrap().is_dir);

    t.store.delete(&t.path("d/one")).await.unwrap();
    assert_eq!(t.store.stat(&t.path("d/one")).await.unwrap(), None);
    t.store.delete(&t.path("d/one")).await.unwrap(); // Ok if absent
    t.store.delete(&t.path("d")).await.unwrap(); // recursive
    assert_eq!(t.store.stat(&t.path("d/e/deep")).await.unwrap(), None);
    assert_eq!(t.store.stat(&t.path("d")).await.unwrap(), None);
}

async fn listing_an_absent_dir_is_empty(t: &TestDir) {
    assert_eq!(t.store.list(&t.path("never/created")).await.unwrap(), Vec::new());
    assert_eq!(t.store.stat(&t.path("never")).await.unwrap(), None);
}

async fn reading_a_missing_file_is_not_found(t: &TestDir) {
    let path = t.path("nope");
    match t.store.read(&path).await {
        Err(StoreError::NotFound { path: p }) => assert_eq!(p, path),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

async fn read_range_reads_part_of_a_file_and_stops_at_its_end(t: &TestDir) {
    let path = t.path("ranged");
    write_file(&*t.store, &path, &[b"0123456789"]).await;
    assert_eq!(t.store.read_range(&path, 2, 3).await.unwrap(), Bytes::from_static(b"234"));
    assert_eq!(t.store.read_range(&path, 7, 100).await.unwrap(), Bytes::from_static(b"789"), "clamped at the end");
    assert_eq!(t.store.read_range(&path, 0, 10).await.unwrap(), Bytes::from_static(b"0123456789"));
    assert_eq!(t.store.read_range(&path, 12, 4).await.unwrap().len(), 0, "nothing past the end");
    match t.store.read_range(&t.path("nope"), 0, 1).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// One `#[tokio::test]` per suite function, per store; `$dir` yields `Option<TestDir>`
/// (`None`: store unavailable and skipping allowed).
macro_rules! conformance_suite {
    ($module:ident, $dir:expr, [$($test:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(dir) = $dir else { return };
                    super::$test(&dir).await;
                    dir.cleanup().await;
                }
            )*
        }
    };
}

conformance_suite!(
    local,
    Some(crate::sink::testing::local_dir()),
    [
        create_write_close_read,
        empty_file_reads_back_empty,
        create_on_existing_is_already_exists,
        rename_publishes_without_overwriting,
        stat_list_delete_mkdirs,
        listing_an_absent_dir_is_empty,
        reading_a_missing_file_is_not_found,
        read_range_reads_part_of_a_file_and_stops_at_its_end,
    ]
);

conformance_suite!(
    hdfs,
    crate::sink::testing::hdfs_dir().await,
    [
        create_write_close_read,
        empty_file_reads_back_empty,
        create_on_existing_is_already_exists,
        rename_publishes_without_overwriting,
        stat_list_delete_mkdirs,
        listing_an_absent_dir_is_empty,
        reading_a_missing_file_is_not_found,
        read_range_reads_part_of_a_file_and_stops_at_its_end,
    ]
);

/// HDFS only: `sink.hdfs.options` reach the hdfs-native client. A logical nameservice
/// `hdfs://labns` means nothing to the client until the options map it onto the lab NameNode;
/// with them a file lands (and is seen through the plain NameNode URL), without them nothing
/// does. Fails under `CI=true` when the lab HDFS is down, like the suite above.
#[tokio::test]
async fn hdfs_options_reach_the_client() {
    use std::time::Duration;
    let Some(dir) = crate::sink::testing::hdfs_dir().await else { return };
    let lab = url::Url::parse(&crate::sink::testing::hdfs_url()).expect("LANDFALL_TEST_HDFS_URL is a URL");
    let address = format!("{}:{}", lab.host_str().expect("a host"), lab.port().unwrap_or(8020));
    let options = [("dfs.ha.namenodes.labns", "nn1"), ("dfs.namenode.rpc-address.labns.nn1", address.as_str())];

    let through_ns = crate::sink::hdfs_with_options("hdfs://labns", None, options)
        .expect("build the client for hdfs://labns")
        .with_timeout(Duration::from_secs(20));
    let path = dir.path("via-nameservice/data.bin");
    write_file(&through_ns, &path, &[b"landed through labns"]).await;
    assert_eq!(dir.store.read(&path).await.unwrap(), Bytes::from_static(b"landed through labns"));

    // The same nameservice without the options: no NameNode to talk to.
    let other = dir.path("without-options/data.bin");
    match crate::sink::hdfs("hdfs://labns", None) {
        Err(e) => assert!(!e.is_transient(), "{e}"),
        Ok(bare) => {
            let bare = bare.with_timeout(Duration::from_secs(10));
            let created = bare.create(&other).await;
            assert!(created.is_err(), "hdfs://labns without options must not resolve");
        }
    }
    assert!(dir.store.stat(&other).await.unwrap().is_none(), "nothing landed without the options");
    dir.cleanup().await;
}
