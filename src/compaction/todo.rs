//! The partitions a compaction round visits: one empty file per partition under
//! `<table>/_landfall/compaction/todo/`, created when a partition is marked complete and when
//! late rows are published into a complete one, and deleted by the round *before* it looks at
//! the partition (`docs/design/compaction.md`, "Which partitions a round visits"): a publish
//! whose todo file the round deleted came before the round's listing of the directory, so no
//! late file is missed, and one list call per round finds all the work.

use crate::completion::records::create_empty;
use crate::sink::{FileStore, StoreError};

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

/// Forgets `partition`'s todo file; call it before looking at the partition.
pub async fn take(store: &dyn FileStore, root: &str, partition: &str) -> Result<(), StoreError> {
    store.delete(&format!("{}/{}", todo_dir(root), file_name(partition))).await
}

/// Every partition with a todo file, sorted.
pub async fn list(store: &dyn FileStore, root: &str) -> Result<Vec<String>, StoreError> {
    let mut partitions: Vec<String> = store
        .list(&todo_dir(root))
        .await?
        .into_iter()
        .filter(|f| !f.is_dir)
        .filter_map(|f| f.path.rsplit('/').next().map(crate::partition::unescape))
        .filter(|p| !p.starts_with('.'))
        .collect();
    partitions.sort();
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::MemStore;

    #[tokio::test]
    async fn partitions_read_back_exactly_once_each_until_taken() {
        let store = MemStore::new();
        let odd = "dt=2026-11-25/shop=a%2Fb%25c"; // Hive-escaped values keep their escapes
        for p in ["dt=2026-11-25/shop=x", odd, "dt=2026-11-25/shop=x"] {
            add(&store, "/t/", p).await.unwrap();
        }
        assert_eq!(list(&store, "/t").await.unwrap(), [odd, "dt=2026-11-25/shop=x"]);
        take(&store, "/t", odd).await.unwrap();
        assert_eq!(list(&store, "/t").await.unwrap(), ["dt=2026-11-25/shop=x"]);
        take(&store, "/t", odd).await.unwrap(); // absent: fine
    }
}
