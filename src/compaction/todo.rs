//! The partitions a compaction round visits: one empty file per partition under
//! `<table>/_landfall/compaction/todo/`, created when a partition is marked complete and when
//! late rows are published into a complete one (`docs/design/compaction.md`, "Which partitions
//! a round visits"). One list call per round finds all the work.
//!
//! A round **takes** a partition's todo file before it looks at the partition: it renames it
//! to `<name>.taken-<run>`. A publish whose todo file was taken came before the round's
//! listing of the directory, so no late file is missed; one after it creates a new todo file.
//! The taken file is deleted only when the round is done with the partition, so a round that
//! crashes midway leaves it behind and the next round visits the partition again.

use std::collections::BTreeMap;

use crate::completion::records::create_empty;
use crate::sink::{FileStore, StoreError};

const TAKEN: &str = ".taken-";

fn todo_dir(root: &str) -> String {
    format!("{}/_landfall/compaction/todo", root.trim_end_matches('/'))
}

/// A partition's todo file name: its directory with `%` and `/` escaped, so one level holds
/// every partition and the name reads back exactly.
fn file_name(partition: &str) -> String {
    partition.replace('%', "%25").replace('/', "%2F")
}

/// Records that `partition` (relative to the table) may need a compaction step.
pub async fn add(store: &dyn FileStore, root: &str, partition: &str) -> Result<(), StoreError> {
    create_empty(store, &format!("{}/{}", todo_dir(root), file_name(partition))).await.map(|_| ())
}

/// The partitions with work, each with the taken files earlier rounds left (crashed midway).
pub async fn list(store: &dyn FileStore, root: &str) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
    let mut partitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in store.list(&todo_dir(root)).await? {
        let name = f.path.rsplit('/').next().unwrap_or_default();
        if f.is_dir || name.is_empty() || name.starts_with('.') {
            continue;
        }
        let (escaped, taken) = match name.split_once(TAKEN) {
            Some((escaped, _)) => (escaped, Some(f.path.clone())),
            None => (name, None),
        };
        partitions.entry(crate::partition::unescape(escaped)).or_default().extend(taken);
    }
    Ok(partitions)
}

/// Takes `partition`'s todo file for this run (a rename: a publish after it creates a new
/// one); returns the taken file's path. Absent (only taken files of earlier runs): nothing
/// to take.
pub async fn take(store: &dyn FileStore, root: &str, partition: &str, run: &str) -> Result<String, StoreError> {
    let todo = format!("{}/{}", todo_dir(root), file_name(partition));
    let taken = format!("{todo}{TAKEN}{run}");
    match store.rename(&todo, &taken).await {
        Ok(()) | Err(StoreError::NotFound { .. }) => Ok(taken),
        Err(StoreError::AlreadyExists { .. }) => store.delete(&todo).await.map(|()| taken),
        Err(e) => Err(e),
    }
}

/// Done with a partition: deletes its taken files (this run's and those of rounds that
/// crashed). Absent files are fine.
pub async fn done(store: &dyn FileStore, taken: &[String]) -> Result<(), StoreError> {
    for path in taken {
        store.delete(path).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::MemStore;

    #[tokio::test]
    async fn partitions_read_back_exactly_once_each_until_done() {
        let store = MemStore::new();
        let odd = "dt=2026-11-25/shop=a%2Fb%25c"; // Hive-escaped values keep their escapes
        for p in ["dt=2026-11-25/shop=x", odd, "dt=2026-11-25/shop=x"] {
            add(&store, "/t/", p).await.unwrap();
        }
        let listed = list(&store, "/t").await.unwrap();
        assert_eq!(listed.keys().collect::<Vec<_>>(), [odd, "dt=2026-11-25/shop=x"]);
        let taken = take(&store, "/t", odd, "r1").await.unwrap();
        assert_eq!(list(&store, "/t").await.unwrap()[odd], std::slice::from_ref(&taken), "a taken file is still work");
        add(&store, "/t", odd).await.unwrap(); // a late publish while the round looks
        done(&store, &[taken]).await.unwrap();
        assert_eq!(list(&store, "/t").await.unwrap()[odd], Vec::<String>::new(), "the new todo file stays");
        let taken = take(&store, "/t", odd, "r1").await.unwrap();
        done(&store, &[taken]).await.unwrap();
        assert!(!list(&store, "/t").await.unwrap().contains_key(odd));
    }

    #[tokio::test]
    async fn a_round_that_crashed_leaves_its_taken_file_for_the_next() {
        let store = MemStore::new();
        add(&store, "/t", "dt=x").await.unwrap();
        let crashed = take(&store, "/t", "dt=x", "dead").await.unwrap();
        let listed = list(&store, "/t").await.unwrap();
        assert_eq!(listed["dt=x"], std::slice::from_ref(&crashed), "the next round sees the crashed round's work");
        let ours = take(&store, "/t", "dt=x", "next").await.unwrap(); // nothing plain to take
        done(&store, &[listed["dt=x"].clone(), vec![ours]].concat()).await.unwrap();
        assert!(list(&store, "/t").await.unwrap().is_empty());
    }
}
