//! Sources: where messages come from. Kafka today; RabbitMQ joins with the same shape
//! (config struct, `build`, a runtime type that receives, reports positions and acknowledges).

pub mod kafka;
pub mod rabbitmq;

/// A Kafka partition, the unit of ordering, resume positions and commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}
