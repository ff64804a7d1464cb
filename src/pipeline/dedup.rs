//! The deduplication window of a queue source: the `message_id`s of the newest commits, as
//! read back from the commit log when a session starts. A redelivered message whose id is in
//! it was published before the crash (or connection loss) that lost its acknowledgement.
//!
//! Ids are kept as 64-bit hashes: 8 bytes per id instead of a string, so a 100,000-id window
//! costs about 2 MB. A hash collision would drop a redelivered message that was never
//! published; with at most `window` ids the chance per lookup is below `window / 2^64`
//! (≈ 5·10⁻¹⁵ at 100,000), and only redelivered messages are looked up.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

#[derive(Debug, Default)]
pub struct DedupWindow {
    ids: HashSet<u64>,
}

/// SipHash with fixed keys: stable for the process's life, which is all the window needs
/// (manifests store the ids themselves, not hashes).
fn hash(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl DedupWindow {
    /// A window holding `ids` (from [`crate::commit::CommitLog::take_recovered_ids`]).
    pub fn from_ids<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> DedupWindow {
        DedupWindow { ids: ids.into_iter().map(|id| hash(id.as_ref())).collect() }
    }

    /// Whether `id` was published by a commit in the window.
    pub fn contains(&self, id: &str) -> bool {
        !self.ids.is_empty() && self.ids.contains(&hash(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_ids_are_found() {
        let w = DedupWindow::from_ids(["order-1", "order-2"]);
        assert!(w.contains("order-1") && w.contains("order-2"));
        assert!(!w.contains("order-3"));
        assert!(!DedupWindow::default().contains("order-1"));
    }
}
