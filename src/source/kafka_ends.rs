//! A Kafka client that only asks where partitions end, for partition completion: whether a
//! quiet partition has anything left to land (its end equals the committed position). It joins
//! no group and reads nothing, so it never affects the pipeline's consumer or its rebalances.

use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::KafkaSourceConfig;

/// How long one metadata or end-offset request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct KafkaEnds {
    consumer: BaseConsumer,
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
        let consumer: BaseConsumer = client.create().map_err(|e| {
            format!("cannot create a Kafka client for brokers {brokers}: {e}; check source.kafka.options")
        })?;
        Ok(KafkaEnds { consumer, topics: cfg.topics.clone(), brokers })
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
}
