//! Where a pipeline reads from: [`SourceConfig`], one variant per source, chosen by key
//! (`source: { kafka: {...} }`), and one file per source with its settings and their offline
//! checks ([`kafka`], [`rabbitmq`]).
//!
//! Inside `config`, the sources are listed only here: the enum, [`check`] and
//! [`SourceConfig::mark_secrets`]. The runtime matches the same enum where a pipeline is
//! started (`pipeline::run`) and where `validate --connect` probes the broker (`daemon`), and
//! each source has its runtime in `src/source/`.

pub mod kafka;
pub mod rabbitmq;

use serde::Deserialize;

pub use kafka::{KafkaSourceConfig, MANAGED_KAFKA_OPTIONS};
pub use rabbitmq::{AuthMechanism, QueueType, RabbitMqSourceConfig};

use super::pipeline::RollConfig;
use super::secret::Redactor;
use super::validate::Findings;

/// The stream a pipeline consumes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    Kafka(KafkaSourceConfig),
    #[serde(rename = "rabbitmq")]
    RabbitMq(RabbitMqSourceConfig),
}

/// Where a partition with no landed data starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    Earliest,
    Latest,
}

/// What a partition does when its committed position is gone from the source (see
/// `on_position_lost` of a Kafka source or a RabbitMQ stream).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnPositionLost {
    /// Stop the partition until a person decides: the default, since either jump lands
    /// something other than what the commit log promised.
    #[default]
    Fail,
    /// Resume at the log's first offset (a recreated topic refilled from its source).
    Earliest,
    /// Resume at the log's end (what the old topic held beyond the new end is given up).
    Latest,
}

impl OnPositionLost {
    /// The setting's spelling, for logs and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            OnPositionLost::Fail => "fail",
            OnPositionLost::Earliest => "earliest",
            OnPositionLost::Latest => "latest",
        }
    }
}

impl SourceConfig {
    /// The broker's name, as logs and the status page say it.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Kafka(_) => "Kafka",
            SourceConfig::RabbitMq(_) => "RabbitMQ",
        }
    }

    /// Marks client option values that came from secret environment variables, so they print
    /// as `***` (sources without free-form options have nothing to mark).
    pub(crate) fn mark_secrets(&mut self, redactor: &Redactor) {
        match self {
            SourceConfig::Kafka(kafka) => kafka.options.mark_secrets(redactor),
            SourceConfig::RabbitMq(_) => {}
        }
    }
}

/// Offline checks of the source section. `roll` is the pipeline's roll section (its defaults
/// if it did not parse): some source limits depend on it; `max_rows_is_default` tells an
/// explicit `roll.max_rows` from the default one.
pub(crate) fn check(source: &SourceConfig, roll: &RollConfig, max_rows_is_default: bool, out: &mut Findings) {
    match source {
        SourceConfig::Kafka(kafka) => kafka::check(kafka, out),
        SourceConfig::RabbitMq(rabbit) => rabbitmq::check(rabbit, roll, max_rows_is_default, out),
    }
}
