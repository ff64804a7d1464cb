//! The completion frontier, durable in the table: `_landfall/completion/<F>.decided` (the
//! decision that every bucket ending at or before `F` is complete), then `<F>.marked` once
//! every marker of those buckets exists, then `<F>.hive` once their metastore partitions say so.
//! Every record is an empty file created if absent, so two completers (a rebalance, a zombie)
//! write the same thing and a crash between records is re-driven by the next pass.

use std::collections::BTreeSet;

use crate::commit::paths::STATE_DIR;
use crate::sink::{FileStore, StoreError};

/// The three steps of one frontier, in the order they are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Decided,
    Marked,
    Hive,
}

impl Step {
    fn suffix(self) -> &'static str {
        match self {
            Step::Decided => "decided",
            Step::Marked => "marked",
            Step::Hive => "hive",
        }
    }
}

/// The records found in one listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    pub decided: BTreeSet<i64>,
    pub marked: BTreeSet<i64>,
    pub hive: BTreeSet<i64>,
}

impl Records {
    /// The frontier: the newest decision, `None` on a table never completed.
    pub fn frontier(&self) -> Option<i64> {
        self.decided.last().copied()
    }

    /// The decision before `f` (the start of the range `f` decided), `None` for the first.
    pub fn before(&self, f: i64) -> Option<i64> {
        self.decided.range(..f).next_back().copied()
    }

    /// Decisions whose markers may not all exist yet (a crash between records).
    pub fn unmarked(&self) -> Vec<i64> {
        self.decided.difference(&self.marked).copied().collect()
    }

    /// Marked decisions whose metastore partitions may not all say so yet.
    pub fn without_hive(&self) -> Vec<i64> {
        self.marked.difference(&self.hive).copied().collect()
    }

    /// Records that may go: all but the newest three decisions, keeping any decision still to
    /// re-drive and the one before the oldest kept (its range's start).
    pub fn prunable(&self, with_hive: bool) -> Vec<(i64, Step)> {
        let pending: BTreeSet<i64> =
            self.unmarked().into_iter().chain(if with_hive { self.without_hive() } else { Vec::new() }).collect();
        let mut keep: BTreeSet<i64> = self.decided.iter().rev().take(3).copied().collect();
        keep.extend(&pending);
        if let Some(oldest) = keep.first().copied() {
            keep.extend(self.before(oldest));
        }
        let mut out = Vec::new();
        for (set, step) in [(&self.decided, Step::Decided), (&self.marked, Step::Marked), (&self.hive, Step::Hive)] {
            out.extend(set.iter().filter(|f| !keep.contains(f)).map(|f| (*f, step)));
        }
        out
    }
}

/// `<table>/_landfall/completion`.
pub fn dir(root: &str) -> String {
    format!("{root}/{STATE_DIR}/completion")
}

/// The record of `step` for the frontier `f` (µs, zero-padded so that names sort).
pub fn path(root: &str, f: i64, step: Step) -> String {
    format!("{}/{f:020}.{}", dir(root), step.suffix())
}

/// Lists the records (other names are ignored).
pub async fn read(store: &dyn FileStore, root: &str) -> Result<Records, StoreError> {
    let mut out = Records::default();
    for entry in store.list(&dir(root)).await? {
        let name = crate::commit::paths::file_name(&entry.path);
        let Some((number, suffix)) = name.split_once('.') else { continue };
        let Ok(f) = number.parse::<i64>() else { continue };
        match suffix {
            "decided" => out.decided.insert(f),
            "marked" => out.marked.insert(f),
            "hive" => out.hive.insert(f),
            _ => continue,
        };
    }
    Ok(out)
}

/// Creates the empty file `path` unless it exists: `Ok(true)` if this call created it. Never
/// opens an existing file for writing, so a marker (or a record) is never rewritten.
pub async fn create_empty(store: &dyn FileStore, path: &str) -> Result<bool, StoreError> {
    match store.create(path).await {
        Ok(w) => {
            w.close().await?;
            Ok(true)
        }
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::MemStore;

    #[tokio::test]
    async fn records_round_trip_through_their_names_and_are_created_once() {
        let store = MemStore::new();
        for (f, step) in [(3_600_000_000, Step::Decided), (7_200_000_000, Step::Decided), (3_600_000_000, Step::Marked)]
        {
            assert!(create_empty(&store, &path("/t", f, step)).await.unwrap());
        }
        assert!(!create_empty(&store, &path("/t", 3_600_000_000, Step::Marked)).await.unwrap(), "exists: untouched");
        store.put("/t/_landfall/completion/notes.txt", b"x");
        let r = read(&store, "/t").await.unwrap();
        assert_eq!(r.frontier(), Some(7_200_000_000));
        assert_eq!(r.before(7_200_000_000), Some(3_600_000_000));
        assert_eq!(r.before(3_600_000_000), None);
        assert_eq!(r.unmarked(), [7_200_000_000]);
        assert_eq!(r.without_hive(), [3_600_000_000]);
        assert_eq!(path("/t", 5, Step::Hive), "/t/_landfall/completion/00000000000000000005.hive");
    }

    #[test]
    fn pruning_keeps_the_newest_three_what_is_pending_and_the_start_of_its_range() {
        let mut r = Records::default();
        r.decided.extend([1, 2, 3, 4, 5, 6]);
        r.marked.extend([1, 2, 3, 4, 5, 6]);
        r.hive.extend([1, 3, 4, 5, 6]);
        let without_hive = r.prunable(false);
        assert_eq!(
            without_hive,
            [(1, Step::Decided), (2, Step::Decided), (1, Step::Marked), (2, Step::Marked), (1, Step::Hive)],
            "the newest three and the start of the oldest one's range stay"
        );
        let gone = r.prunable(true);
        assert_eq!(
            gone,
            [(3, Step::Decided), (3, Step::Marked), (3, Step::Hive)],
            "2 waits for its metastore step and 1 is the start of its range"
        );
    }
}
