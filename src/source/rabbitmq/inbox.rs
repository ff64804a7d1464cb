//! Deliveries the broker pushed and the driver has not decoded yet, bounded in bytes.
//!
//! The broker sends up to `prefetch` unacknowledged deliveries per consumer, and a queue's
//! deliveries stay unacknowledged until their commit is published. lapin reads them off the
//! socket into an unbounded buffer whatever the driver does, so while the store is down (the
//! writer waits, the driver waits for the writer) two consumers × 65,535 deliveries of 64 KiB
//! would be 8 GiB in the process. A smaller prefetch derived from message sizes would bound
//! that too, but the unacknowledged window also covers everything written and not yet
//! published, so it would cap throughput when nothing is wrong.
//!
//! Instead a task (the pump) takes every delivery from lapin as it arrives, counts its payload
//! bytes and hands it to the driver through an unbounded channel of its own; the bytes count
//! until the driver has decoded the delivery. Once they exceed the limit the pump cancels the
//! consumers (`basic.cancel`): the broker stops sending, and what it delivered stays
//! unacknowledged on the channel, acknowledged after publish as usual. Once the driver has
//! decoded enough to bring them to half the limit, and every delivery sent before the cancel
//! has arrived (lapin ends a consumer's stream at `cancel-ok`), the pump consumes again (a
//! stream from the offset after its last delivery). The bytes held thus exceed the limit by at
//! most what the broker sent before it read the cancel.
//!
//! Delivery tags are per channel and consecutive, and the deliveries of the two consumers are
//! merged back into tag order here ([`Merge`]), so an acknowledgement with `multiple=true`
//! never covers a delivery not yet handed out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use tokio::sync::{mpsc, Notify};

use super::session::stream_offset;

/// What the pump hands the driver: a delivery, or why the session is over.
type Item = Result<Delivery, String>;

/// Bytes held between the pump and the driver, shared by both.
struct Held {
    bytes: AtomicUsize,
    /// Cancelled consumers are resumed once the bytes held are at or below this.
    low: usize,
    /// Signalled when the driver takes the bytes held down to `low`.
    drained: Notify,
}

/// The driver's end: deliveries in tag order. Their bytes count until the driver says it has
/// decoded them ([`Inbox::done`]), so a batch in the driver's hands counts too.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Item>,
    held: Arc<Held>,
    pump: tokio::task::JoinHandle<()>,
}

impl Inbox {
    /// The next delivery (`None`: the pump stopped, which it only does after saying why).
    pub async fn next(&mut self) -> Option<Item> {
        self.rx.recv().await
    }

    /// The driver is done with deliveries of `bytes` payload bytes (decoded or dropped).
    pub fn done(&self, bytes: usize) {
        let before = self.held.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if before > self.held.low && before - bytes <= self.held.low {
            self.held.drained.notify_one();
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// How the pump (re)starts consuming.
pub struct ConsumeSpec {
    pub pipeline: String,
    pub queue: String,
    /// Consumers on the channel: two on a queue, one on a stream.
    pub count: usize,
    /// `x-stream-offset` and the like for the first consume.
    pub args: FieldTable,
    /// A stream resumes at the offset after its last delivery.
    pub stream: bool,
    /// Bytes the inbox may hold before the consumers are cancelled.
    pub limit: usize,
}

/// Starts consuming and the pump; returns the driver's end.
pub async fn start(channel: Channel, spec: ConsumeSpec) -> Result<Inbox, lapin::Error> {
    let consumers = consume(&channel, &spec, &spec.args, 0).await?;
    let held = Arc::new(Held { bytes: AtomicUsize::new(0), low: spec.limit / 2, drained: Notify::new() });
    let (tx, rx) = mpsc::unbounded_channel();
    let pump = Pump { channel, spec, held: held.clone(), tx, merge: Merge::new(consumers, 1), last_offset: None };
    let pump = tokio::spawn(pump.run());
    Ok(Inbox { rx, held, pump })
}

async fn consume(
    channel: &Channel,
    spec: &ConsumeSpec,
    args: &FieldTable,
    generation: u32,
) -> Result<Vec<Consumer>, lapin::Error> {
    let mut consumers = Vec::with_capacity(spec.count);
    for n in 0..spec.count {
        let tag = match generation {
            0 => format!("landfall-{}-{n}", spec.pipeline),
            g => format!("landfall-{}-{n}.{g}", spec.pipeline),
        };
        let consumer =
            channel.basic_consume(spec.queue.as_str().into(), tag.into(), BasicConsumeOptions::default(), args.clone());
        consumers.push(consumer.await?);
    }
    Ok(consumers)
}

struct Pump {
    channel: Channel,
    spec: ConsumeSpec,
    held: Arc<Held>,
    tx: mpsc::UnboundedSender<Item>,
    merge: Merge,
    /// A stream's last delivered offset, where it resumes.
    last_offset: Option<i64>,
}

impl Pump {
    async fn run(mut self) {
        let mut generation = 0;
        let mut cancelled = false;
        loop {
            let next = self.merge.next().await;
            let d = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => return self.fail(e),
                None if cancelled => {
                    // Every delivery sent before the cancel is handed out: wait for room.
                    loop {
                        let drained = self.held.drained.notified();
                        if self.held.bytes.load(Ordering::Acquire) <= self.held.low {
                            break;
                        }
                        drained.await;
                    }
                    generation += 1;
                    match self.resume(generation).await {
                        Ok(()) => cancelled = false,
                        Err(e) => return self.fail(format!("consume again after a pause: {e}")),
                    }
                    continue;
                }
                None => return self.fail("the consumer was cancelled by the broker (queue deleted?)".into()),
            };
            if self.spec.stream {
                self.last_offset = stream_offset(&d.properties).or(self.last_offset);
            }
            let bytes = d.data.len();
            let held = self.held.bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
            if self.tx.send(Ok(d)).is_err() {
                return; // the session is gone
            }
            if !cancelled && held > self.spec.limit {
                if let Err(e) = self.pause(held).await {
                    return self.fail(format!("pause the consumers: {e}"));
                }
                cancelled = true;
            }
        }
    }

    /// Cancels every consumer; their streams end once the broker confirms.
    async fn pause(&mut self, held: usize) -> Result<(), lapin::Error> {
        tracing::debug!(
            pipeline = %self.spec.pipeline, queue = %self.spec.queue, held_bytes = held, limit = self.spec.limit,
            "deliveries not yet decoded fill their budget; cancelling the consumers until half of it is free"
        );
        for tag in self.merge.tags() {
            self.channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await?;
        }
        Ok(())
    }

    async fn resume(&mut self, generation: u32) -> Result<(), lapin::Error> {
        let mut args = self.spec.args.clone();
        if let Some(offset) = self.last_offset {
            args.insert("x-stream-offset".into(), AMQPValue::LongLongInt(offset + 1));
        }
        let consumers = consume(&self.channel, &self.spec, &args, generation).await?;
        tracing::debug!(pipeline = %self.spec.pipeline, queue = %self.spec.queue, generation, "consuming again");
        self.merge = Merge::new(consumers, self.merge.next_tag);
        Ok(())
    }

    fn fail(self, message: String) {
        let _ = self.tx.send(Err(message));
    }
}

/// The consumers of one channel, their deliveries merged back into delivery-tag order.
struct Merge {
    consumers: Vec<Option<Consumer>>,
    /// Per consumer, a delivery taken from it but not handed out yet (its tag is not next).
    heads: Vec<Option<Delivery>>,
    /// The delivery tag to hand out next: tags are per channel and consecutive from 1.
    next_tag: u64,
}

impl Merge {
    fn new(consumers: Vec<Consumer>, next_tag: u64) -> Merge {
        Merge {
            heads: consumers.iter().map(|_| None).collect(),
            consumers: consumers.into_iter().map(Some).collect(),
            next_tag,
        }
    }

    fn tags(&self) -> Vec<String> {
        self.consumers.iter().flatten().map(|c| c.tag().to_string()).collect()
    }

    /// The next delivery in tag order; `None` once every consumer's stream has ended (it was
    /// cancelled) and nothing is left. Cancel-safe: a delivery taken from a consumer waits in
    /// `heads` until its turn.
    async fn next(&mut self) -> Option<Result<Delivery, String>> {
        loop {
            let expected = self.next_tag;
            if let Some(head) = self.heads.iter_mut().find(|h| h.as_ref().is_some_and(|d| d.delivery_tag == expected)) {
                self.next_tag += 1;
                return head.take().map(Ok);
            }
            let waiting: Vec<_> = self
                .consumers
                .iter_mut()
                .zip(self.heads.iter())
                .enumerate()
                .filter_map(|(i, (consumer, head))| Some((i, consumer.as_mut()?, head)))
                .filter(|(_, _, head)| head.is_none())
                .map(|(i, consumer, _)| Box::pin(async move { (i, consumer.next().await) }))
                .collect();
            if waiting.is_empty() {
                let tags: Vec<u64> = self.heads.iter().flatten().map(|d| d.delivery_tag).collect();
                if tags.is_empty() {
                    return None;
                }
                return Some(Err(format!("delivery tag {expected} never arrived (consumers hold {tags:?})")));
            }
            let ((i, delivery), _, _) = futures::future::select_all(waiting).await;
            match delivery {
                None => self.consumers[i] = None,
                Some(Err(e)) => return Some(Err(e.to_string())),
                Some(Ok(d)) => self.heads[i] = Some(d),
            }
        }
    }
}
