//! A Parquet input read from the store a part at a time: its footer, then one row group's
//! column chunks. A build then holds one row group of one input, not whole files: a later
//! generation's inputs are the previous one's files, each about `target_file_size`.

use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use super::build::BuildError;
use crate::sink::FileStore;

/// The bytes `start..start + bytes.len()` of a file `file_len` long, which the Parquet reader
/// addresses as the whole file: it asks only for what lies inside (the footer, or the column
/// chunks of the row group read), and anything else is an error naming the range.
pub struct Window {
    start: u64,
    bytes: Bytes,
    file_len: u64,
}

impl Length for Window {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for Window {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let from = self.offset(start, 0)?;
        Ok(self.bytes.slice(from..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let from = self.offset(start, length)?;
        Ok(self.bytes.slice(from..from + length))
    }
}

impl Window {
    fn offset(&self, start: u64, length: usize) -> parquet::errors::Result<usize> {
        start
            .checked_sub(self.start)
            .map(|from| from as usize)
            .filter(|from| from + length <= self.bytes.len())
            .ok_or_else(|| {
                ParquetError::General(format!(
                    "bytes {start}..{} lie outside the part read ({}..{})",
                    start + length as u64,
                    self.start,
                    self.start + self.bytes.len() as u64
                ))
            })
    }
}

/// The footer of the Parquet file at `path`, `len` bytes long: two ranged reads (the last 8
/// bytes give the footer's length).
pub async fn footer(store: &dyn FileStore, path: &str, len: u64) -> Result<ArrowReaderMetadata, BuildError> {
    let read_err = |detail: String| BuildError::Read { path: path.to_string(), detail };
    if len < 12 {
        return Err(read_err(format!("{len} bytes is too short for a Parquet file")));
    }
    let tail = store.read_range(path, len - 8, 8).await?;
    if tail.len() != 8 || &tail[4..] != b"PAR1" {
        return Err(read_err("it does not end with Parquet's magic `PAR1`: not a Parquet file".into()));
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len + 12 > len {
        return Err(read_err(format!("its footer claims {footer_len} bytes of a {len}-byte file")));
    }
    let start = len - 8 - footer_len;
    let bytes = store.read_range(path, start, footer_len + 8).await?;
    let window = Window { start, bytes, file_len: len };
    ArrowReaderMetadata::load(&window, ArrowReaderOptions::default()).map_err(|e| read_err(e.to_string()))
}

/// The column chunks of row group `index` of the file at `path` (`len` bytes), in one read.
pub async fn row_group(
    store: &dyn FileStore,
    path: &str,
    footer: &ArrowReaderMetadata,
    index: usize,
    len: u64,
) -> Result<Window, BuildError> {
    let (lo, hi) = footer.metadata().row_group(index).columns().iter().fold((u64::MAX, 0), |(lo, hi), column| {
        let (start, length) = column.byte_range();
        (lo.min(start), hi.max(start + length))
    });
    if lo >= hi {
        return Ok(Window { start: 0, bytes: Bytes::new(), file_len: len });
    }
    let bytes = store.read_range(path, lo, hi - lo).await?;
    Ok(Window { start: lo, bytes, file_len: len })
}
