//! JSON message → Arrow, one message at a time.
//!
//! The hot path of Landfall. A broker hands us one borrowed payload per message;
//! [`RowParser::parse`] checks it (UTF-8, size, nesting, JSON syntax, types against the declared
//! schema) and leaves the values in a reused [`ParsedRow`]; partitioning reads the row
//! ([`ParsedRow::value`]); [`BatchBuilder::append`] copies it into Arrow columns.
//!
//! Why not arrow-json's `Decoder`: one bad record fails its whole batch and leaves the decoder
//! unusable afterwards (tried in session 1). Here every message succeeds or fails on its own, with a
//! [`DecodeError`] whose `reason()` code the quarantine records, so a poison message never
//! costs its neighbours.
//!
//! Why a hand-written scanner rather than serde: decimals must be read exactly from their text
//! (serde_json would need `arbitrary_precision`, which changes it crate-wide), errors need
//! field paths and value excerpts, and writing each value straight into its schema slot avoids
//! serde's generic machinery. Steady state allocates nothing: the row, its text buffer and the
//! list stack keep their capacity from message to message.

mod builder;
mod convert;
mod error;
mod lexer;
mod parser;
mod plan;
mod row;

pub use builder::BatchBuilder;
pub use error::DecodeError;
pub use parser::{RowParser, DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_BYTES};
pub use row::{ParsedRow, PartitionValue};

#[cfg(test)]
mod differential_tests;
#[cfg(test)]
mod tests;
