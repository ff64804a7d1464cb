//! Compaction of completed partitions (issue 14, item 5): the small files of a complete
//! metastore partition rewritten into a few target-size files in a new generation directory,
//! and the partition's location switched there in one `alter_partition`. The design and its
//! crash-point analysis: `docs/design/compaction.md`.
//!
//! The parts: the plan of a generation ([`plan`]), its records in the store ([`records`]), the
//! build with its row-count check ([`build`]), reading its inputs a row group at a time
//! (`ranged`), the round that resumes each partition from its records, switches the metastore
//! and cleans after the grace ([`round`]), the partitions a round visits ([`todo`]), the
//! metastore behind it ([`catalog`]), and the task running rounds on the completer ([`task`]).

pub mod build;
pub mod catalog;
pub mod plan;
mod ranged;
pub mod records;
pub mod round;
pub mod task;
#[cfg(test)]
mod tests;
pub mod todo;
