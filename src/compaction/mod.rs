//! Compaction of completed partitions (issue 14, item 5): the small files of a complete
//! metastore partition rewritten into a few target-size files in a new generation directory,
//! and the partition's location switched there in one `alter_partition`. The design and its
//! crash-point analysis: `docs/design/compaction.md`.
//!
//! Built so far: the plan of a generation ([`plan`]), its records in the store ([`records`]),
//! the build with its row-count check ([`build`]), the round over one partition that resumes
//! from its records, switches the metastore and cleans after the grace ([`round`]), and the
//! metastore behind it ([`catalog`]). Not built yet, and so not configurable: choosing the
//! partitions a round visits, running rounds from the completer, and the
//! `sink.hive.compaction` settings that turn it on.

pub mod build;
pub mod catalog;
pub mod plan;
pub mod records;
pub mod round;
pub mod task;
#[cfg(test)]
mod tests;
pub mod todo;
