//! Landfall lands Kafka and RabbitMQ streams in a Hadoop data lake: it consumes messages,
//! decodes JSON into Apache Arrow with a declared schema, writes Spark-correct Parquet and
//! publishes the files atomically into Hive-style partitions on HDFS (or a local directory),
//! exactly once (queues: acknowledged only after publish, redeliveries dropped by `message_id`).
//!
//! The module tree follows the data, one way:
//!
//! ```text
//! source/ (kafka, rabbitmq: the Source seam)  →  decode (JSON → Arrow rows, per message)
//!   →  partition (Hive path)  →  pipeline/driver (per-stream buffers, roll policy, caps)
//!   →  parquet (Spark-correct writer)  →  sink/ (hdfs, local: the FileStore seam)
//!   →  commit (manifest = commit point and fence, publish by rename)   ← recovery reads it
//!   →  metastore (Hive tables and partitions for what was published)
//!   →  completion (`_SUCCESS` in partitions whose time bucket the watermark passed)
//! ```
//!
//! - [`source`]: the [`source::Source`] trait and its three implementations (Kafka, RabbitMQ
//!   queue, RabbitMQ stream); two position models, broker offsets and a landing sequence.
//! - [`config`]: pipeline YAML and daemon settings, checked in three layers (parse, semantic,
//!   live probe), every problem reported with `file:line:column` and its key path.
//! - [`schema`]: the declared column types and their Arrow/Parquet mapping.
//! - [`quarantine`]: where messages that cannot become rows go (`<table>/_rejected/`).
//! - [`pipeline`] ties one pipeline together: the driver on a consumer thread, the writer task.
//! - [`daemon`] runs many pipelines, handles signals and restarts failed pipelines.
//! - [`metastore`]: a Hive Metastore client (Thrift) that creates external Parquet tables and
//!   adds partitions idempotently; with `sink.hive`, its registrar adds each partition a commit
//!   published into, off the commit path (`docs/hive.md`).
//! - [`completion`]: with `partition.completion`, an event-time watermark over every source
//!   partition's commit log decides which time buckets are complete and marks their
//!   directories (`docs/design/partition-completion.md`).
//! - [`retry`] and [`shutdown`]: the one backoff policy and the awaitable stop signal.
//!
//! `docs/exactly-once.md` explains the commit protocol and what happens at each crash point;
//! `docs/rabbitmq.md` the queue guarantees; `docs/adding-a-source.md` the Source seam;
//! `docs/hive.md` table registration.

pub mod commit;
pub mod compaction;
pub mod completion;
pub mod config;
pub mod crash;
pub mod daemon;
pub mod decode;
pub mod metastore;
pub mod observe;
pub mod parquet;
pub mod partition;
pub mod pipeline;
pub mod quarantine;
pub mod retry;
pub mod schema;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod suggest;
pub mod systemd;
