//! A Kafka client that only asks where partitions end, for partition completion: whether a
//! quiet partition has anything left to land. It joins no group and commits nothing, so it
//! never affects the pipeline's consumer or its rebalances.
//!
//! A partition's end (its high watermark) is not always the offset after its last record: a
//! transactional producer's commit or abort writes a control record after the data, and an
//! aborted transaction leaves records `read_committed` never returns. So when the end is past
//! the committed position, [`KafkaEnds::holds_records`] reads the gap to see whether any of it
//! would land.

use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaSourceConfig;

/// How long one metadata or end-offset request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct KafkaEnds {
    consumer: BaseConsumer,
    /// Reads the gap between a committed position and the end (assigned, never subscribed).
    reader: BaseConsumer,
    topics: Vec<String>,
    brokers: String,
}

impl KafkaEnds {
    /// A client for `cfg`'s brokers with its `options` (security settings apply here too).
    pub fn build(pipeline: &str, cfg: &KafkaSourceConfig) -> Result<KafkaEnds, String> {
        let brokers = cfg.brokers.join(",");
        let mut client = super::kafka::client_config(cfg);
        client.set("client.id", format!("landfall-{pipeline}-completion"));
        client.set_log_level(RDKafkaLogLevel::Warning);
        let create = |client: &rdkafka::ClientConfig| -> Result<BaseConsumer, String> {
            client.create().map_err(|e| {
                format!("cannot create a Kafka client for brokers {brokers}: {e}; check source.kafka.options")
            })
        };
        let consumer = create(&client)?;
        // End of partition is the answer the gap reader waits for; the pipeline's consumer
        // is configured the same otherwise (`read_committed`, as Landfall reads).
        client.set("enable.partition.eof", "true").set("fetch.wait.max.ms", "100");
        let reader = create(&client)?;
        Ok(KafkaEnds { consumer, reader, topics: cfg.topics.clone(), brokers })
    }

    /// Every partition of the pipeline's topics, as (topic, partition). Blocking.
    pub fn partitions(&self) -> Result<Vec<(String, i32)>, String> {
        let mut out = Vec::new();
        for topic in &self.topics {
            let md = self.consumer.fetch_metadata(Some(topic), TIMEOUT).map_err(|e| {
                format!("Kafka at {}: cannot read the partitions of {topic}: {e}; is the broker up?", self.brokers)
            })?;
            for t in md.topics() {
                if let Some(e) = t.error() {
                    // A partition this pass cannot see could hold the watermark: no pass.
                    return Err(format!(
                        "Kafka at {}: the partitions of {topic} are not known ({:?}); is the topic there?",
                        self.brokers, e
                    ));
                }
                out.extend(t.partitions().iter().map(|p| (t.name().to_string(), p.id())));
            }
        }
        Ok(out)
    }

    /// The (low, high) watermarks of `topic`/`partition`: where it starts and ends. Blocking.
    pub fn end(&self, topic: &str, partition: i32) -> Result<(i64, i64), String> {
        self.consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| format!("Kafka at {}: cannot read the end of {topic}[{partition}]: {e}", self.brokers))
    }

    /// Whether `topic[partition]` holds a record the pipeline would land at an offset in
    /// `from..high`. `false` when the gap holds only transaction markers and aborted records:
    /// the reader reaches the end with its position at `high` or beyond, having returned
    /// nothing below it. An open transaction keeps the position below `high`: `true` then, as
    /// its records may still commit. Blocking; at most [`TIMEOUT`].
    pub fn holds_records(&self, topic: &str, partition: i32, from: i64, high: i64) -> Result<bool, String> {
        let fail = |e: &dyn std::fmt::Display| {
            format!("Kafka at {}: cannot read {topic}[{partition}] from offset {from}: {e}", self.brokers)
        };
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(|e| fail(&e))?;
        self.reader.assign(&assignment).map_err(|e| fail(&e))?;
        let deadline = Instant::now() + TIMEOUT;
        let answer = loop {
            match self.reader.poll(Duration::from_millis(200)) {
                Some(Ok(record)) => break Ok(record.offset() < high),
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    let position = self.reader.position().map_err(|e| fail(&e))?;
                    let at = position.find_partition(topic, partition).and_then(|p| p.offset().to_raw());
                    break Ok(at.is_none_or(|at| at < high));
                }
                Some(Err(e)) => break Err(fail(&e)),
                None if Instant::now() >= deadline => break Err(fail(&"no answer within 10 s")),
                None => {}
            }
        };
        let _ = self.reader.unassign();
        answer
    }
}
