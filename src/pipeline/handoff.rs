//! The consumer's end of the writer's channel, bounded in bytes as well as in messages.
//!
//! The channel holds 64 messages, and a chunk of rows is up to 4 MiB
//! ([`CHUNK_BYTES`](super::partitions::CHUNK_BYTES)): while the store is down and the writer
//! waits, 64 chunks of wide rows would wait in it, 256 MiB whatever `roll.max_buffered_bytes`
//! says. So rows take room (their Arrow size, in KiB) from a semaphore sized to their share of
//! the budget before they are sent, and give it back once the writer has appended them: from
//! then on they count in the writer's own budget.

use std::sync::Arc;

use arrow::array::RecordBatch;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::writer::WriterMsg;
use crate::source::StreamId;

/// Room taken by rows on their way to the writer; dropped once they are appended.
pub type Room = OwnedSemaphorePermit;

/// Why a message could not be handed to the writer.
#[derive(Debug, thiserror::Error)]
#[error("the writer task stopped")]
pub struct WriterStopped;

/// Sends to the writer task from the consumer's (blocking) thread.
pub struct ToWriter {
    tx: mpsc::Sender<WriterMsg>,
    room: Arc<Semaphore>,
    /// The semaphore's size: a chunk larger than it waits for all of it.
    capacity_kib: u32,
    handle: Handle,
}

impl ToWriter {
    /// `bytes`: the share of the memory budget for rows sent and not yet appended.
    pub fn new(tx: mpsc::Sender<WriterMsg>, bytes: usize, handle: Handle) -> ToWriter {
        let capacity_kib = bytes.div_ceil(1024).clamp(1, u32::MAX as usize) as u32;
        ToWriter { tx, room: Arc::new(Semaphore::new(capacity_kib as usize)), capacity_kib, handle }
    }

    /// Sends rows for the file at `dir`, once the rows already on their way leave room.
    pub fn append(&self, stream: StreamId, epoch: u64, dir: String, batch: RecordBatch) -> Result<(), WriterStopped> {
        let kib = batch.get_array_memory_size().div_ceil(1024).clamp(1, self.capacity_kib as usize) as u32;
        let room = self.handle.block_on(self.room.clone().acquire_many_owned(kib)).map_err(|_| WriterStopped)?;
        self.send(WriterMsg::Append { stream, epoch, dir, batch, room })
    }

    /// Sends a message (rows go through [`Self::append`]).
    pub fn send(&self, msg: WriterMsg) -> Result<(), WriterStopped> {
        self.tx.blocking_send(msg).map_err(|_| WriterStopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, StringArray};

    fn rows(n: usize, width: usize) -> RecordBatch {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["x".repeat(width); n]));
        RecordBatch::try_from_iter([("s", text)]).unwrap()
    }

    #[test]
    fn rows_wait_for_room_until_the_writer_appended_the_earlier_ones() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let to_writer = Arc::new(ToWriter::new(tx, 1 << 20, runtime.handle().clone()));
        let stream = StreamId::new("q", 0);
        // Two chunks of ~600 KiB: the second waits until the first is appended (dropped).
        to_writer.append(stream.clone(), 1, "d".into(), rows(600, 1024)).unwrap();
        let second = {
            let (to_writer, stream) = (to_writer.clone(), stream.clone());
            std::thread::spawn(move || to_writer.append(stream, 1, "d".into(), rows(600, 1024)))
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!second.is_finished(), "a second chunk went past a full budget");
        let first = runtime.block_on(rx.recv()).unwrap();
        drop(first);
        second.join().unwrap().unwrap();
        assert!(runtime.block_on(rx.recv()).is_some());
    }

    #[test]
    fn a_chunk_larger_than_the_share_still_goes_alone() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let to_writer = ToWriter::new(tx, 64 << 10, runtime.handle().clone());
        to_writer.append(StreamId::new("q", 0), 1, "d".into(), rows(200, 1024)).unwrap();
        assert!(runtime.block_on(rx.recv()).is_some());
    }
}
