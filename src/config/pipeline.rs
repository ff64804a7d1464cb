//! One pipeline file: what to read, how to decode it, how to partition, roll and encode files,
//! and where to land them. Every field's `///` comment is its user documentation.

use serde::Deserialize;

use super::sink::SinkConfig;
use super::source::SourceConfig;
use super::units::{ByteSize, HumanDuration};
use crate::schema::FieldSpec;

/// A pipeline as written in `pipelines/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Pipeline name, `[a-z0-9_-]+`: it appears in file names, metric labels and logs.
    pub name: String,
    /// The stream to consume, chosen by key: `kafka` or `rabbitmq`.
    pub source: SourceConfig,
    /// How message payloads become rows.
    pub decode: DecodeConfig,
    /// The Hive-style directory each row lands in.
    pub partition: PartitionConfig,
    /// When an open file is closed and published.
    #[serde(default)]
    pub roll: RollConfig,
    /// How Parquet files are encoded.
    #[serde(default)]
    pub parquet: ParquetConfig,
    /// Where files are published, chosen by key: `hdfs` or `local`.
    pub sink: SinkConfig,
    /// Messages that cannot become rows, kept under `<table>/_rejected/dt=<day>/`.
    #[serde(default)]
    pub quarantine: QuarantineConfig,
    /// The hidden area (`<table>/_landfall/staging/`) files are written in before publishing.
    #[serde(default)]
    pub staging: StagingConfig,
}

/// Staged files: written, not yet published.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingConfig {
    /// How old (on the store's clock) a staged file no commit references must be before orphan
    /// cleanup deletes it (default `1h`). A commit refuses staged files older than half of it
    /// and stops retrying there, so it must exceed twice `roll.max_age` plus the longest store
    /// outage a commit should ride out. Every instance writing one table must use the same
    /// value: a cleaner with a shorter one may delete files another instance is committing.
    #[serde(default = "default_staging_grace")]
    pub grace: HumanDuration,
}

impl Default for StagingConfig {
    fn default() -> Self {
        StagingConfig { grace: default_staging_grace() }
    }
}

fn default_staging_grace() -> HumanDuration {
    HumanDuration::from_secs(crate::commit::default_grace().as_secs())
}

/// The quarantine: raw payloads of rejected messages, which can hold personal data.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QuarantineConfig {
    /// Permission bits of quarantine files, in octal (`"0640"`, the default: the
    /// owner writes, its group reads, others nothing). The directories below `_rejected/` get
    /// the same bits plus `x` wherever a read bit is set (`0750`). Table files keep the
    /// store's defaults (Spark jobs of other users read them).
    #[serde(default)]
    pub permissions: FileMode,
}

/// Unix permission bits written as a quoted octal string, e.g. `"0640"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl Default for FileMode {
    fn default() -> Self {
        FileMode(0o640)
    }
}

impl FileMode {
    /// The bits for a directory holding such files: `x` added wherever `r` is set.
    pub fn for_directory(self) -> u32 {
        self.0 | ((self.0 & 0o444) >> 2)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Octal;
        impl serde::de::Visitor<'_> for Octal {
            type Value = FileMode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"permission bits as a quoted octal string, e.g. "0640""#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileMode, E> {
                let digits = v.strip_prefix("0o").unwrap_or(v);
                match u32::from_str_radix(digits, 8) {
                    Ok(bits) if (3..=4).contains(&digits.len()) && bits <= 0o777 => Ok(FileMode(bits)),
                    _ => Err(E::custom(format!(
                        r#"`{v}` is not permission bits: write three octal digits, optionally after a 0, quoted, e.g. "0640""#
                    ))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileMode, E> {
                Err(E::custom(format!(
                    r#"{v} is a YAML number, which loses the octal meaning: quote the permission bits, e.g. "0640""#
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileMode, E> {
                self.visit_u64(v.unsigned_abs())
            }
        }
        d.deserialize_any(Octal)
    }
}

impl PipelineConfig {
    /// The declared columns, in order.
    pub fn schema(&self) -> &[FieldSpec] {
        match &self.decode {
            DecodeConfig::Json(json) => &json.schema,
        }
    }

    /// The `roll:` section a pipeline gets when it has none.
    pub fn default_roll() -> RollConfig {
        RollConfig::default()
    }

    /// The whole config as multi-line text safe to log or print: passwords, secret options,
    /// URI userinfo and values from secret-named environment variables show as `***`.
    pub fn redacted(&self) -> String {
        format!("{self:#?}")
    }
}

/// The payload format, chosen by key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DecodeConfig {
    Json(JsonDecodeConfig),
}

/// One JSON object per message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonDecodeConfig {
    /// The columns to extract, in file order. JSON keys not listed are ignored unless `strict`.
    pub schema: Vec<FieldSpec>,
    /// Send messages with JSON keys not in `schema` to quarantine instead of dropping those
    /// keys: use it when an upstream change must not go unnoticed.
    #[serde(default)]
    pub strict: bool,
}

/// Hive-style partition directories.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// Directory template below the sink path, e.g. `dt={ts:%Y-%m-%d}/hour={ts:%H}`:
    /// `{field}` inserts a value, `{field:strftime}` formats a timestamp field,
    /// `{_ingest:strftime}` formats the arrival time.
    pub path: String,
    /// Time zone for strftime formatting (IANA name such as `Europe/Berlin`); timestamps are
    /// still stored in UTC.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Marks each directory complete once its time bucket is over and every source partition
    /// has published past its end plus `allowed_lateness`: an empty marker file that Oozie,
    /// Airflow or a downstream job can wait for. The bucket is the finest unit the template's
    /// time field prints (`dt={ts:%Y-%m-%d}/hour={ts:%H}`: hours in `timezone`); the template
    /// must name one interval per directory. Absent (the default): no markers.
    #[serde(default)]
    pub completion: Option<CompletionConfig>,
}

/// UTC: partition boundaries then match Spark's `spark.sql.session.timeZone=UTC` setups.
fn default_timezone() -> String {
    "UTC".into()
}

/// Partition completion (`partition.completion`): when a directory gets its marker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionConfig {
    /// How far an event may trail the newest published event of its source partition and still
    /// be on time (default `10m`). A bucket completes once every source partition has published
    /// events this far past its end, so this is the wait after a bucket ends, and it must cover
    /// producers' retries, batching and clock skew. Later events still land, in a new file of
    /// the completed directory, and are counted as late.
    #[serde(default = "default_allowed_lateness")]
    pub allowed_lateness: HumanDuration,
    /// How long a source partition may go without a commit, with nothing left to read, before
    /// it stops holding completion back (default `5m`); its last event time then counts as the
    /// store's clock. Must exceed `roll.max_age` (a busy partition commits at least that often),
    /// preferably twice. Events a partition sends after being idle with older event times are
    /// late. The completion pass runs every 30 s, or every quarter of a shorter timeout.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Name of the empty file created in each complete directory (default `_SUCCESS`, as
    /// Hadoop's `FileOutputCommitter` writes). One path component starting with `_` or `.`, so
    /// Spark and Hive never read it as data; never `_landfall` or `_rejected`. A marker is
    /// created once and never rewritten.
    #[serde(default = "default_marker")]
    pub marker: String,
}

/// 10 minutes: producers' retries and batching plus clock skew. No upstream default to
/// mirror: Flink's `sink.partition-commit.delay` is 0 and must be set to the partition length;
/// here the bucket's length comes from the template and only the lateness is added.
fn default_allowed_lateness() -> HumanDuration {
    HumanDuration::from_secs(600)
}

/// 5 minutes: five default `roll.max_age` intervals, so a partition with any traffic commits
/// several times within it.
fn default_idle_timeout() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// Hadoop's `FileOutputCommitter` success marker, what Oozie's `<done-flag>` waits for by default.
fn default_marker() -> String {
    "_SUCCESS".into()
}

/// When to close a file; whichever limit is reached first wins.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollConfig {
    /// Rows per file. With a RabbitMQ queue a commit holds at most a third of the
    /// unacknowledged window (2 x `prefetch`), so files hold at most that many rows: a value
    /// set above it is accepted with a warning (the default adapts silently).
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    /// Approximate file size (encoded bytes plus buffered rows).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Longest time a file stays open, which bounds how late data becomes visible.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// Memory budget for what a pipeline holds in memory, counted in bytes of rows and
    /// messages. Open files buffer a row group each before encoding it: over the budget, the
    /// largest is encoded and shipped early. Rows being decoded may hold half of it more (the
    /// largest file's rows then go to the writer early), rows on their way to the writer a
    /// quarter, and a RabbitMQ source's deliveries received and not yet decoded a quarter
    /// (its consumers are cancelled until half of that is free, whatever `prefetch` allows).
    /// Real memory runs about 2.5 times the counted bytes. A Kafka source's fetch queue is
    /// librdkafka's own, outside this budget: `queued.max.messages.kbytes` in
    /// `source.kafka.options` (64 MiB by default).
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: ByteSize,
    /// Most files open at once; past it, the source partition holding the most open files is
    /// committed. Bounds memory and HDFS write streams when a partition key has many values.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
}

impl RollConfig {
    /// The share of `max_buffered_bytes` for deliveries a source received and has not decoded
    /// yet (a RabbitMQ session pauses its consumers past it).
    pub fn received_bytes(&self) -> usize {
        (self.max_buffered_bytes.bytes() as usize / 4).max(1)
    }

    /// The share of `max_buffered_bytes` for decoded rows on their way to the writer.
    pub fn handoff_bytes(&self) -> usize {
        (self.max_buffered_bytes.bytes() as usize / 4).max(1)
    }
}

impl Default for RollConfig {
    fn default() -> Self {
        RollConfig {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
            max_buffered_bytes: default_max_buffered_bytes(),
            max_open_files: default_max_open_files(),
        }
    }
}

/// One million rows: large enough for efficient Spark scans, small enough to publish often.
fn default_max_rows() -> u64 {
    1_000_000
}

/// 128 MiB mirrors Flink's `DefaultRollingPolicy` part size and HDFS's default
/// `dfs.blocksize`, so a file fills about one block.
fn default_max_bytes() -> ByteSize {
    ByteSize(128 << 20)
}

/// 32 MiB: the budget counts row bytes, and real memory (Arrow builders with spare capacity,
/// Parquet pages, allocator overhead) runs about 2.5 times it. Measured on the 2,000,000-event
/// benchmark (4 partitions): peak RSS 227 MB at 32 MiB, 277 MB at 48 MiB, 421 MB at 128 MiB,
/// for files 0.5 % larger (smaller row groups) and the same speed.
fn default_max_buffered_bytes() -> ByteSize {
    ByteSize(32 << 20)
}

/// 1000 open files: enough for a 4-partition topic spread over 200 partition values, few
/// enough that the NameNode and DataNode are not flooded with write streams.
fn default_max_open_files() -> usize {
    1000
}

/// 60 s mirrors Flink's `DefaultRollingPolicy` rollover interval.
fn default_max_age() -> HumanDuration {
    HumanDuration::from_secs(60)
}

/// Parquet encoding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    /// Column codec: `zstd`, `snappy`, `gzip`, `lz4` (LZ4_RAW) or `none`.
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// Codec level: zstd -131072..=22 (default 1), gzip 0..=9 (default 6); other codecs
    /// take none.
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// Rows per row group. The writer buffers a whole row group per open file in memory, so
    /// this bounds memory per open partition (roughly rows × row width).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        ParquetConfig {
            compression: default_compression(),
            compression_level: None,
            row_group_rows: default_row_group_rows(),
        }
    }
}

/// zstd: smallest files at speed close to snappy (lab: zstd(1) files ~16 % of the JSON, snappy ~26 %).
fn default_compression() -> Compression {
    Compression::Zstd
}

/// 122 880 rows mirrors DuckDB's row-group size: big enough for Spark's vectorized reader and
/// statistics pruning, about 8× smaller than parquet-rs's 1 Mi default, which would buffer
/// hundreds of MiB per open partition for wide events.
fn default_row_group_rows() -> usize {
    122_880
}

/// Parquet column compression codecs that Spark reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    Zstd,
    Snappy,
    Gzip,
    Lz4,
    None,
}

impl Compression {
    /// The codec's name as written in YAML; also the published files' suffix (`zstd.parquet`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }
}

impl ParquetConfig {
    /// The parquet-rs codec with its level; fails with a readable message when the level does
    /// not suit the codec (also checked by validation).
    pub fn codec(&self) -> Result<parquet::basic::Compression, String> {
        use parquet::basic::{Compression as C, GzipLevel, ZstdLevel};
        let level = self.compression_level;
        let no_level = |name: &str, codec: C| match level {
            None => Ok(codec),
            Some(l) => Err(format!("{name} takes no compression_level (got {l}); remove it")),
        };
        match self.compression {
            Compression::Zstd => match level {
                None => {
                    Ok(C::ZSTD(ZstdLevel::try_new(crate::parquet::DEFAULT_ZSTD_LEVEL).expect("valid default level")))
                }
                Some(l) => ZstdLevel::try_new(l)
                    .map(C::ZSTD)
                    .map_err(|_| format!("zstd compression_level must be -131072..=22, got {l}")),
            },
            Compression::Gzip => match level {
                None => Ok(C::GZIP(GzipLevel::default())),
                Some(l) => u32::try_from(l)
                    .ok()
                    .and_then(|l| GzipLevel::try_new(l).ok())
                    .map(C::GZIP)
                    .ok_or_else(|| format!("gzip compression_level must be 0..=9, got {l}")),
            },
            Compression::Snappy => no_level("snappy", C::SNAPPY),
            // LZ4_RAW: the plain `LZ4` codec is deprecated in the Parquet format (framing
            // differs between writers); Spark ≥ 3.3 reads LZ4_RAW.
            Compression::Lz4 => no_level("lz4", C::LZ4_RAW),
            Compression::None => no_level("none", C::UNCOMPRESSED),
        }
    }
}
